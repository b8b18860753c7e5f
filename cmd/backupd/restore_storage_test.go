package main

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/backupd/backupd/internal/testenv"
)

// TestRestoreStorageSpellings restores one storage snapshot with `backupd restore storage NAME`
// (the name before or after the options) and with today's `backupd restore --storage NAME`:
// every spelling brings back the same tree, and the usage mistakes of each are refused.
func TestRestoreStorageSpellings(t *testing.T) {
	isTerminal := restoreStdinIsTerminal
	t.Cleanup(func() { restoreStdinIsTerminal = isTerminal })
	restoreStdinIsTerminal = func() bool { return false } // go test's stdin may be a terminal
	tree := t.TempDir()
	want := map[string]string{}
	for i := range 12 {
		rel := filepath.Join(fmt.Sprintf("d%d", i%3), fmt.Sprintf("f%02d.txt", i))
		want[rel] = fmt.Sprintf("content %d\n", i)
		if err := os.MkdirAll(filepath.Join(tree, filepath.Dir(rel)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(tree, rel), []byte(want[rel]), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	keyFile, pub := testKey(t)
	policy := testenv.UniqueName("spell")
	cfg := writeConfig(t, fmt.Sprintf(`
targets:
  local: {type: dir, path: %s}
encryption: {recipients: [%s], identity_file: %s}
policies:
  %s:
    schedule: "@daily"
    storage:
      - {name: app, path: %s}
    targets: [local]
`, yamlString(t.TempDir()), pub, keyFile, policy, yamlString(tree)))
	if code, out, errOut := runCLI(t, "backup", "--config", cfg, "--policy", policy); code != exitOK {
		t.Fatalf("backup: exit %d\n%s%s", code, out, errOut)
	}
	sub := map[string]string{}
	for rel, c := range want {
		if strings.HasPrefix(rel, "d1/") {
			sub[rel] = c
		}
	}

	common := []string{"--config", cfg, "--policy", policy, "--yes"}
	for _, tc := range []struct {
		name string
		args func(dir string) []string
		want map[string]string
	}{
		{"restore storage NAME", func(dir string) []string {
			return append([]string{"restore", "storage", "app", "--to-dir", dir}, common...)
		}, want},
		{"restore storage, NAME after the options", func(dir string) []string {
			return append(append([]string{"restore", "storage", "--to-dir", dir}, common...), "app")
		}, want},
		{"restore --storage NAME", func(dir string) []string {
			return append([]string{"restore", "--storage", "app", "--to-dir", dir}, common...)
		}, want},
		{"restore storage NAME --path", func(dir string) []string {
			return append([]string{"restore", "storage", "app", "--to-dir", dir, "--path", "d1"}, common...)
		}, sub},
		{"restore --storage NAME --path", func(dir string) []string {
			return append([]string{"restore", "--storage", "app", "--to-dir", dir, "--path", "d1"}, common...)
		}, sub},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			code, out, errOut := runCLI(t, tc.args(dir)...)
			if code != exitOK {
				t.Fatalf("got exit %d, want 0\n%s%s", code, out, errOut)
			}
			if got := readTree(t, dir); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("restored tree:\ngot  %v\nwant %v", got, tc.want)
			}
		})
	}

	full := t.TempDir()
	os.WriteFile(filepath.Join(full, "x"), []byte("x"), 0o600)
	for _, tc := range []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string // in stdout
		wantErr  string // in stderr
	}{
		{"no name", []string{"restore", "storage", "--to-dir", t.TempDir()}, exitUsage, "", "needs the name of one storage source"},
		{"two names", []string{"restore", "storage", "app", "other", "--to-dir", t.TempDir()}, exitUsage, "", "got 2"},
		{"no destination", []string{"restore", "storage", "app", "--config", cfg, "--policy", policy, "--yes"}, exitUsage, "", "exactly one destination"},
		{"--to is for databases", []string{"restore", "storage", "app", "--to", "root@tcp(127.0.0.1:3306)/"}, exitUsage, "", "flag provided but not defined: -to"},
		{"unknown source", []string{"restore", "storage", "nope", "--to-dir", t.TempDir(), "--config", cfg, "--policy", policy, "--yes"}, exitUsage, "", `"nope" is not a storage source`},
		{"set and before", []string{"restore", "storage", "app", "--to-dir", t.TempDir(), "--set", "x", "--before", "2h"}, exitUsage, "", "--set and --before"},
		{"no confirmation", []string{"restore", "storage", "app", "--to-dir", t.TempDir(), "--config", cfg, "--policy", policy}, exitUsage, "", "--yes"},
		{"non-empty directory", []string{"restore", "storage", "app", "--to-dir", full, "--config", cfg, "--policy", policy, "--yes"}, exitUsage, "", "not empty"},
		{"old spelling: --to-dir without --storage", []string{"restore", "--to-dir", t.TempDir()}, exitUsage, "", "go with --storage NAME"},
		{"old spelling: --storage with --to", []string{"restore", "--storage", "app", "--to", "root@tcp(127.0.0.1:3306)/", "--to-dir", t.TempDir()}, exitUsage, "", "--to names a database server"},
		{"help", []string{"restore", "storage", "--help"}, exitOK, "Usage: backupd restore storage NAME", ""},
		{"help of restore lists storage apart", []string{"restore", "--help"}, exitOK, "Storage restore options (also: backupd restore storage NAME --help):\n  -overwrite", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, tc.args...)
			if code != tc.wantCode || !strings.Contains(out, tc.wantOut) || !strings.Contains(errOut, tc.wantErr) {
				t.Errorf("got exit %d, stdout %q, stderr %q; want exit %d, stdout with %q, stderr with %q", code, out, errOut, tc.wantCode, tc.wantOut, tc.wantErr)
			}
		})
	}
}

// readTree returns every regular file under dir, by slash-separated relative path.
func readTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	got := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		got[filepath.ToSlash(rel)] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}
