package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/backupset"
	"github.com/backupd/backupd/internal/config"
	"github.com/backupd/backupd/internal/keys"
	"github.com/backupd/backupd/internal/signing"
	"github.com/backupd/backupd/internal/targets"
	"github.com/backupd/backupd/internal/testenv"
)

// claimsTarget is the YAML of a target for the claim tests: a dir target, or a fresh MinIO
// bucket.
func claimsTarget(t *testing.T, kind, dir string) string {
	if kind == "dir" {
		return fmt.Sprintf("{type: dir, path: %q}", filepath.Join(dir, "backups"))
	}
	srv := testenv.MinIO(t)
	return fmt.Sprintf("{type: s3, endpoint: %q, region: %q, bucket: %q, bucket_lookup: path, access_key: %q, secret_key: %q}",
		srv.Endpoint, srv.Region, testenv.NewBucket(t, srv), srv.AccessKey, srv.SecretKey)
}

// writeKey generates a host's signing key at path (signing.key_file).
func writeKey(t *testing.T, path string, i int) {
	t.Helper()
	if _, err := signing.GenerateKey(path, fmt.Sprintf("host-%d", i)); err != nil {
		t.Fatal(err)
	}
}

// claimsConfig is a policy on one target, trusting the keys in trusted (public key lines).
func claimsConfig(t *testing.T, dir, target, hook, dsn, db, keyFile string, trusted []string, extra string) *config.Config {
	t.Helper()
	policy := testenv.UniqueName("claims")
	return parseConfig(t, fmt.Sprintf(`
listen: 127.0.0.1:0
state_dir: %q
alerts: {webhook: %q%s}
signing: {key_file: %q, trusted_keys: [%s]}
targets:
  main: %s
encryption: {recipients: [%q]}
policies:
  %s:
    schedule: "@every 1h"
    mysql: {dsn: %q, databases: [%s]}
    targets: [main]
`, filepath.Join(dir, "state"), hook, extra, keyFile, quoteAll(trusted), target, testRecipient(t), policy, dsn, db))
}

func quoteAll(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}

func onlyPolicy(cfg *config.Config) *config.Policy {
	for _, p := range cfg.Policies {
		return p
	}
	return nil
}

func publicLine(t *testing.T, keyFile string) string {
	t.Helper()
	s, err := signing.LoadKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return s.Public().AuthorizedKey
}

// TestPlantedClaimsDoNotStopBackups: an unsigned claim at the tick being run, one at
// 99991231T000000Z, and one signed by a key nobody trusts each leave the tick to this host
// (a set commits at each of two ticks) and raise one alert naming the object, not one per tick.
func TestPlantedClaimsDoNotStopBackups(t *testing.T) {
	dsn := testenv.MariaDBDSN(t)
	db := testenv.SmallDatabase(t, dsn, "clm")
	tick := time.Now().UTC().Truncate(time.Hour)
	unsigned := []byte(`{"job":"backup","tick":"` + tick.Format(time.RFC3339) + `","host":"evil","state":"running","expires":"9999-12-31T00:00:00Z"}`)
	future := time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)
	for _, kind := range []string{"dir", "minio"} {
		for _, tt := range []struct {
			name string
			at   time.Time
			body func() []byte
		}{
			{"unsigned claim at the tick", tick, func() []byte { return unsigned }},
			{"unsigned claim at 99991231T000000Z", future, func() []byte { return unsigned }},
			{"claim at the tick signed by an untrusted key", tick, func() []byte {
				b, err := sealClaim(testKeys[2], claim{Job: KindBackup, Tick: tick, Host: "evil", State: "running", Expires: future})
				if err != nil {
					t.Fatal(err)
				}
				return b
			}},
			{"signed claim at 99991231T000000Z by an untrusted key", future, func() []byte {
				b, _ := sealClaim(testKeys[2], claim{Job: KindBackup, Tick: future, Host: "evil", State: "running", Expires: future})
				return b
			}},
		} {
			t.Run(kind+"/"+tt.name, func(t *testing.T) {
				ctx := context.Background()
				dir := t.TempDir()
				hook := newWebhookReceiver(t)
				keyFile := filepath.Join(dir, "signing.key")
				writeKey(t, keyFile, 0)
				cfg := claimsConfig(t, dir, claimsTarget(t, kind, dir), hook.URL, dsn, db, keyFile, []string{publicLine(t, keyFile)}, `, stale_after: "off"`)
				p := onlyPolicy(cfg)
				dests, err := cfg.OpenTargets(p, targets.Options{})
				if err != nil {
					t.Fatal(err)
				}
				planted := claimKey(p.Name, KindBackup, tt.at)
				body := tt.body()
				if err := dests[0].Target.Put(ctx, planted, bytes.NewReader(body), int64(len(body))); err != nil {
					t.Fatal(err)
				}
				d, err := New(cfg, Options{Logger: slog.New(slog.DiscardHandler)})
				if err != nil {
					t.Fatal(err)
				}
				for i, tk := range []time.Time{tick, tick.Add(time.Hour)} {
					if err := d.runBackup(ctx, cfg, p, tk); err != nil {
						t.Fatalf("tick %d (%s): got %v, want a committed set", i, tk, err)
					}
					trust, _, err := keys.Verifier(cfg)
					if err != nil {
						t.Fatal(err)
					}
					n, _, err := newestCommitted(ctx, dests, p.Name, time.Now().Add(2*time.Hour), trust)
					if err != nil || n.ID == "" {
						t.Fatalf("after tick %d: newest committed set %q, %v; want one", i, n.ID, err)
					}
				}
				var alerts []string
				hook.mu.Lock()
				for _, b := range hook.bodies {
					if b.Title == p.Name+": untrusted lease claim ignored" {
						alerts = append(alerts, b.Text)
					}
				}
				hook.mu.Unlock()
				if len(alerts) != 1 || !strings.Contains(alerts[0], planted) {
					t.Errorf("got %d untrusted-claim alerts %q, want one naming %s", len(alerts), alerts, planted)
				}
				// The planted object is left where it is: deleting it could let two hosts run.
				rc, err := dests[0].Target.Get(ctx, planted)
				if err != nil {
					t.Fatalf("the planted claim: %v, want it left in place", err)
				}
				rc.Close()
				// Once an operator deletes it, the next tick clears the alert, once.
				if err := dests[0].Target.Delete(ctx, planted); err != nil {
					t.Fatal(err)
				}
				for _, tk := range []time.Time{tick.Add(2 * time.Hour), tick.Add(3 * time.Hour)} {
					if err := d.runBackup(ctx, cfg, p, tk); err != nil {
						t.Fatalf("tick %s after the planted claim was deleted: %v", tk, err)
					}
				}
				if got := countContaining(hook.titles(), p.Name+": untrusted lease claim removed"); got != 1 {
					t.Errorf("after deleting the planted claim: got %d recovery notices (webhook calls %q), want 1", got, hook.titles())
				}
			})
		}
	}
}

// TestTwoDaemonsSignedClaims: two hosts with their own keys, each trusting both, run each
// tick once between them.
func TestTwoDaemonsSignedClaims(t *testing.T) {
	dsn := testenv.MariaDBDSN(t)
	db := testenv.SmallDatabase(t, dsn, "clm")
	for _, kind := range []string{"dir", "minio"} {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			target := claimsTarget(t, kind, dir)
			hook := newWebhookReceiver(t)
			keyA, keyB := filepath.Join(dir, "a.key"), filepath.Join(dir, "b.key")
			writeKey(t, keyA, 0)
			writeKey(t, keyB, 1)
			trusted := []string{publicLine(t, keyA), publicLine(t, keyB)}
			cfgA := claimsConfig(t, filepath.Join(dir, "a"), target, hook.URL, dsn, db, keyA, trusted, `, stale_after: "off"`)
			pA := onlyPolicy(cfgA)
			// Host B runs the same policy (same name) with its own key and state.
			cfgB := claimsConfig(t, filepath.Join(dir, "b"), target, hook.URL, dsn, db, keyB, trusted, `, stale_after: "off"`)
			pB := onlyPolicy(cfgB)
			delete(cfgB.Policies, pB.Name)
			pB.Name = pA.Name
			cfgB.Policies[pA.Name] = pB
			var ds [2]*Daemon
			for i, cfg := range []*config.Config{cfgA, cfgB} {
				d, err := New(cfg, Options{Logger: slog.New(slog.DiscardHandler)})
				if err != nil {
					t.Fatal(err)
				}
				d.leases.host = fmt.Sprintf("host-%c", 'a'+i)
				ds[i] = d
			}
			tick := time.Now().UTC().Truncate(time.Hour)
			for n := range 2 {
				tk := tick.Add(time.Duration(n) * time.Hour)
				var errs [2]error
				var wg sync.WaitGroup
				for i, d := range ds {
					cfg, p := cfgA, pA
					if i == 1 {
						cfg, p = cfgB, pB
					}
					wg.Go(func() { errs[i] = d.runBackup(ctx, cfg, p, tk) })
				}
				wg.Wait()
				ran := 0
				for i, err := range errs {
					switch {
					case err == nil:
						ran++
					case !errors.Is(err, ErrSkipped):
						t.Errorf("tick %d host %d: got %v, want a set or ErrSkipped", n, i, err)
					}
				}
				if ran != 1 {
					t.Errorf("tick %d: %d hosts ran it (errors %v), want 1", n, ran, errs)
				}
			}
			dests, err := cfgA.OpenTargets(pA, targets.Options{})
			if err != nil {
				t.Fatal(err)
			}
			entries, err := backupset.SetKeysOnly(ctx, dests[0].Target, pA.Name)
			if err != nil {
				t.Fatal(err)
			}
			committed := 0
			for _, e := range entries {
				if e.Committed {
					committed++
				}
			}
			if committed != 2 {
				t.Errorf("got %d committed sets, want 2 (one per tick)", committed)
			}
			for _, title := range hook.titles() {
				if strings.Contains(title, "untrusted") {
					t.Errorf("got alert %q between two trusted hosts", title)
				}
			}
		})
	}
}

// TestSkippedTicksRaiseStale: with the stale threshold derived from the schedule (which a
// fresh daemon is far from), ticks skipped in a row because another host's run seems to go on
// for ever raise the stale alert at the third, once.
func TestSkippedTicksRaiseStale(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	hook := newWebhookReceiver(t)
	keyFile := filepath.Join(dir, "signing.key")
	writeKey(t, keyFile, 0)
	cfg := claimsConfig(t, dir, claimsTarget(t, "dir", dir), hook.URL, "root@tcp(127.0.0.1:1)/", "x", keyFile,
		[]string{publicLine(t, keyFile), testKeys[1].Public().AuthorizedKey,
			daemonTestSigner.Public().AuthorizedKey}, "") // the last key signs fakeSet's sets
	p := onlyPolicy(cfg)
	dests, err := cfg.OpenTargets(p, targets.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tick := time.Now().UTC().Truncate(time.Hour)
	// A trusted host's claim of the previous tick that says it still runs, for a long time.
	stuck, err := sealClaim(testKeys[1], claim{Job: KindBackup, Tick: tick.Add(-time.Hour), Host: "host-b", State: "running",
		Acquired: tick.Add(-time.Hour), Expires: tick.Add(24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if err := targets.PutIfAbsent(ctx, dests[0].Target, claimKey(p.Name, KindBackup, tick.Add(-time.Hour)), stuck); err != nil {
		t.Fatal(err)
	}
	d, err := New(cfg, Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	stale := p.Name + ": no recent backup"
	for i, want := range []int{0, 0, 1, 1} {
		err := d.runBackup(ctx, cfg, p, tick.Add(time.Duration(i)*time.Hour))
		if !errors.Is(err, ErrSkipped) || !errors.Is(err, errBusy) {
			t.Fatalf("tick %d: got %v, want skipped (busy)", i, err)
		}
		if got := countContaining(hook.titles(), stale); got != want {
			t.Errorf("after %d skipped ticks: got %d stale alerts, want %d", i+1, got, want)
		}
	}

	// A committed set appearing ends it: one recovery notice.
	fresh := time.Now()
	fakeSet(t, filepath.Join(dir, "backups"), p.Name, backupset.NewID(fresh), true, fresh)
	d.checkStale(ctx, cfg, p)
	if got := countContaining(hook.titles(), p.Name+": backups are recent again"); got != 1 {
		t.Errorf("after a new set: got %d recovery notices (webhook calls %q), want 1", got, hook.titles())
	}
}
