package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/backupd/backupd/internal/backupset"
	"github.com/backupd/backupd/internal/seal"
	"github.com/backupd/backupd/internal/targets"
	"github.com/backupd/backupd/internal/testenv"
)

var (
	daemonBinOnce sync.Once
	daemonBinPath string
	daemonBinErr  error
)

// daemonBinary builds backupd once per test process: the daemon tests run it as a child so
// that signals and exit codes are real. The binary goes to one place per checkout, replaced
// (atomically: go build renames it into place) by each run, so runs leave nothing behind.
func daemonBinary(t *testing.T) string {
	t.Helper()
	daemonBinOnce.Do(func() {
		wd, err := os.Getwd()
		if err != nil {
			daemonBinErr = err
			return
		}
		sum := sha256.Sum256([]byte(wd))
		dir := filepath.Join(os.TempDir(), fmt.Sprintf("backupd-daemon-test-%d-%x", os.Getuid(), sum[:6]))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			daemonBinErr = err
			return
		}
		daemonBinPath = filepath.Join(dir, "backupd")
		out, err := exec.Command("go", "build", "-o", daemonBinPath, ".").CombinedOutput()
		if err != nil {
			daemonBinErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if daemonBinErr != nil {
		t.Fatal(daemonBinErr)
	}
	return daemonBinPath
}

// daemonProc is a running `backupd run`.
type daemonProc struct {
	cmd    *exec.Cmd
	addr   string
	mu     sync.Mutex
	stderr bytes.Buffer
	done   chan struct{}
	err    error
}

func (p *daemonProc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.Write(b)
}

func (p *daemonProc) logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

func startDaemon(t *testing.T, cfgPath, addr string) *daemonProc {
	t.Helper()
	p := &daemonProc{addr: addr, done: make(chan struct{})}
	p.cmd = exec.Command(daemonBinary(t), "run", "--config", cfgPath)
	p.cmd.Stderr = p
	p.cmd.Stdout = p
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("daemon log (%s):\n%s", addr, p.logs())
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		select {
		case <-p.done:
			t.Fatalf("backupd run exited early (%v):\n%s", p.err, p.logs())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("backupd run did not answer /healthz within 20s:\n%s", p.logs())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop sends sig and returns the exit code.
func (p *daemonProc) stop(t *testing.T, sig os.Signal, within time.Duration) int {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(within):
		t.Fatalf("backupd run did not exit within %s of %v", within, sig)
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		t.Fatal(p.err)
	}
	return 0
}

func (p *daemonProc) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + p.addr + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// metric returns the value of one sample of /metrics (labels in the sorted order the
// exposition format prints); 0 when absent.
func (p *daemonProc) metric(t *testing.T, sample string) float64 {
	t.Helper()
	_, body := p.get(t, "/metrics")
	for line := range strings.Lines(body) {
		if rest, ok := strings.CutPrefix(line, sample+" "); ok {
			var v float64
			fmt.Sscan(rest, &v)
			return v
		}
	}
	return 0
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func daemonRecipient(t *testing.T) string {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return id.Recipient().String()
}

func daemonS3Target(srv testenv.S3, bucket string) string {
	return fmt.Sprintf("{type: s3, endpoint: %q, region: %q, bucket: %q, bucket_lookup: path, access_key: %q, secret_key: %q}",
		srv.Endpoint, srv.Region, bucket, srv.AccessKey, srv.SecretKey)
}

func writeDaemonConfig(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

// setEntries lists every set of a policy on the target named in a config, committed or not.
func setEntries(t *testing.T, spec targets.Spec, policy string) []backupset.SetEntry {
	t.Helper()
	tgt, err := targets.Open("t", spec, targets.Options{})
	if err != nil {
		t.Fatal(err)
	}
	entries, err := backupset.SetKeys(context.Background(), tgt, policy)
	if err != nil {
		t.Fatal(err)
	}
	return entries
}

func s3Spec2(srv testenv.S3, bucket string) targets.Spec {
	return targets.Spec{Type: "s3", Endpoint: srv.Endpoint, Region: srv.Region, Bucket: bucket,
		AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, BucketLookup: "path"}
}

func listedSets(t *testing.T, cfgPath, policy string) []listedSet {
	t.Helper()
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"list", "--config", cfgPath, "--policy", policy, "--json"}, &out, &errb); code != 0 {
		t.Fatalf("list: exit %d: %s", code, errb.String())
	}
	var sets []listedSet
	if err := json.Unmarshal(out.Bytes(), &sets); err != nil {
		t.Fatalf("list --json printed %q: %v", out.String(), err)
	}
	return sets
}

// TestDaemonAcceptance is the acceptance: a policy on `@every 4s` with keep_last 2,
// run for about 25 s by a real `backupd run` on MinIO and versitygw, makes several sets,
// `list` then shows 2, /metrics reflects the runs, and SIGTERM ends it with exit 0 and no
// uncommitted set left. On the way, SIGHUP with an invalid config is refused and with a
// valid one applied, and the status and readiness pages answer.
func TestDaemonAcceptance(t *testing.T) {
	dsn := testenv.MariaDBDSN(t)
	minio, versity := testenv.MinIO(t), testenv.Versity(t)
	bucketM, bucketV := testenv.NewBucket(t, minio), testenv.NewBucket(t, versity)
	dbName := testenv.SmallDatabase(t, dsn, "dmn")
	policy := testenv.UniqueName("every4s")
	addr := freeAddr(t)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "backupd.yaml")
	cfg := fmt.Sprintf(`
listen: %s
state_dir: ./state
targets:
  minio: %s
  versity: %s
encryption: {recipients: [%q]}
policies:
  %s:
    schedule: "@every 4s"
    mysql: {dsn: %q, databases: [%s]}
    targets: [minio, versity]
    retention: {keep_last: 2}
    alerts: {stale_after: 1h}
`, addr, daemonS3Target(minio, bucketM), daemonS3Target(versity, bucketV), daemonRecipient(t), policy, dsn, dbName)
	writeDaemonConfig(t, cfgPath, cfg)

	start := time.Now()
	p := startDaemon(t, cfgPath, addr)
	success := `backupd_job_runs_total{job="backup",policy="` + policy + `",result="success"}`

	// A third of the way in: an invalid config is refused, the daemon goes on.
	time.Sleep(8 * time.Second)
	writeDaemonConfig(t, cfgPath, strings.Replace(cfg, "keep_last: 2", "keep_last: -2", 1))
	p.cmd.Process.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(10 * time.Second)
	for p.metric(t, `backupd_config_reloads_total{result="failure"}`) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the invalid config's SIGHUP was not counted as a failed reload")
		}
		time.Sleep(100 * time.Millisecond)
	}
	writeDaemonConfig(t, cfgPath, cfg)
	p.cmd.Process.Signal(syscall.SIGHUP)
	for p.metric(t, `backupd_config_reloads_total{result="success"}`) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the valid config's SIGHUP was not counted as a reload")
		}
		time.Sleep(100 * time.Millisecond)
	}

	// About 25 s; longer only while the shared database server holds dumps up (another
	// test's DDL blocks BACKUP STAGE), so that "several sets" does not depend on neighbours.
	time.Sleep(time.Until(start.Add(25 * time.Second)))
	for deadline := start.Add(90 * time.Second); p.metric(t, success) < 4 && time.Now().Before(deadline); {
		time.Sleep(500 * time.Millisecond)
	}
	code, ready := p.get(t, "/readyz")
	if code != http.StatusOK || !strings.Contains(ready, "2 target(s) reachable") {
		t.Errorf("/readyz: got %d %q, want 200 with both targets reachable", code, ready)
	}
	code, page := p.get(t, "/")
	if code != http.StatusOK || !strings.Contains(page, policy) || !strings.Contains(page, "@every 4s") || !strings.Contains(page, "next run") {
		t.Errorf("status page: got %d, want 200 naming the policy, its schedule and next run:\n%s", code, page)
	}
	made := p.metric(t, success)
	if made < 4 {
		t.Errorf("got %v successful runs in 25s of @every 4s, want at least 4", made)
	}
	for _, sample := range []string{
		`backupd_sets{policy="` + policy + `",target="minio"}`,
		`backupd_sets{policy="` + policy + `",target="versity"}`,
	} {
		if got := p.metric(t, sample); got != 2 {
			t.Errorf("%s: got %v, want 2", sample, got)
		}
	}
	for _, sample := range []string{
		`backupd_last_success_timestamp_seconds{job="backup",policy="` + policy + `"}`,
		`backupd_last_backup_rows{policy="` + policy + `"}`,
		`backupd_last_backup_bytes{policy="` + policy + `"}`,
		`backupd_pruned_sets_total{policy="` + policy + `",target="minio"}`,
		`backupd_target_last_backup_success{policy="` + policy + `",target="versity"}`,
		`backupd_next_run_timestamp_seconds{job="backup",policy="` + policy + `"}`,
		`backupd_target_operations_total{op="put",result="ok",target="minio"}`,
	} {
		if p.metric(t, sample) <= 0 {
			t.Errorf("%s: got no positive value, want the runs reflected", sample)
		}
	}
	if got := p.metric(t, `backupd_last_backup_rows{policy="`+policy+`"}`); got != 3 {
		t.Errorf("last backup rows: got %v, want 3", got)
	}
	if last := p.metric(t, `backupd_last_success_timestamp_seconds{job="backup",policy="`+policy+`"}`); time.Since(time.Unix(int64(last), 0)) > 10*time.Second {
		t.Errorf("last success at %v, want within the last 10s", time.Unix(int64(last), 0))
	}

	if code := p.stop(t, syscall.SIGTERM, 60*time.Second); code != 0 {
		t.Errorf("after SIGTERM: got exit code %d, want 0", code)
	}
	logs := p.logs()
	for _, want := range []string{`"msg":"backupd daemon stopped"`, `"msg":"config reload refused`, `"msg":"config reloaded"`, `"msg":"set deleted by retention"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("the daemon's log lacks %s", want)
		}
	}

	sets := listedSets(t, cfgPath, policy)
	if len(sets) != 2 {
		t.Errorf("list after the run: got %d sets, want 2 (keep_last 2)", len(sets))
	}
	for _, s := range sets {
		if len(s.Targets) != 2 || s.Rows != 3 {
			t.Errorf("set %s: got targets %v and %d rows, want both targets and 3 rows", s.ID, s.Targets, s.Rows)
		}
	}
	for name, spec := range map[string]targets.Spec{"minio": s3Spec2(minio, bucketM), "versity": s3Spec2(versity, bucketV)} {
		for _, e := range setEntries(t, spec, policy) {
			if !e.Committed {
				t.Errorf("target %s: uncommitted set %s left after SIGTERM", name, e.ID)
			}
		}
	}

	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"prune", "--config", cfgPath, "--policy", policy, "--dry-run"}, &out, &errb); code != 0 {
		t.Fatalf("prune --dry-run: exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "storage blobs: none stored") {
		t.Errorf("prune --dry-run does not report the storage garbage collection:\n%s", out.String())
	}
	for _, s := range sets {
		if !strings.Contains(out.String(), "keep    "+s.ID+"  newest committed set") && !strings.Contains(out.String(), "keep    "+s.ID+"  keep_last 2/2") {
			t.Errorf("prune --dry-run does not keep %s with its reason:\n%s", s.ID, out.String())
		}
	}
}

// TestTwoDaemonsOneSetPerTick is the acceptance: two daemons on the same targets
// and database make one set per tick, not two.
func TestTwoDaemonsOneSetPerTick(t *testing.T) {
	dsn := testenv.MariaDBDSN(t)
	minio := testenv.MinIO(t)
	bucket := testenv.NewBucket(t, minio)
	dbName := testenv.SmallDatabase(t, dsn, "dmn")
	policy := testenv.UniqueName("twohosts")
	recipient := daemonRecipient(t)
	var procs []*daemonProc
	var cfgPath string
	// The two hosts share one signing key, as hosts sharing a policy share one trust: each
	// must count the other's sets as committed.
	signingKey := filepath.Join(t.TempDir(), "signing.key")
	for i := range 2 {
		addr := freeAddr(t)
		cfgPath = filepath.Join(t.TempDir(), "backupd.yaml")
		writeDaemonConfig(t, cfgPath, fmt.Sprintf(`
listen: %s
state_dir: ./state
signing: {key_file: %q}
targets:
  minio: %s
encryption: {recipients: [%q]}
policies:
  %s:
    schedule: "@every 3s"
    mysql: {dsn: %q, databases: [%s]}
    targets: [minio]
    alerts: {stale_after: 1h}
`, addr, signingKey, daemonS3Target(minio, bucket), recipient, policy, dsn, dbName))
		procs = append(procs, startDaemon(t, cfgPath, addr))
		if i == 0 {
			time.Sleep(1300 * time.Millisecond) // the hosts start at different moments
		}
	}
	// At least 14 s and 4 sets (longer only while the shared database server holds dumps up).
	start := time.Now()
	for time.Since(start) < 14*time.Second || len(listedSets(t, cfgPath, policy)) < 4 {
		if time.Since(start) > 90*time.Second {
			break
		}
		time.Sleep(time.Second)
	}
	for i, p := range procs {
		if code := p.stop(t, syscall.SIGTERM, 120*time.Second); code != 0 {
			t.Errorf("daemon %d: got exit code %d, want 0", i, code)
		}
	}
	made, otherHost := 0, 0
	for _, p := range procs {
		made += strings.Count(p.logs(), `"msg":"backup committed","policy":"`+policy+`","job":"backup"`)
		otherHost += strings.Count(p.logs(), `"msg":"tick left to another host","policy":"`+policy+`"`)
	}

	sets := listedSets(t, cfgPath, policy)
	perTick := map[int64][]string{}
	for _, s := range sets {
		tick := s.StartedAt.Unix() / 3
		perTick[tick] = append(perTick[tick], s.ID)
	}
	for tick, ids := range perTick {
		if len(ids) != 1 {
			t.Errorf("tick %s: got %d sets %v, want 1", time.Unix(tick*3, 0).UTC().Format(time.RFC3339), len(ids), ids)
		}
	}
	if len(sets) < 4 {
		t.Errorf("got %d sets, want at least 4", len(sets))
	}
	if made != len(sets) {
		t.Errorf("the daemons logged %d committed backups, but the target holds %d sets", made, len(sets))
	}
	if otherHost < 2 {
		t.Errorf("got %d ticks left to the other host, want the daemons to have competed for the ticks", otherHost)
	}
	t.Logf("%d sets, %d runs, %d ticks left to the other host", len(sets), made, otherHost)
}

// TestDaemonScheduledDrill: `backupd run` schedules a policy's drill next to its backup; the
// drill restores the newest set into a scratch database, and its verdict and RTO reach the
// metrics.
func TestDaemonScheduledDrill(t *testing.T) {
	dsn := testenv.MariaDBDSN(t)
	minio := testenv.MinIO(t)
	bucket := testenv.NewBucket(t, minio)
	dbName := testenv.SmallDatabase(t, dsn, "dmn")
	policy := testenv.UniqueName("drilled")
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key.txt")
	if _, err := seal.GenerateKey(keyFile, time.Now()); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	cfgPath := filepath.Join(dir, "backupd.yaml")
	writeDaemonConfig(t, cfgPath, fmt.Sprintf(`
listen: %s
state_dir: ./state
max_concurrent_jobs: 2
targets:
  minio: %s
encryption: {identity_file: %q}
policies:
  %s:
    schedule: "@every 3s"
    mysql: {dsn: %q, databases: [%s]}
    targets: [minio]
    alerts: {stale_after: 1h}
    drill:
      schedule: "@every 5s"
      scratch: {dsn: %q}
`, addr, daemonS3Target(minio, bucket), keyFile, policy, dsn, dbName, dsn))
	p := startDaemon(t, cfgPath, addr)
	passed := `backupd_job_runs_total{job="drill",policy="` + policy + `",result="success"}`
	deadline := time.Now().Add(40 * time.Second)
	for p.metric(t, passed) < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("no drill passed within 40s")
		}
		time.Sleep(500 * time.Millisecond)
	}
	if got := p.metric(t, `backupd_drill_last_success{policy="`+policy+`"}`); got != 1 {
		t.Errorf("backupd_drill_last_success: got %v, want 1", got)
	}
	if got := p.metric(t, `backupd_drill_rto_seconds{policy="`+policy+`"}`); got <= 0 {
		t.Errorf("backupd_drill_rto_seconds: got %v, want the drill's restore time", got)
	}
	if code := p.stop(t, syscall.SIGTERM, 60*time.Second); code != 0 {
		t.Errorf("after SIGTERM: got exit code %d, want 0", code)
	}
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"drill", "history", "--config", cfgPath, "--policy", policy}, &out, &errb); code != 0 {
		t.Fatalf("drill history: exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "PASS") {
		t.Errorf("drill history does not show a passed drill:\n%s", out.String())
	}
}
