package main

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/retention"
	"github.com/backupd/backupd/internal/testenv"
)

// TestPruneKeepsDrilledSet: with keep_last 1, the newest set that passed a drill survives two
// newer sets that nobody drilled, with the reason in `prune --dry-run`, and a real prune then
// deletes only the set between them.
func TestPruneKeepsDrilledSet(t *testing.T) {
	dsn := testenv.MariaDBDSN(t)
	shop := drillLoadShop(t, dsn)
	keyFile, pub := testKey(t)
	policy := testenv.UniqueName("proven")
	drillTempDir(t)
	cfg := writeConfig(t, fmt.Sprintf(`
state_dir: %[1]s/state
targets:
  local: {type: dir, path: %[1]s/target}
encryption:
  recipients: [%[2]s]
  identity_file: %[3]s
policies:
  %[4]s:
    schedule: "@daily"
    mysql:
      dsn: %[5]s
      databases: [%[6]s]
    targets: [local]
    retention: {keep_last: 1}
    drill:
      scratch: {dsn: %[5]s}
`, t.TempDir(), pub, keyFile, policy, yamlString(dsn), shop))

	backup := func() string {
		t.Helper()
		before := listJSON(t, cfg, policy)
		// Set IDs carry the second they start in: start each backup in a second of its own, so
		// that "newer" is unambiguous.
		time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second)))
		if code, out, errOut := runCLI(t, "backup", "--config", cfg, "--policy", policy); code != 0 {
			t.Fatalf("backup: exit %d\n%s\n%s", code, out, errOut)
		}
		after := listJSON(t, cfg, policy)
		if len(after) != len(before)+1 {
			t.Fatalf("got %d sets after a backup, want %d", len(after), len(before)+1)
		}
		return after[len(after)-1].ID
	}
	// The first backup is pruned by the ones after it: keep_last 1 and no proof yet.
	backup()
	drilled := backup()
	if code, out, errOut := runCLI(t, "drill", "--config", cfg, "--policy", policy); code != 0 {
		t.Fatalf("drill: exit %d\n%s\n%s", code, out, errOut)
	}
	middle := backup()
	newest := backup()

	code, out, errOut := runCLI(t, "prune", "--config", cfg, "--policy", policy, "--dry-run")
	if code != 0 {
		t.Fatalf("prune --dry-run: exit %d\n%s\n%s", code, out, errOut)
	}
	for _, tc := range []struct{ id, want string }{
		{drilled, "keep"},
		{middle, "delete"},
		{newest, "keep"},
	} {
		line := lineWith(out, tc.id)
		if f := strings.Fields(line); len(f) < 2 || f[0] != tc.want || f[1] != tc.id {
			t.Errorf("prune --dry-run: got %q for set %s, want %s\n%s", line, tc.id, tc.want, out)
		}
	}
	if line := lineWith(out, drilled); !strings.Contains(line, retention.ReasonProven) {
		t.Errorf("prune --dry-run: got %q for the drilled set, want the reason %q", line, retention.ReasonProven)
	}

	if code, out, errOut := runCLI(t, "prune", "--config", cfg, "--policy", policy); code != 0 {
		t.Fatalf("prune: exit %d\n%s\n%s", code, out, errOut)
	}
	var got []string
	for _, s := range listJSON(t, cfg, policy) {
		got = append(got, s.ID)
	}
	if want := []string{drilled, newest}; !slices.Equal(got, want) {
		t.Errorf("after prune: got sets %v, want %v (the drilled set and the newest)", got, want)
	}
}

// lineWith returns the first line of s that contains sub, or "".
func lineWith(s, sub string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return l
		}
	}
	return ""
}
