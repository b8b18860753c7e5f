package main

import (
	"fmt"
	"math/rand/v2"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/testenv"
)

// killAt starts bin with args, sends SIGKILL after delay, and reports whether the process
// finished (successfully) before the signal.
func killAt(t *testing.T, delay time.Duration, bin string, args ...string) (finished bool) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%v failed before the kill: %v", args, err)
		}
		return true
	case <-time.After(delay):
		cmd.Process.Signal(syscall.SIGKILL)
		return <-done == nil
	}
}

// TestPruneKilled kills `backupd prune` at 20 random moments, with new sets written between
// the kills so that every prune has work to do. After every kill each listed set verifies;
// a last, undisturbed prune leaves exactly keep_last sets.
func TestPruneKilled(t *testing.T) {
	srv := testenv.MinIO(t)
	e := newFaultEnv(t)
	cfg := writeConfig(t, fmt.Sprintf(`
targets:
  minio:%s
encryption:
  recipients: [%s]
  identity_file: %s
policies:
  %s:
    schedule: "@daily"
    mysql:
      dsn: %s
      databases: [%s]
    targets: [minio]
    retention: {keep_last: 2}
`, s3TargetYAML(srv, testenv.NewBucket(t, srv)), e.pub, e.keyFile, e.policy, yamlString(e.dsn), yamlString(e.db)))
	bin := backupdBinary(t)
	backup := func() {
		t.Helper()
		if code, _, errOut := runCLI(t, "backup", "--config", cfg, "--policy", e.policy); code != 0 {
			t.Fatalf("backup: exit %d\n%s", code, errOut)
		}
	}
	args := []string{"prune", "--config", cfg, "--policy", e.policy}

	// One undisturbed prune of six sets tells how long a prune takes.
	for range 6 {
		backup()
	}
	start := time.Now()
	if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
		t.Fatalf("prune: %v\n%s", err, out)
	}
	full := time.Since(start)

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 11))
	for i := range 20 {
		backup()
		backup()
		delay := time.Duration(rng.Int64N(int64(full)))
		finished := killAt(t, delay, bin, args...)
		t.Logf("run %d: kill after %v (a full prune takes %v), finished %v", i, delay, full, finished)
		sets := listJSON(t, cfg, e.policy)
		if len(sets) < 2 {
			t.Fatalf("run %d: %d sets listed after a killed prune, want at least keep_last 2", i, len(sets))
		}
		for _, s := range sets {
			if code, out, errOut := runCLI(t, "verify", "--config", cfg, "--policy", e.policy, "--set", s.ID); code != 0 {
				t.Fatalf("run %d: set %s is listed after a killed prune but does not verify: exit %d\n%s%s", i, s.ID, code, out, errOut)
			}
		}
	}
	if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
		t.Fatalf("prune after the kills: %v\n%s", err, out)
	}
	if sets := listJSON(t, cfg, e.policy); len(sets) != 2 {
		t.Errorf("sets after a last prune: got %d, want keep_last 2", len(sets))
	}
}

// TestRestoreKilled kills `backupd restore` at 20 random moments. The documented recovery —
// run the same restore again with --drop-existing — must then restore the database whole
// (restore checks every table's row count and checksum against the manifest).
func TestRestoreKilled(t *testing.T) {
	dsn := testenv.MariaDBDSN(t)
	e := newFaultEnv(t)
	e.db = testenv.LoadSakila(t, dsn)
	cfg := e.config(t, "\n  local:\n    type: dir\n    path: "+t.TempDir(), []string{"local"}, 0)
	if code, _, errOut := runCLI(t, "backup", "--config", cfg, "--policy", e.policy); code != 0 {
		t.Fatalf("backup: exit %d\n%s", code, errOut)
	}
	dest := testenv.UniqueName("killed_restore")
	testenv.DropDatabaseLater(t, dsn, dest)
	bin := backupdBinary(t)
	args := []string{"restore", "--config", cfg, "--policy", e.policy, "--to", dsn,
		"--database", e.db, "--as", dest, "--yes", "--drop-existing"}

	start := time.Now()
	if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	full := time.Since(start)

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 13))
	for i := range 20 {
		delay := time.Duration(rng.Int64N(int64(full)))
		finished := killAt(t, delay, bin, args...)
		t.Logf("run %d: kill after %v (a full restore takes %v), finished %v", i, delay, full, finished)
		if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
			t.Fatalf("run %d: restore again after a kill: %v\n%s", i, err, out)
		}
	}
}
