package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/backupset"
	"github.com/backupd/backupd/internal/signing"
	"github.com/backupd/backupd/internal/targets"
	"github.com/backupd/backupd/internal/testenv"
)

// TestUntrustedSetAlertedOnce: sets planted on a target — unsigned, and signed by a key the
// daemon does not trust — are alerted once each, however many checks see them, and counted in
// backupd_untrusted_sets; a planted set that is deleted clears its alert.
func TestUntrustedSetAlertedOnce(t *testing.T) {
	hook := newWebhookReceiver(t)
	policy := testenv.UniqueName("untrusted")
	dir := t.TempDir()
	cfg := parseConfig(t, fmt.Sprintf(`
listen: 127.0.0.1:0
state_dir: %q
alerts:
  webhook: %q
  stale_after: 1000h
targets:
  local: {type: dir, path: %q}
encryption: {recipients: [%q]}
policies:
  %s:
    schedule: "0 3 1 1 *"
    catch_up: false
    mysql: {dsn: "root@tcp(127.0.0.1:1)/?timeout=1s", databases: [x]}
    targets: [local]
`, filepath.Join(dir, "state"), hook.URL+"/services/T0/B0/secret-token", filepath.Join(dir, "backups"), testRecipient(t), policy))
	tg, err := targets.Open("local", targets.Spec{Type: "dir", Path: filepath.Join(dir, "backups")}, targets.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	now := time.Now()
	plant := func(id string, sig []byte, body []byte) {
		if sig != nil {
			if err := tg.Put(ctx, backupset.SignatureKey(policy, id), bytes.NewReader(sig), int64(len(sig))); err != nil {
				t.Fatal(err)
			}
		}
		if err := tg.Put(ctx, backupset.ManifestKey(policy, id), bytes.NewReader(body), int64(len(body))); err != nil {
			t.Fatal(err)
		}
	}
	manifest := func(id string) []byte {
		b, _ := json.Marshal(backupset.Manifest{FormatVersion: backupset.FormatVersion, SetID: id, Policy: policy, StartedAt: now, FinishedAt: now})
		return b
	}
	unsigned, stranger := backupset.NewID(now.Add(-2*time.Hour)), backupset.NewID(now.Add(-time.Hour))
	plant(unsigned, nil, manifest(unsigned))
	sig, err := strangerSigner.Sign(signing.NamespaceManifest, manifest(stranger))
	if err != nil {
		t.Fatal(err)
	}
	plant(stranger, sig, manifest(stranger))

	d, err := New(cfg, Options{CheckInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	runErr := make(chan error, 1)
	go func() { runErr <- d.Run(runCtx) }()
	defer func() {
		cancel()
		if err := <-runErr; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	alerts := func() int { return countContaining(hook.titles(), ": untrusted set ") }
	waitFor(t, 20*time.Second, "two untrusted-set alerts", func() bool { return alerts() >= 2 })
	gauge := `backupd_untrusted_sets{policy="` + policy + `"}`
	waitFor(t, 20*time.Second, "a few seconds of checks", func() bool {
		// Each check sets the gauge; wait long enough for many checks to have seen the sets.
		return metricValue(t, d, gauge) == 2 && time.Since(now) > 3*time.Second
	})
	titles := hook.titles()
	if got := alerts(); got != 2 {
		t.Errorf("got %d untrusted-set alerts %q, want one per set", got, titles)
	}
	for _, id := range []string{unsigned, stranger} {
		if countContaining(titles, "untrusted set "+id) != 1 {
			t.Errorf("set %s: alerts %q, want exactly one naming it", id, titles)
		}
	}
	hook.mu.Lock()
	for _, b := range hook.bodies {
		if strings.Contains(b.Title, unsigned) && !strings.Contains(b.Text, "not signed") {
			t.Errorf("alert of the unsigned set says %q, want the reason", b.Text)
		}
	}
	hook.mu.Unlock()

	if _, _, err := backupset.DeleteSet(ctx, tg, policy, stranger); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the recovery notice of the deleted set", func() bool {
		return countContaining(hook.titles(), "set "+stranger+" is no longer") == 1
	})
	if got := metricValue(t, d, gauge); got != 1 {
		t.Errorf("%s = %v after deleting one planted set, want 1", gauge, got)
	}
}
