package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/backupset"
	"github.com/backupd/backupd/internal/config"
	"github.com/backupd/backupd/internal/testenv"
)

// runDaemon runs a daemon for cfg until the test ends.
func runDaemon(t *testing.T, cfg *config.Config, interval time.Duration) *Daemon {
	t.Helper()
	d, err := New(cfg, Options{Logger: slog.New(slog.DiscardHandler), CheckInterval: interval})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return d
}

// TestCatchUp: a daemon starting after a missed run (the targets hold no set newer than the
// last tick) runs it once at start; a daemon starting when the targets are up to date does
// not.
func TestCatchUp(t *testing.T) {
	dsn := testenv.MariaDBDSN(t)
	dbName := makeDatabase(t, dsn)
	policy := testenv.UniqueName("catchup")
	dir := t.TempDir()
	yml := fmt.Sprintf(`
listen: 127.0.0.1:0
state_dir: %q
targets:
  local: {type: dir, path: %q}
encryption: {recipients: [%q]}
policies:
  %s:
    schedule: "@every 1h"
    catch_up: true
    mysql: {dsn: %q, databases: [%s]}
    targets: [local]
    alerts: {stale_after: "off"}
`, filepath.Join(dir, "state"), filepath.Join(dir, "backups"), testRecipient(t), policy, dsn, dbName)

	success := `backupd_job_runs_total{job="backup",policy="` + policy + `",result="success"}`
	first := runDaemon(t, parseConfig(t, yml), time.Hour)
	waitFor(t, 30*time.Second, "the catch-up run", func() bool { return metricValue(t, first, success) == 1 })

	second := runDaemon(t, parseConfig(t, yml), time.Hour)
	time.Sleep(3 * time.Second)
	if got := metricValue(t, second, success); got != 0 {
		t.Errorf("a daemon starting with an up-to-date target ran %v catch-up runs, want 0", got)
	}
	if got := metricValue(t, first, success); got != 1 {
		t.Errorf("got %v runs of the first daemon, want exactly the one catch-up run", got)
	}
}

// TestStaleAlert: with no committed set for longer than stale_after, the periodic check
// alerts once, though no job runs at all; a new set clears it with one recovery notice.
func TestStaleAlert(t *testing.T) {
	hook := newWebhookReceiver(t)
	policy := testenv.UniqueName("stale")
	dir := t.TempDir()
	backups := filepath.Join(dir, "backups")
	cfg := parseConfig(t, fmt.Sprintf(`
listen: 127.0.0.1:0
state_dir: %q
alerts: {webhook: %q, stale_after: 2s}
targets:
  local: {type: dir, path: %q}
encryption: {recipients: [%q]}
policies:
  %s:
    schedule: "@every 1h"
    mysql: {dsn: "root@tcp(127.0.0.1:1)/"}
    targets: [local]
`, filepath.Join(dir, "state"), hook.URL, backups, testRecipient(t), policy))
	d := runDaemon(t, cfg, 300*time.Millisecond)

	waitFor(t, 10*time.Second, "the stale alert", func() bool { return len(hook.titles()) >= 1 })
	time.Sleep(1500 * time.Millisecond) // several more checks
	if got := hook.titles(); len(got) != 1 || got[0] != policy+": no recent backup" {
		t.Fatalf("got webhook calls %q, want one stale alert", got)
	}
	if open := d.alerts.open(); len(open) != 1 || !strings.HasSuffix(open[0].Key, "/stale") {
		t.Errorf("got open incidents %+v, want the stale one", open)
	}

	now := time.Now()
	fakeSet(t, backups, policy, backupset.NewID(now), true, now)
	waitFor(t, 10*time.Second, "the recovery notice", func() bool { return len(hook.titles()) >= 2 })
	time.Sleep(time.Second)
	if got := hook.titles(); len(got) != 2 || got[1] != policy+": backups are recent again" {
		t.Errorf("got webhook calls %q, want the alert and one recovery notice", got)
	}
}
