package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
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
	dbName := testenv.SmallDatabase(t, dsn, "dmn")
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
	waitFor(t, 90*time.Second, "the catch-up run", func() bool { return metricValue(t, first, success) == 1 })

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

	// Dated a minute ahead, so the set cannot turn stale again (stale_after is 2s) while the
	// test watches for a second recovery notice.
	fresh := time.Now().Add(time.Minute)
	fakeSet(t, backups, policy, backupset.NewID(fresh), true, fresh)
	waitFor(t, 10*time.Second, "the recovery notice", func() bool { return len(hook.titles()) >= 2 })
	time.Sleep(time.Second)
	if got := hook.titles(); len(got) != 2 || got[1] != policy+": backups are recent again" {
		t.Errorf("got webhook calls %q, want the alert and one recovery notice", got)
	}
}

// TestDrillOutcomeAlerts: the hook drills report through gives one alert when drills start
// failing, one notice when one passes, and the drill metrics.
func TestDrillOutcomeAlerts(t *testing.T) {
	hook := newWebhookReceiver(t)
	dir := t.TempDir()
	cfg := parseConfig(t, fmt.Sprintf(`
state_dir: %q
alerts: {webhook: %q}
targets:
  local: {type: dir, path: %q}
encryption: {recipients: [%q]}
policies:
  p:
    schedule: "@daily"
    mysql: {dsn: "root@tcp(127.0.0.1:1)/"}
    targets: [local]
`, filepath.Join(dir, "state"), hook.URL, filepath.Join(dir, "b"), testRecipient(t)))
	d, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	p := cfg.Policies["p"]
	fail := DrillOutcome{SetID: "20261127T030000Z-aaaa", Err: fmt.Errorf("table shop.orders: 10 rows restored, 12 in the backup")}
	d.drillFinished(ctx, cfg, p, fail)
	d.drillFinished(ctx, cfg, p, fail)
	if got := metricValue(t, d, `backupd_drill_last_success{policy="p"}`); got != 0 {
		t.Errorf("drill metric after a failure: got %v, want 0", got)
	}
	d.drillFinished(ctx, cfg, p, DrillOutcome{SetID: "20261128T030000Z-bbbb", OK: true, RTO: 95 * time.Second, RPO: 3 * time.Hour})
	if got := hook.titles(); len(got) != 2 || got[0] != "p: restoration drill failed" || got[1] != "p: restoration drills pass again" {
		t.Errorf("got webhook calls %q, want one alert and one recovery notice", got)
	}
	for sample, want := range map[string]float64{
		`backupd_drill_last_success{policy="p"}`: 1,
		`backupd_drill_rto_seconds{policy="p"}`:  95,
		`backupd_drill_rpo_seconds{policy="p"}`:  10800,
	} {
		if got := metricValue(t, d, sample); got != want {
			t.Errorf("%s: got %v, want %v", sample, got, want)
		}
	}
}

// TestPartialFailureAndShrinkAlerts: a backup that commits on one target but not the other
// alerts once about that target; a set that lost most of a table's rows alerts once too.
func TestPartialFailureAndShrinkAlerts(t *testing.T) {
	dsn := testenv.MariaDBDSN(t)
	srv := testenv.MinIO(t)
	dbName := testenv.SmallDatabase(t, dsn, "dmn")
	db := testenv.OpenDB(t, dsn)
	if _, err := db.Exec("INSERT INTO `" + dbName + "`.items SELECT seq, 'x' FROM `" + dbName + "`.seq_10_to_409"); err != nil {
		t.Fatal(err)
	}
	hook := newWebhookReceiver(t)
	policy := testenv.UniqueName("partial")
	dir := t.TempDir()
	cfg := parseConfig(t, fmt.Sprintf(`
listen: 127.0.0.1:0
state_dir: %q
alerts: {webhook: %q, stale_after: 1h}
targets:
  local: {type: dir, path: %q}
  broken: {type: s3, endpoint: %q, region: %q, bucket: no-such-bucket-%s, bucket_lookup: path, access_key: %q, secret_key: %q}
encryption: {recipients: [%q]}
policies:
  %s:
    schedule: "@every 2s"
    mysql: {dsn: %q, databases: [%s]}
    targets: [local, broken]
    min_targets: 1
    retention: {keep_last: 1}
`, filepath.Join(dir, "state"), hook.URL, filepath.Join(dir, "b"), srv.Endpoint, srv.Region, strings.ReplaceAll(policy, "_", "-"),
		srv.AccessKey, srv.SecretKey, testRecipient(t), policy, dsn, dbName))
	d := runDaemon(t, cfg, time.Hour)
	success := `backupd_job_runs_total{job="backup",policy="` + policy + `",result="success"}`
	waitFor(t, 90*time.Second, "a backup", func() bool { return metricValue(t, d, success) >= 1 })
	if _, err := db.Exec("DELETE FROM `" + dbName + "`.items WHERE id >= 100"); err != nil {
		t.Fatal(err)
	}
	n := metricValue(t, d, success)
	// One run may have read the table before the delete: two more after it.
	waitFor(t, 90*time.Second, "three more backups", func() bool { return metricValue(t, d, success) >= n+3 })

	titles := hook.titles()
	if got := countContaining(titles, policy+": target broken failed"); got != 1 {
		t.Errorf("got %d target alerts in %q, want 1", got, titles)
	}
	if got := countContaining(titles, policy+": backup shrank by more than 50%"); got != 1 {
		t.Errorf("got %d shrink alerts in %q, want 1", got, titles)
	}
	if got := countContaining(titles, policy+": set sizes are steady again"); got != 1 {
		t.Errorf("got %d shrink recoveries in %q, want 1 (the backup after the shrink did not shrink)", got, titles)
	}
	if got := metricValue(t, d, `backupd_target_last_backup_success{policy="`+policy+`",target="broken"}`); got != 0 {
		t.Errorf("broken target's metric: got %v, want 0", got)
	}
	if got := metricValue(t, d, `backupd_sets{policy="`+policy+`",target="local"}`); got != 1 {
		t.Errorf("sets on the working target after keep_last 1: got %v, want 1", got)
	}
}

// TestConcurrencySlots: max_concurrent_jobs bounds the jobs that run at once, and a
// stopping daemon starts no waiting job.
func TestConcurrencySlots(t *testing.T) {
	d := &Daemon{cfg: &config.Config{MaxConcurrentJobs: 1}}
	d.slotFree = sync.NewCond(&d.mu)
	if !d.acquireSlot() {
		t.Fatal("first slot refused")
	}
	got := make(chan bool, 1)
	go func() { got <- d.acquireSlot() }()
	select {
	case <-got:
		t.Fatal("a second job got a slot while the only one was taken")
	case <-time.After(100 * time.Millisecond):
	}
	d.releaseSlot()
	if !<-got {
		t.Fatal("the waiting job did not get the freed slot")
	}
	go func() { got <- d.acquireSlot() }()
	time.Sleep(50 * time.Millisecond)
	d.mu.Lock()
	d.stopping = true
	d.slotFree.Broadcast()
	d.mu.Unlock()
	if <-got {
		t.Error("a job waiting for a slot started although the daemon is stopping")
	}
}

// fakeDriller fails its first drills, then passes.
type fakeDriller struct {
	mu       sync.Mutex
	calls    int
	failures int
	last     time.Time
}

func (f *fakeDriller) Drill(ctx context.Context, cfg *config.Config, p *config.Policy) (DrillOutcome, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	f.last = time.Now()
	if f.calls <= f.failures {
		return DrillOutcome{SetID: "20261127T030000Z-aaaa", Err: fmt.Errorf("table shop.orders: checksum differs")}, nil
	}
	return DrillOutcome{SetID: "20261127T030000Z-aaaa", OK: true, RTO: time.Second, RPO: time.Hour}, nil
}

func (f *fakeDriller) LastDrill(ctx context.Context, cfg *config.Config, p *config.Policy) (time.Time, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last, nil
}

// TestScheduledDrills: a policy with a drill schedule gets a second job: its runs are counted
// apart from the backups, and a failing drill alerts once and recovers once.
func TestScheduledDrills(t *testing.T) {
	hook := newWebhookReceiver(t)
	policy := testenv.UniqueName("drills")
	dir := t.TempDir()
	cfg := parseConfig(t, fmt.Sprintf(`
listen: 127.0.0.1:0
state_dir: %q
alerts: {webhook: %q, stale_after: "off"}
targets:
  local: {type: dir, path: %q}
encryption: {recipients: [%q]}
policies:
  %s:
    schedule: "@every 1h"
    mysql: {dsn: "root@tcp(127.0.0.1:1)/"}
    targets: [local]
    drill: {schedule: "@every 1s"}
`, filepath.Join(dir, "state"), hook.URL, filepath.Join(dir, "b"), testRecipient(t), policy))
	fd := &fakeDriller{failures: 2}
	d, err := New(cfg, Options{Logger: slog.New(slog.DiscardHandler), CheckInterval: time.Hour, Driller: fd})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() { cancel(); <-done }()

	ok := `backupd_job_runs_total{job="drill",policy="` + policy + `",result="success"}`
	waitFor(t, 15*time.Second, "two passing drills", func() bool { return metricValue(t, d, ok) >= 2 })
	if got := metricValue(t, d, `backupd_job_runs_total{job="drill",policy="`+policy+`",result="failure"}`); got != 2 {
		t.Errorf("got %v failed drills, want 2", got)
	}
	if got := metricValue(t, d, `backupd_job_runs_total{job="backup",policy="`+policy+`",result="failure"}`); got != 0 {
		t.Errorf("got %v backup runs, want none (its schedule is hourly)", got)
	}
	if got := hook.titles(); len(got) != 2 || got[0] != policy+": restoration drill failed" || got[1] != policy+": restoration drills pass again" {
		t.Errorf("got webhook calls %q, want one drill alert and one recovery notice", got)
	}
	if got := metricValue(t, d, `backupd_drill_last_success{policy="`+policy+`"}`); got != 1 {
		t.Errorf("drill metric: got %v, want 1", got)
	}
}
