package daemon

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/backupset"
	"github.com/backupd/backupd/internal/targets"
	"github.com/backupd/backupd/internal/testenv"
)

// TestSlowJobOverlapAndShutdown runs a backup that takes longer than its interval (the
// database answers through a proxy that delays every packet): the ticks that find it still
// running are skipped and counted, and a shutdown whose shutdown_timeout passes cancels it,
// returns cleanly and leaves no set, committed or not.
func TestSlowJobOverlapAndShutdown(t *testing.T) {
	dsn := testenv.MariaDBDSN(t)
	dbName := testenv.SmallDatabase(t, dsn, "dmn")
	proxy := newToxiproxy(t, "127.0.0.1:3306")
	proxy.post(t, "/proxies/"+proxy.name+"/toxics", map[string]any{"type": "latency", "stream": "downstream", "attributes": map[string]any{"latency": 300}}, nil)
	policy := testenv.UniqueName("slow")
	dir := t.TempDir()
	cfg := parseConfig(t, fmt.Sprintf(`
listen: 127.0.0.1:0
state_dir: %q
shutdown_timeout: 1s
targets:
  local: {type: dir, path: %q}
encryption: {recipients: [%q]}
policies:
  %s:
    schedule: "@every 1s"
    mysql: {dsn: "root@tcp(%s)/", databases: [%s]}
    targets: [local]
    alerts: {stale_after: "off"}
`, filepath.Join(dir, "state"), filepath.Join(dir, "backups"), testRecipient(t), policy, proxy.listen, dbName))

	var logs bytes.Buffer
	var mu sync.Mutex
	d, err := New(cfg, Options{Logger: slog.New(slog.NewJSONHandler(lockedWriter{&mu, &logs}, nil)), CheckInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- d.Run(ctx) }()

	skipped := `backupd_skipped_ticks_total{job="backup",policy="` + policy + `",reason="overlap"}`
	waitFor(t, 20*time.Second, "a tick skipped because the run was still going", func() bool { return metricValue(t, d, skipped) >= 1 })
	if got := metricValue(t, d, `backupd_running_jobs{job="backup",policy="`+policy+`"}`); got != 1 {
		t.Errorf("got %v running jobs, want 1", got)
	}

	start := time.Now()
	cancel()
	select {
	case err := <-runErr:
		if err != nil {
			t.Errorf("Run: got %v, want nil after a shutdown", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return 30s after the shutdown began (shutdown_timeout is 1s)")
	}
	if took := time.Since(start); took < time.Second {
		t.Errorf("Run returned after %s, want it to wait shutdown_timeout (1s) for the running job", took)
	}
	mu.Lock()
	text := logs.String()
	mu.Unlock()
	if testing.Verbose() {
		t.Log(text)
	}
	for _, want := range []string{"stopping: waiting for running jobs to finish", "shutdown_timeout passed", "backup cancelled by shutdown"} {
		if !strings.Contains(text, want) {
			t.Errorf("the log does not say %q:\n%s", want, text)
		}
	}
	if metricValue(t, d, `backupd_job_runs_total{job="backup",policy="`+policy+`",result="success"}`) != 0 {
		t.Error("a run succeeded; the test needs the run to be slower than the shutdown")
	}
	tgt, err := targets.Open("local", targets.Spec{Type: "dir", Path: filepath.Join(dir, "backups")}, targets.Options{})
	if err != nil {
		t.Fatal(err)
	}
	entries, err := backupset.SetKeys(context.Background(), tgt, policy)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("got sets %+v left after the cancelled run, want none", entries)
	}
	if len(d.alerts.open()) != 0 {
		t.Errorf("got incidents %+v, want none: a run cancelled by shutdown is not a failure to alert about", d.alerts.open())
	}
}
