package targets_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/backupd/backupd/internal/targets"
)

// testOptions wires the real wrappers, with retry warnings in the test log.
func testOptions(t *testing.T) targets.Options {
	opts, _ := testOptionsReg(t)
	return opts
}

// testOptionsReg is testOptions with the registry that holds the target's metrics.
func testOptionsReg(t *testing.T) (targets.Options, *prometheus.Registry) {
	reg := prometheus.NewRegistry()
	return targets.Options{
		Logger:  slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
		Metrics: targets.NewMetrics(reg),
	}, reg
}

// metricSum adds up the samples of a counter whose labels include the given ones.
func metricSum(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue metrics
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

func openDir(t *testing.T, root string) targets.Target {
	t.Helper()
	tgt, err := targets.Open("local", targets.Spec{Type: "dir", Path: root}, testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	return tgt
}

// files lists every file and directory under root, temporary files included.
func files(t *testing.T, root string) []string {
	t.Helper()
	var got []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel != "." {
			got = append(got, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestDirRejectsEscapes(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "root")
	outside := filepath.Join(base, "outside")
	for _, d := range []string{root, outside} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("do not read"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A symlink inside the root that points out of it, as a careless admin might make.
	if err := os.Symlink(outside, filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	tgt := openDir(t, root)
	ctx := context.Background()

	for _, key := range []string{"../outside/new", "a/../../outside/new", "/etc/passwd", "link/../../outside/new"} {
		err := tgt.Put(ctx, key, bytes.NewReader([]byte("x")), 1)
		if !errors.Is(err, targets.ErrInvalidKey) {
			t.Errorf("put %q: got %v, want an error wrapping ErrInvalidKey", key, err)
		}
		if err != nil && !strings.Contains(err.Error(), key) {
			t.Errorf("put %q: error %q does not name the key", key, err)
		}
	}

	// Lexically fine keys that resolve outside through the symlink.
	if err := tgt.Put(ctx, "link/new", bytes.NewReader([]byte("x")), 1); err == nil {
		t.Errorf("put through a symlink leaving the root: got nil, want an error")
	}
	if _, err := tgt.Get(ctx, "link/secret"); err == nil {
		t.Errorf("get through a symlink leaving the root: got nil, want an error")
	}
	if _, err := tgt.Stat(ctx, "link/secret"); err == nil {
		t.Errorf("stat through a symlink leaving the root: got nil, want an error")
	}
	if err := tgt.Delete(ctx, "link/secret"); err == nil {
		t.Errorf("delete through a symlink leaving the root: got nil, want an error")
	}
	var listed []string
	if err := tgt.List(ctx, "", func(oi targets.ObjectInfo) error { listed = append(listed, oi.Key); return nil }); err != nil {
		t.Errorf("list: %v", err)
	}
	if len(listed) != 0 {
		t.Errorf("list: got %q, want nothing (the symlink leads outside the root)", listed)
	}
	if got := files(t, outside); len(got) != 1 || got[0] != "secret" {
		t.Errorf("outside the root: got %q, want only [secret]", got)
	}
	if b, _ := os.ReadFile(filepath.Join(outside, "secret")); string(b) != "do not read" {
		t.Errorf("file outside the root changed: %q", b)
	}

	if err := tgt.Put(ctx, "a/.backupd-tmp-x", bytes.NewReader(nil), 0); !errors.Is(err, targets.ErrInvalidKey) {
		t.Errorf("put with the reserved temp prefix: got %v, want ErrInvalidKey", err)
	}
}

func TestDirNoTempFilesLeft(t *testing.T) {
	root := t.TempDir()
	tgt := openDir(t, root)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := tgt.Put(ctx, "a/b", bytes.NewReader(make([]byte, 10)), 10); !errors.Is(err, context.Canceled) {
		t.Errorf("put with a cancelled context: got %v, want context.Canceled", err)
	}
	if err := tgt.Put(context.Background(), "a/c", bytes.NewReader(make([]byte, 10)), 11); err == nil {
		t.Errorf("put of a short reader: got nil, want an error")
	}
	for _, f := range files(t, root) {
		if strings.Contains(f, ".backupd-tmp-") {
			t.Errorf("temporary file left behind: %s", f)
		}
	}
}

func TestDirCreatesRootAndCleansEmptyParents(t *testing.T) {
	root := filepath.Join(t.TempDir(), "not", "yet")
	tgt := openDir(t, root)
	ctx := context.Background()

	if err := tgt.List(ctx, "", func(targets.ObjectInfo) error { return nil }); err != nil {
		t.Errorf("list of a root that does not exist yet: got %v, want nil", err)
	}
	if _, err := tgt.Stat(ctx, "x"); !errors.Is(err, targets.ErrNotFound) {
		t.Errorf("stat in a root that does not exist yet: got %v, want ErrNotFound", err)
	}
	for _, k := range []string{"set/db/t1", "set/db/t2", "other"} {
		if err := tgt.Put(ctx, k, bytes.NewReader([]byte(k)), int64(len(k))); err != nil {
			t.Fatalf("put %s: %v", k, err)
		}
	}
	fi, err := os.Stat(filepath.Join(root, "set", "db", "t1"))
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("object mode: got %v, want 0600", perm)
	}
	for _, k := range []string{"set/db/t1", "set/db/t2"} {
		if err := tgt.Delete(ctx, k); err != nil {
			t.Fatalf("delete %s: %v", k, err)
		}
	}
	if got := files(t, root); len(got) != 1 || got[0] != "other" {
		t.Errorf("after deleting set/db/*: got %q, want only [other] (empty parents removed)", got)
	}
	if err := tgt.Delete(ctx, "other"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(root); err != nil {
		t.Errorf("the root itself must survive deleting every object: %v", err)
	}
}

func TestDirNeedsAbsolutePath(t *testing.T) {
	for _, p := range []string{"", "backups", "./backups"} {
		if _, err := targets.Open("local", targets.Spec{Type: "dir", Path: p}, targets.Options{}); err == nil {
			t.Errorf("open dir with path %q: got nil, want an error", p)
		} else if !strings.Contains(err.Error(), "local") {
			t.Errorf("open dir with path %q: error %q does not name the target", p, err)
		}
	}
}
