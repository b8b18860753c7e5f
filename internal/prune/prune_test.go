package prune

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"golang.org/x/crypto/ssh"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/backupd/backupd/internal/backupset"
	"github.com/backupd/backupd/internal/config"
	"github.com/backupd/backupd/internal/retention"
	"github.com/backupd/backupd/internal/targets"
)

// testRecipient is a public key for configs that need one; nothing is encrypted to it here.
func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

func testRecipient(t testing.TB) string {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return id.Recipient().String()
}

// parseConfig loads a config from YAML text written into a fresh directory.
func parseConfig(t testing.TB, yml string) *config.Config {
	t.Helper()
	path := filepath.Join(t.TempDir(), "backupd.yaml")
	if err := os.WriteFile(path, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	installTestSigningKey(t, cfg)
	return cfg
}

// installTestSigningKey makes daemonTestSigner this config's own signing key (unless the
// config names a key that exists), so that the sets the tests write by hand with it are the
// host's own and trusted.
func installTestSigningKey(t testing.TB, cfg *config.Config) {
	t.Helper()
	path := cfg.Signing.KeyFile
	if path == "" {
		return
	}
	if _, err := os.Stat(path); err == nil {
		return
	}
	block, err := ssh.MarshalPrivateKey(daemonTestKey, "daemon-test")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
}

// fakeSet writes a set (one data object, and a manifest when committed) straight into a dir
// target's directory, dated at: retention and garbage collection read only keys and times.
// (Writing the files directly skips the target's fsyncs, which would make a year slow.)
func fakeSet(t testing.TB, dir string, policy, id string, committed bool, at time.Time) {
	t.Helper()
	files := map[string][]byte{backupset.ObjectKey(policy, id, "shop/orders.00001.sql"): []byte("data")}
	if committed {
		m, _ := json.Marshal(backupset.Manifest{FormatVersion: 1, SetID: id, Policy: policy})
		files[backupset.ManifestKey(policy, id)] = m
		files[backupset.SignatureKey(policy, id)] = testSign(t, m)
	}
	for k, data := range files {
		path := filepath.Join(dir, filepath.FromSlash(k))
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, at, at); err != nil {
			t.Fatal(err)
		}
	}
}

// setsOn lists a target's sets: committed IDs and uncommitted IDs, oldest first.
func setsOn(t testing.TB, tgt targets.Target, policy string) (committed, uncommitted []string) {
	t.Helper()
	entries, err := backupset.SetKeys(context.Background(), tgt, policy)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Committed {
			committed = append(committed, e.ID)
		} else {
			uncommitted = append(uncommitted, e.ID)
		}
	}
	return committed, uncommitted
}

func targetByName(rep *Report, name string) *TargetReport {
	for _, tp := range rep.Targets {
		if tp.Target == name {
			return tp
		}
	}
	return nil
}

// TestPruneSimulatedYear runs the daemon's retention after each of a year of daily backups
// on two targets, with an injected clock: the second target misses a backup now and then,
// a drill protects an old set for a while, and a crashed backup leaves an uncommitted set.
// Every day the newest set survives, the target that missed the newest set is left alone,
// and the protected set outlives its rules; at the end each target holds exactly what one
// retention decision over its whole history keeps.
func TestPruneSimulatedYear(t *testing.T) {
	dirA, dirB := t.TempDir(), t.TempDir()
	cfg := parseConfig(t, fmt.Sprintf(`
targets:
  a: {type: dir, path: %q}
  b: {type: dir, path: %q}
encryption: {recipients: [%q]}
policies:
  shop:
    schedule: "CRON_TZ=UTC 0 3 * * *"
    mysql: {dsn: "root@tcp(127.0.0.1:3306)/"}
    targets: [a, b]
    min_targets: 1
    retention: {keep_last: 3, daily: 7, weekly: 4, monthly: 12, yearly: 2}
    uncommitted_grace: 24h
`, dirA, dirB, testRecipient(t)))
	p := cfg.Policies["shop"]
	open := func(name, dir string) targets.Target {
		tgt, err := targets.Open(name, targets.Spec{Type: "dir", Path: dir}, targets.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return tgt
	}
	a, b := open("a", dirA), open("b", dirB)
	ctx := context.Background()

	start := at("2025-11-27T03:00:00Z")
	var historyA, historyB []retention.Set
	var protectedID string
	var crashedID string
	var now time.Time
	for day := range 365 {
		now = start.AddDate(0, 0, day)
		id := backupset.NewID(now.Add(2 * time.Second))
		fakeSet(t, dirA, "shop", id, true, now.Add(time.Minute))
		historyA = append(historyA, retention.Set{ID: id, Time: now.Add(2 * time.Second), Committed: true})
		missedOnB := day%50 == 7
		if !missedOnB {
			fakeSet(t, dirB, "shop", id, true, now.Add(time.Minute))
			historyB = append(historyB, retention.Set{ID: id, Time: now.Add(2 * time.Second), Committed: true})
		}
		switch day {
		case 100:
			// A drill on another host reads the set of day 95 until day 120.
			protectedID = historyA[95].ID
			pr, _ := json.Marshal(backupset.Protection{SetID: protectedID, Holder: "drill", Host: "elsewhere", Expires: now.AddDate(0, 0, 20)})
			if err := targets.PutMutable(ctx, a, backupset.LocksPrefix("shop")+"protect/"+protectedID+"/drill-1.json", pr); err != nil {
				t.Fatal(err)
			}
		case 200:
			// A backup that crashed at 03:10, after today's retention ran.
			crashedID = backupset.NewID(now.Add(10 * time.Minute))
			fakeSet(t, dirA, "shop", crashedID, false, now.Add(10*time.Minute))
		}

		clock := now.Add(5 * time.Minute)
		rep, err := Run(ctx, cfg, p, Options{Now: func() time.Time { return clock }})
		if err != nil {
			t.Fatalf("day %d: Prune: %v", day, err)
		}
		ca, ua := setsOn(t, a, "shop")
		if !slices.Contains(ca, id) {
			t.Fatalf("day %d: the newest set %s was deleted from a", day, id)
		}
		tb := targetByName(rep, "b")
		if missedOnB != strings.Contains(tb.Skipped, "does not hold the newest committed set") {
			t.Errorf("day %d: target b missed the newest set: %v; got skipped %q", day, missedOnB, tb.Skipped)
		}
		if day >= 100 && day < 120 && !slices.Contains(ca, protectedID) {
			t.Fatalf("day %d: protected set %s was deleted while a drill used it", day, protectedID)
		}
		if day == 100 {
			d := slices.IndexFunc(targetByName(rep, "a").Decisions, func(d retention.Decision) bool { return d.ID == protectedID })
			if d < 0 || !strings.Contains(strings.Join(targetByName(rep, "a").Decisions[d].Reasons, "; "), "in use by drill on elsewhere") {
				t.Errorf("day 100: got no decision naming the drill's protection for %s", protectedID)
			}
		}
		switch {
		case day == 200 || day == 201:
			if !slices.Contains(ua, crashedID) {
				t.Errorf("day %d: uncommitted set %s collected within uncommitted_grace", day, crashedID)
			}
		case day > 201:
			if slices.Contains(ua, crashedID) {
				t.Errorf("day %d: uncommitted set %s still there, past uncommitted_grace", day, crashedID)
			}
		}
	}

	rpol := retention.Policy{KeepLast: 3, Daily: 7, Weekly: 4, Monthly: 12, Yearly: 2, Location: time.UTC}
	clock := now.Add(5 * time.Minute)
	for _, tc := range []struct {
		name    string
		tgt     targets.Target
		history []retention.Set
	}{{"a", a, historyA}, {"b", b, historyB}} {
		t.Run("final "+tc.name, func(t *testing.T) {
			var want []string
			for _, d := range retention.Select(tc.history, clock, rpol) {
				if d.Keep {
					want = append(want, d.ID)
				}
			}
			slices.Sort(want)
			got, _ := setsOn(t, tc.tgt, "shop")
			if !slices.Equal(got, want) {
				t.Errorf("got %d sets kept:\n%v\nwant %d:\n%v", len(got), got, len(want), want)
			}
			// keep_last 3 and daily 7 overlap; then 4 weeks, 12 months, 2 years.
			if len(got) < 15 || len(got) > 25 {
				t.Errorf("got %d sets after a year, want about 7 daily + 4 weekly + 12 monthly", len(got))
			}
		})
	}

	t.Run("dry run shows every set with its reasons and deletes nothing", func(t *testing.T) {
		later := clock.AddDate(0, 0, 3)
		for i := range 3 {
			day := clock.AddDate(0, 0, i+1).Add(-5 * time.Minute)
			id := backupset.NewID(day)
			fakeSet(t, dirA, "shop", id, true, day)
			fakeSet(t, dirB, "shop", id, true, day)
		}
		before, _ := setsOn(t, a, "shop")
		rep, err := Run(ctx, cfg, p, Options{DryRun: true, Now: func() time.Time { return later }})
		if err != nil {
			t.Fatal(err)
		}
		after, _ := setsOn(t, a, "shop")
		if !slices.Equal(before, after) {
			t.Errorf("dry run deleted sets: before %d, after %d", len(before), len(after))
		}
		var out bytes.Buffer
		rep.Write(&out)
		text := out.String()
		for _, id := range before {
			line := ""
			for l := range strings.Lines(text) {
				if strings.Contains(l, id) {
					line = l
					break
				}
			}
			if !(strings.HasPrefix(strings.TrimSpace(line), "keep") || strings.HasPrefix(strings.TrimSpace(line), "delete")) || len(strings.Fields(line)) < 3 {
				t.Errorf("set %s: got line %q, want keep or delete with a reason", id, line)
			}
		}
		for _, want := range []string{"dry run: nothing is deleted", "newest committed set", "not selected by any rule", "would delete"} {
			if !strings.Contains(text, want) {
				t.Errorf("got report\n%s\nwant it to contain %q", text, want)
			}
		}
	})
}

// TestPruneWithoutRetention: an all-zero retention prunes nothing, but garbage collection of
// uncommitted sets still runs.
func TestPruneWithoutRetention(t *testing.T) {
	dir := t.TempDir()
	cfg := parseConfig(t, fmt.Sprintf(`
targets:
  a: {type: dir, path: %q}
encryption: {recipients: [%q]}
policies:
  p:
    schedule: "@daily"
    mysql: {dsn: "root@tcp(127.0.0.1:3306)/"}
    targets: [a]
`, dir, testRecipient(t)))
	tgt, err := targets.Open("a", targets.Spec{Type: "dir", Path: dir}, targets.Options{})
	if err != nil {
		t.Fatal(err)
	}
	now := at("2026-11-27T12:00:00Z")
	for i := range 5 {
		d := now.AddDate(0, 0, -i)
		fakeSet(t, dir, "p", backupset.NewID(d), true, d)
	}
	old := backupset.NewID(now.AddDate(0, 0, -3))
	fakeSet(t, dir, "p", old, false, now.AddDate(0, 0, -3))
	rep, err := Run(context.Background(), cfg, cfg.Policies["p"], Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	committed, uncommitted := setsOn(t, tgt, "p")
	if len(committed) != 5 || len(uncommitted) != 0 {
		t.Errorf("got %d committed and %d uncommitted sets, want 5 and 0", len(committed), len(uncommitted))
	}
	if tp := rep.Targets[0]; !strings.Contains(tp.Skipped, "no retention is configured") || !slices.Equal(tp.Collected, []string{old}) {
		t.Errorf("got skipped %q, collected %v; want no retention and %s collected", tp.Skipped, tp.Collected, old)
	}
}
