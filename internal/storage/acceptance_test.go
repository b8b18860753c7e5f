package storage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/backupset"
	"github.com/backupd/backupd/internal/targets"
	"github.com/backupd/backupd/internal/testenv"
)

// The acceptance tree of the issue: unicode and space names, empty directories, symlinks, a
// 0-byte file, a 200 MiB file, 20 000 small files, modes 0600/0755, a few foreign owners.
const (
	bigFileSize = 200 << 20
	smallDirs   = 200
	smallPerDir = 100
)

var shared struct {
	once sync.Once
	dir  string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}

// bigTree builds the acceptance tree once per test binary and returns its path. Tests that
// change it must put it back.
func bigTree(t testing.TB) string {
	t.Helper()
	shared.once.Do(func() {
		dir, err := os.MkdirTemp("", "backupd-files-tree-")
		if err != nil {
			shared.err = err
			return
		}
		shared.dir = dir
		start := time.Now()
		buildBigTree(t, filepath.Join(dir, "tree"))
		t.Logf("built the acceptance tree in %v", time.Since(start))
	})
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return filepath.Join(shared.dir, "tree")
}

func buildBigTree(t testing.TB, root string) {
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(root, 0o755))
	smallTree(t, root) // unicode, spaces, symlinks, 0-byte, duplicates
	must(os.MkdirAll(filepath.Join(root, "empty dir"), 0o755))
	must(os.MkdirAll(filepath.Join(root, "private"), 0o700))
	must(os.WriteFile(filepath.Join(root, "private", "secret.env"), []byte("APP_KEY=base64:xyz\n"), 0o600))
	must(os.MkdirAll(filepath.Join(root, "bin"), 0o755))
	must(os.WriteFile(filepath.Join(root, "bin", "run.sh"), []byte("#!/bin/sh\necho ok\n"), 0o755))
	writeRandom(t, filepath.Join(root, "big file.bin"), bigFileSize, 42, 0o600)
	modes := []fs.FileMode{0o600, 0o644, 0o755}
	for d := range smallDirs {
		dir := filepath.Join(root, "uploads", fmt.Sprintf("2025-%03d", d))
		must(os.MkdirAll(dir, 0o755))
		for f := range smallPerDir {
			i := d*smallPerDir + f
			size := 100 + (i*7919)%8000
			p := filepath.Join(dir, fmt.Sprintf("img %05d.jpg", i))
			must(os.WriteFile(p, randomBytes(uint64(1000+i), size), modes[i%3]))
			must(os.Chmod(p, modes[i%3]))
			if i%1000 == 0 {
				must(os.Lchown(p, 33, 33)) // www-data
			}
		}
	}
	stampTimes(t, root)
}

func smallFile(root string, i int) string {
	return filepath.Join(root, "uploads", fmt.Sprintf("2025-%03d", i/smallPerDir), fmt.Sprintf("img %05d.jpg", i))
}

func diffR(t testing.TB, a, b string) {
	t.Helper()
	if out, err := exec.Command("diff", "-r", "--no-dereference", a, b).CombinedOutput(); err != nil {
		t.Errorf("diff -r %s %s: %v\n%.2000s", a, b, err, out)
	}
}

// TestAcceptanceDirectorySource: the acceptance tree from a directory to a versitygw target:
// exact round trip, dedup figures, garbage collection of the older sets.
func TestAcceptanceDirectorySource(t *testing.T) {
	ctx := context.Background()
	vgw := testenv.Versity(t)
	tree := bigTree(t)
	k := newTestKeys(t)
	dest := s3Dest(t, "versitygw", s3Bucket(t, vgw))
	dests := []backupset.Dest{dest}
	spec := SourceSpec{Name: "app", Path: tree}
	want := scanTree(t, tree)

	start := time.Now()
	id1, r1 := makeSet(t, ctx, k, dests, spec, snapOpts{})
	bytes1 := policyBytes(t, dest.Target)
	t.Logf("set 1: %d files, %d bytes of files, %d bytes on the target, %d packs, %v", r1.Files, r1.Bytes, bytes1, r1.NewPacks, time.Since(start))

	t.Run("restore exactly", func(t *testing.T) {
		dst := filepath.Join(t.TempDir(), "out")
		res, err := restoreDir(t, ctx, k, dests, id1, "app", dst, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("restored %d files, %d bytes in %v", res.Files, res.Bytes, res.Duration)
		compareTrees(t, want, scanTree(t, dst), cmpOpts{meta: true})
		diffR(t, tree, dst)
	})

	id2, r2 := makeSet(t, ctx, k, dests, spec, snapOpts{})
	bytes2 := policyBytes(t, dest.Target)
	added2 := bytes2 - bytes1
	t.Logf("set 2 (unchanged tree): %d bytes added on the target = %.4f%% of set 1's %d; new plaintext %d, reused %d",
		added2, 100*float64(added2)/float64(bytes1), bytes1, r2.NewBytes, r2.ReusedBytes)
	if added2*100 >= bytes1 {
		t.Errorf("second snapshot added %d bytes, want under 1%% of %d", added2, bytes1)
	}

	// One small file changes; put it back afterwards for the other tests.
	changed := smallFile(tree, 4257) // 8058 bytes, among the largest small files
	orig, err := os.ReadFile(changed)
	if err != nil {
		t.Fatal(err)
	}
	origInfo, _ := os.Stat(changed)
	t.Cleanup(func() {
		os.WriteFile(changed, orig, 0)
		os.Chtimes(changed, origInfo.ModTime(), origInfo.ModTime())
	})
	if err := os.WriteFile(changed, randomBytes(999, len(orig)), 0); err != nil {
		t.Fatal(err)
	}
	before := objectSizes(t, dest.Target)
	id3, r3 := makeSet(t, ctx, k, dests, spec, snapOpts{})
	bytes3 := policyBytes(t, dest.Target)
	added3 := bytes3 - bytes2
	t.Logf("set 3 (one %d-byte file changed): %d bytes added on the target (the file + %d); new plaintext %d in %d packs; new objects:\n%s",
		len(orig), added3, added3-int64(len(orig)), r3.NewBytes, r3.NewPacks, newObjects(before, objectSizes(t, dest.Target)))
	if limit := int64(len(orig)) + 64<<10; added3 > limit {
		t.Errorf("one changed %d-byte file added %d bytes, want at most %d (the file plus an index chunk and the set's own objects)", len(orig), added3, limit)
	}
	want3 := scanTree(t, tree)
	dst3 := filepath.Join(t.TempDir(), "out")
	if _, err := restoreDir(t, ctx, k, dests, id3, "app", dst3, nil); err != nil {
		t.Fatal(err)
	}
	compareTrees(t, want3, scanTree(t, dst3), cmpOpts{meta: true})
	os.RemoveAll(dst3)

	// Set 4 lacks the big file, so most of its packs are referenced only by sets 1-3.
	big := filepath.Join(tree, "big file.bin")
	aside := filepath.Join(filepath.Dir(tree), "big file.bin")
	if err := os.Rename(big, aside); err != nil {
		t.Fatal(err)
	}
	id4, _ := makeSet(t, ctx, k, dests, spec, snapOpts{})
	want4 := scanTree(t, tree)
	t.Cleanup(func() { os.Rename(aside, big) })

	t.Run("garbage collection after deleting the older sets", func(t *testing.T) {
		all := map[string]bool{}
		for _, id := range listPackIDs(t, dest.Target) {
			all[id] = true
		}
		keep := map[string]bool{}
		for _, p := range setPacks(t, dest.Target, id4) {
			keep[p] = true
		}
		var wantGone []string
		for id := range all {
			if !keep[id] {
				wantGone = append(wantGone, id)
			}
		}
		sort.Strings(wantGone)
		if len(wantGone) == 0 {
			t.Fatal("set 4 references every pack; the test needs garbage to collect")
		}
		for _, id := range []string{id1, id2, id3} {
			deleteSet(t, dest.Target, id)
		}
		gcOpts := GCOptions{Trust: testTrust, Now: func() time.Time { return time.Now().Add(7 * time.Hour) }} // past the grace period
		dry, err := GC(ctx, dest.Target, testPolicy, withDryRun(gcOpts))
		if err != nil {
			t.Fatal(err)
		}
		if got := packIDsOf(dry.Deleted); !slices.Equal(got, wantGone) {
			t.Errorf("dry run would delete packs %v, want %v", got, wantGone)
		}
		if got := listPackIDs(t, dest.Target); len(got) != len(all) {
			t.Errorf("dry run deleted something: %d packs left, want %d", len(got), len(all))
		}
		res, err := GC(ctx, dest.Target, testPolicy, gcOpts)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("gc: %d sets counted, %d packs, %d referenced, deleted %d objects (%d bytes), deferred %v, retired markers %d",
			len(res.Sets), res.Packs, res.Referenced, len(res.Deleted), res.DeletedBytes, res.Deferred, len(res.RetiredMarkers))
		if got := listPackIDs(t, dest.Target); !sameSet(got, keep) {
			t.Errorf("after gc the target holds %d packs, want exactly the %d that set 4 references", len(got), len(keep))
		}
		if keys := listKeys(t, dest.Target, pendingPrefix(testPolicy)); len(keys) != 0 {
			t.Errorf("in-progress markers left after gc: %v", keys)
		}
		dst := filepath.Join(t.TempDir(), "out")
		if _, err := restoreDir(t, ctx, k, dests, id4, "app", dst, nil); err != nil {
			t.Fatal(err)
		}
		compareTrees(t, want4, scanTree(t, dst), cmpOpts{meta: true})
		diffR(t, tree, dst)
	})
}

func objectSizes(t testing.TB, tg backupset.Target) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	if err := tg.List(context.Background(), testPolicy+"/", func(oi targets.ObjectInfo) error {
		out[oi.Key] = oi.Size
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func newObjects(before, after map[string]int64) string {
	var lines []string
	for k, n := range after {
		if _, ok := before[k]; !ok {
			lines = append(lines, fmt.Sprintf("  %8d  %s", n, k))
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func withDryRun(o GCOptions) GCOptions { o.DryRun = true; return o }

func packIDsOf(objs []GCObject) []string {
	var out []string
	for _, o := range objs {
		if id, hdr, ok := parsePackKey(testPolicy, o.Key); ok && !hdr {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

func listPackIDs(t testing.TB, tg backupset.Target) []string {
	t.Helper()
	var out []string
	for _, k := range listKeys(t, tg, packsPrefix(testPolicy)) {
		if id, hdr, ok := parsePackKey(testPolicy, k); ok && !hdr {
			out = append(out, id)
		}
	}
	return out
}

func sameSet(got []string, want map[string]bool) bool {
	if len(got) != len(want) {
		return false
	}
	for _, g := range got {
		if !want[g] {
			return false
		}
	}
	return true
}

func setPacks(t testing.TB, tg backupset.Target, id string) []string {
	t.Helper()
	m, err := backupset.ReadManifest(context.Background(), tg, testPolicy, id, time.Now(), testTrust)
	if err != nil {
		t.Fatal(err)
	}
	d, err := ParseDescription(m.Files)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range d.Sources {
		out = append(out, s.Packs...)
	}
	return out
}

// TestAcceptanceBucketSource: the acceptance tree's files in a MinIO bucket, snapshotted to a
// versitygw target, restored to a directory and to another bucket.
func TestAcceptanceBucketSource(t *testing.T) {
	ctx := context.Background()
	minio := testenv.MinIO(t)
	vgw := testenv.Versity(t)
	tree := bigTree(t)
	k := newTestKeys(t)

	srcSpec := s3Bucket(t, minio)
	srcSpec.Prefix = "storage/app"
	bucket := s3Dest(t, "app-bucket", srcSpec).Target
	want := scanTree(t, tree)
	start := time.Now()
	uploadTree(t, bucket, tree, want)
	t.Logf("uploaded %d files to MinIO in %v", countFiles(want), time.Since(start))

	dest := s3Dest(t, "versitygw", s3Bucket(t, vgw))
	dests := []backupset.Dest{dest}
	spec := SourceSpec{Name: "media", S3: &S3Source{
		Endpoint: srcSpec.Endpoint, Region: srcSpec.Region, Bucket: srcSpec.Bucket, Prefix: srcSpec.Prefix,
		AccessKey: srcSpec.AccessKey, SecretKey: srcSpec.SecretKey, BucketLookup: "path",
	}}
	start = time.Now()
	id1, r1 := makeSet(t, ctx, k, dests, spec, snapOpts{})
	bytes1 := policyBytes(t, dest.Target)
	t.Logf("bucket set 1: %d files, %d bytes, %d on the target, %v; warnings %v", r1.Files, r1.Bytes, bytes1, time.Since(start), r1.Warnings)
	if r1.Files != int64(countFiles(want)) {
		t.Errorf("snapshot stored %d files, want %d", r1.Files, countFiles(want))
	}

	t.Run("restore to a directory", func(t *testing.T) {
		dst := filepath.Join(t.TempDir(), "out")
		res, err := restoreDir(t, ctx, k, dests, id1, "media", dst, nil)
		if err != nil {
			t.Fatal(err)
		}
		compareTrees(t, want, scanTree(t, dst), cmpOpts{noDirs: true})
		// diff -r against the tree without what a bucket cannot hold.
		out, err := exec.Command("diff", "-r", "--no-dereference", "-x", "link", "-x", "dangling", "-x", "empty*", tree, dst).CombinedOutput()
		if err != nil {
			t.Errorf("diff -r: %v\n%.2000s", err, out)
		}
		t.Logf("restored %d files in %v", res.Files, res.Duration)
	})

	t.Run("restore to a bucket", func(t *testing.T) {
		outSpec := s3Bucket(t, minio)
		out := s3Dest(t, "restored", outSpec)
		res, err := Restore(ctx, dests, ToTarget("restored", out.Target, "restored/app"), RestoreOptions{Trust: testTrust,
			Policy: testPolicy, SetID: id1, Source: "media", Identities: k.ids, SpoolDir: t.TempDir(),
		})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		if err := out.Target.List(ctx, "restored/app/", func(oi targets.ObjectInfo) error {
			got[strings.TrimPrefix(oi.Key, "restored/app/")] = ""
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		var diffs []string
		for p, n := range want {
			if n.typ != "file" {
				continue
			}
			if _, ok := got[p]; !ok {
				diffs = append(diffs, "missing "+p)
				continue
			}
			if s := objectSum(t, out.Target, "restored/app/"+p); s != n.sum {
				diffs = append(diffs, fmt.Sprintf("%s: got sha %s, want %s", p, s, n.sum))
			}
		}
		if len(got) != countFiles(want) {
			diffs = append(diffs, fmt.Sprintf("got %d objects, want %d", len(got), countFiles(want)))
		}
		if len(diffs) > 0 {
			t.Errorf("restored bucket differs:\n%.3000s", strings.Join(diffs, "\n"))
		}
		t.Logf("restored %d objects to a bucket in %v; warnings %v", res.Files, res.Duration, res.Warnings)
	})

	_, r2 := makeSet(t, ctx, k, dests, spec, snapOpts{})
	added2 := policyBytes(t, dest.Target) - bytes1
	t.Logf("bucket set 2 (unchanged): %d bytes added = %.4f%% of %d; new plaintext %d", added2, 100*float64(added2)/float64(bytes1), bytes1, r2.NewBytes)
	if added2*100 >= bytes1 {
		t.Errorf("second snapshot of the bucket added %d bytes, want under 1%% of %d", added2, bytes1)
	}
}

func countFiles(tree map[string]node) int {
	n := 0
	for _, v := range tree {
		if v.typ == "file" {
			n++
		}
	}
	return n
}

func uploadTree(t testing.TB, tg backupset.Target, root string, tree map[string]node) {
	t.Helper()
	var paths []string
	for p, n := range tree {
		if n.typ == "file" {
			paths = append(paths, p)
		}
	}
	sort.Strings(paths)
	errs := make([]error, len(paths))
	parallel(context.Background(), 16, len(paths), func(i int) {
		f, err := os.Open(filepath.Join(root, filepath.FromSlash(paths[i])))
		if err != nil {
			errs[i] = err
			return
		}
		defer f.Close()
		errs[i] = tg.Put(context.Background(), paths[i], f, tree[paths[i]].size)
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("upload %s: %v", paths[i], err)
		}
	}
}

func objectSum(t testing.TB, tg backupset.Target, key string) string {
	t.Helper()
	rc, err := tg.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	h := sha256.New()
	if _, err := io.Copy(h, rc); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}
