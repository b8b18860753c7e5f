package main

import (
	"fmt"
	"math/rand/v2"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/backupset"
	"github.com/backupd/backupd/internal/testenv"
)

// TestBackupKilledLeavesNoSet kills `backupd backup` with SIGKILL at random moments and checks
// that a killed backup never looks complete, on a dir target or on S3: every set `list` shows
// is whole (verify passes on each target listing it), every finished backup is listed, and a
// killed one is listed only if the kill came after its commit.
func TestBackupKilledLeavesNoSet(t *testing.T) {
	dsn := testenv.MariaDBDSN(t)
	minioSrv := testenv.MinIO(t)
	sak := testenv.LoadSakila(t, dsn)
	bucket := testenv.NewBucket(t, minioSrv)
	keyFile, pub := testKey(t)
	policy := testenv.UniqueName("kill")
	cfg := writeConfig(t, fmt.Sprintf(`
targets:
  minio:%s
  local:
    type: dir
    path: %s
encryption:
  recipients: [%s]
  identity_file: %s
policies:
  %s:
    schedule: "@daily"
    mysql:
      dsn: %s
      databases: [%s]
      chunk_size: 64KiB
    targets: [minio, local]
`, s3TargetYAML(minioSrv, bucket), t.TempDir(), pub, keyFile, policy, yamlString(dsn), yamlString(sak)))
	bin := backupdBinary(t)

	// One undisturbed run tells how long a backup takes, so kills land across all of it.
	start := time.Now()
	if out, err := exec.Command(bin, "backup", "--config", cfg, "--policy", policy).CombinedOutput(); err != nil {
		t.Fatalf("backup: %v\n%s", err, out)
	}
	full := time.Since(start)
	finished := 1

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	for i := range 20 {
		cmd := exec.Command(bin, "backup", "--config", cfg, "--policy", policy)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		delay := time.Duration(rng.Int64N(int64(full)))
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("run %d: backup failed before the kill: %v", i, err)
			}
			finished++
		case <-time.After(delay):
			cmd.Process.Signal(syscall.SIGKILL)
			if err := <-done; err == nil {
				finished++ // it finished just before the signal
			}
		}
		t.Logf("run %d: kill after %v (a full run takes %v)", i, delay, full)
	}

	sets := listJSON(t, cfg, policy)
	if len(sets) < finished {
		t.Fatalf("list shows %d sets, but %d backups finished", len(sets), finished)
	}
	for _, s := range sets {
		if !backupset.ValidID(s.ID) {
			t.Errorf("list shows a malformed set ID %q", s.ID)
		}
		for _, target := range s.Targets {
			code, out, errOut := runCLI(t, "verify", "--config", cfg, "--policy", policy, "--set", s.ID, "--target", target)
			if code != 0 {
				t.Errorf("set %s on %s is listed but not whole: exit %d\n%s%s", s.ID, target, code, out, errOut)
			}
		}
	}
	t.Logf("%d runs finished, %d sets listed and verified", finished, len(sets))
}
