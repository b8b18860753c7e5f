package storage

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/backupd/backupd/internal/backupset"
)

func TestRoundTripDirTargets(t *testing.T) {
	ctx := context.Background()
	k := newTestKeys(t)
	src := filepath.Join(t.TempDir(), "src")
	smallTree(t, src)
	a, _ := newDirTarget(t, "a")
	b, _ := newDirTarget(t, "b")
	dests := []backupset.Dest{a, b}
	spec := SourceSpec{Name: "uploads", Path: src}

	id1, r1 := makeSet(t, ctx, k, dests, spec, snapOpts{})
	t.Logf("first: files %d bytes %d new %d packs %d uploaded %v warnings %v", r1.Files, r1.Bytes, r1.NewBytes, r1.NewPacks, r1.Uploaded, r1.Warnings)
	id2, r2 := makeSet(t, ctx, k, dests, spec, snapOpts{})
	t.Logf("second: new %d reused %d packs %d uploaded %v", r2.NewBytes, r2.ReusedBytes, r2.NewPacks, r2.Uploaded)
	if r2.NewBytes != 0 {
		t.Errorf("second snapshot of an unchanged tree stored %d new bytes, want 0", r2.NewBytes)
	}
	want := scanTree(t, src)
	for _, id := range []string{id1, id2} {
		for i, from := range [][]backupset.Dest{{a, b}, {b, a}} {
			dst := filepath.Join(t.TempDir(), "out")
			res, err := restoreDir(t, ctx, k, from, id, "uploads", dst, nil)
			if err != nil {
				t.Fatalf("restore %s (order %d): %v", id, i, err)
			}
			compareTrees(t, want, scanTree(t, dst), cmpOpts{meta: true})
			if out, err := exec.Command("diff", "-r", "--no-dereference", src, dst).CombinedOutput(); err != nil {
				t.Errorf("diff -r: %v\n%s", err, out)
			}
			if res.Fallbacks != 0 {
				t.Errorf("got %d fallbacks, want 0", res.Fallbacks)
			}
		}
	}
}
