package storage

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"github.com/backupd/backupd/internal/signing"
	"io"
	"io/fs"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"filippo.io/age"
	"golang.org/x/sys/unix"

	"github.com/backupd/backupd/internal/backupset"
	"github.com/backupd/backupd/internal/seal"
	"github.com/backupd/backupd/internal/targets"
	"github.com/backupd/backupd/internal/testenv"
)

const testPolicy = "nightly"

type testKeys struct {
	rcpt    []age.Recipient
	ids     []age.Identity
	nameKey []byte
}

func newTestKeys(t testing.TB) testKeys {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	nk := make([]byte, 32)
	rand.Read(nk)
	return testKeys{rcpt: []age.Recipient{id.Recipient()}, ids: []age.Identity{id}, nameKey: nk}
}

// newDirTarget opens a dir target on a fresh directory and returns it with that directory.
func newDirTarget(t testing.TB, name string) (backupset.Dest, string) {
	t.Helper()
	dir := t.TempDir()
	tg, err := targets.Open(name, targets.Spec{Type: "dir", Path: dir}, targets.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return backupset.Dest{Name: name, Target: tg}, dir
}

// s3Bucket makes a fresh bucket on a real server and returns its spec.
func s3Bucket(t testing.TB, srv testenv.S3) targets.Spec {
	t.Helper()
	var b [4]byte
	rand.Read(b[:])
	spec := targets.Spec{
		Type: "s3", Endpoint: srv.Endpoint, Region: srv.Region, Bucket: "files-" + hex.EncodeToString(b[:]),
		AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, BucketLookup: "path",
	}
	s, err := targets.NewS3(spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.EnsureBucket(context.Background()); err != nil {
		t.Fatalf("create bucket %s on %s: %v", spec.Bucket, srv.Name, err)
	}
	return spec
}

func s3Dest(t testing.TB, name string, spec targets.Spec) backupset.Dest {
	t.Helper()
	tg, err := targets.Open(name, spec, targets.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return backupset.Dest{Name: name, Target: tg}
}

var clockBase = time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)

// setIDs sort by time; tests make several per second, so they take their times from a counter.
var setCounter struct {
	sync.Mutex
	n int
}

func nextSetID() string {
	setCounter.Lock()
	defer setCounter.Unlock()
	setCounter.n++
	return backupset.NewID(clockBase.Add(time.Duration(setCounter.n) * time.Minute))
}

type snapOpts struct {
	packSize int64
	exclude  []string
}

// makeSet writes a set holding one storage source and commits it on every dest.
func makeSet(t testing.TB, ctx context.Context, k testKeys, dests []backupset.Dest, spec SourceSpec, so snapOpts) (string, *SnapshotResult) {
	t.Helper()
	id := nextSetID()
	w, err := backupset.NewWriter(ctx, testPolicy, id, dests, backupset.WriterOptions{Signer: testSigner, Recipients: k.rcpt, SpoolDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	res, err := Snapshot(ctx, spec, w, dests, SnapshotOptions{Trust: testTrust,
		Policy: testPolicy, SetID: id, Recipients: k.rcpt, NameKey: k.nameKey, PackSize: so.packSize,
		SpoolDir: t.TempDir(),
	})
	if err != nil {
		w.Abort(ctx)
		t.Fatalf("snapshot: %v", err)
	}
	desc, err := Describe(res)
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range w.Commit(ctx, &backupset.Manifest{Files: desc, Recipients: []string{"test"}}) {
		if tr.Err != nil {
			t.Fatalf("commit on %s: %v", tr.Name, tr.Err)
		}
	}
	return id, res
}

func restoreDir(t testing.TB, ctx context.Context, k testKeys, from []backupset.Dest, id, source, dir string, mod func(*RestoreOptions)) (*RestoreResult, error) {
	t.Helper()
	opts := RestoreOptions{Trust: testTrust, Policy: testPolicy, SetID: id, Source: source, Identities: k.ids, SpoolDir: t.TempDir()}
	if mod != nil {
		mod(&opts)
	}
	return Restore(ctx, from, ToDir(dir), opts)
}

// policyBytes sums the sizes of everything a policy has on a target.
func policyBytes(t testing.TB, tg backupset.Target) int64 {
	t.Helper()
	var n int64
	if err := tg.List(context.Background(), testPolicy+"/", func(oi targets.ObjectInfo) error {
		n += oi.Size
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

func listKeys(t testing.TB, tg backupset.Target, prefix string) []string {
	t.Helper()
	var keys []string
	if err := tg.List(context.Background(), prefix, func(oi targets.ObjectInfo) error {
		keys = append(keys, oi.Key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return keys
}

// deleteSet removes every object of a set, manifest first, as retention would.
func deleteSet(t testing.TB, tg backupset.Target, id string) {
	t.Helper()
	ctx := context.Background()
	if err := tg.Delete(ctx, backupset.ManifestKey(testPolicy, id)); err != nil {
		t.Fatal(err)
	}
	for _, k := range listKeys(t, tg, backupset.Prefix(testPolicy, id)) {
		if err := tg.Delete(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
}

// --- trees ---

type node struct {
	typ   string // file, dir, symlink
	mode  fs.FileMode
	mtime int64
	uid   uint32
	gid   uint32
	size  int64
	sum   string
	link  string
}

type cmpOpts struct {
	meta   bool // modes, mtimes, owners
	noDirs bool // bucket round trips: directories and symlinks do not exist
}

// scanTree describes every path below root (not root itself).
func scanTree(t testing.TB, root string) map[string]node {
	t.Helper()
	return scanTreeSkip(t, root, "")
}

// scanTreeSkip is scanTree without one path.
func scanTreeSkip(t testing.TB, root, skip string) map[string]node {
	t.Helper()
	out := map[string]node{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		if filepath.ToSlash(rel) == skip {
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		n := node{mode: fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky), mtime: fi.ModTime().UnixNano(), uid: st.Uid, gid: st.Gid}
		switch {
		case fi.IsDir():
			n.typ = "dir"
		case fi.Mode()&fs.ModeSymlink != 0:
			n.typ = "symlink"
			n.link, _ = os.Readlink(p)
			n.mode = 0
		case fi.Mode().IsRegular():
			n.typ = "file"
			n.size = fi.Size()
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			h := sha256.New()
			io.Copy(h, f)
			f.Close()
			n.sum = hex.EncodeToString(h.Sum(nil))
		default:
			n.typ = "other"
		}
		out[filepath.ToSlash(rel)] = n
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// compareTrees reports every difference between two trees: paths, types, sizes, contents,
// symlink targets and, with meta, modes, mtimes and owners.
func compareTrees(t testing.TB, want, got map[string]node, o cmpOpts) {
	t.Helper()
	var diffs []string
	for p, w := range want {
		if o.noDirs && w.typ != "file" {
			continue
		}
		g, ok := got[p]
		if !ok {
			diffs = append(diffs, fmt.Sprintf("%s: missing (want %s)", p, w.typ))
			continue
		}
		if g.typ != w.typ || g.size != w.size || g.sum != w.sum || g.link != w.link {
			diffs = append(diffs, fmt.Sprintf("%s: got %s size %d sha %.12s link %q, want %s size %d sha %.12s link %q", p, g.typ, g.size, g.sum, g.link, w.typ, w.size, w.sum, w.link))
		}
		if o.meta {
			if g.mode != w.mode {
				diffs = append(diffs, fmt.Sprintf("%s: got mode %v, want %v", p, g.mode, w.mode))
			}
			if g.mtime != w.mtime {
				diffs = append(diffs, fmt.Sprintf("%s: got mtime %v, want %v", p, time.Unix(0, g.mtime), time.Unix(0, w.mtime)))
			}
			if g.uid != w.uid || g.gid != w.gid {
				diffs = append(diffs, fmt.Sprintf("%s: got owner %d:%d, want %d:%d", p, g.uid, g.gid, w.uid, w.gid))
			}
		}
	}
	for p, g := range got {
		if _, ok := want[p]; !ok && !(o.noDirs && g.typ == "dir") {
			diffs = append(diffs, fmt.Sprintf("%s: unexpected %s", p, g.typ))
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 20 {
		diffs = append(diffs[:20], fmt.Sprintf("... and %d more", len(diffs)-20))
	}
	if len(diffs) > 0 {
		t.Errorf("trees differ:\n%s", strings.Join(diffs, "\n"))
	}
}

// writeRandom writes n bytes from a seeded PRNG (incompressible, reproducible).
func writeRandom(t testing.TB, p string, n int64, seed uint64, mode fs.FileMode) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		t.Fatal(err)
	}
	r := mrand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), byte(seed >> 24), 1})
	if _, err := io.CopyN(f, r, n); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

func randomBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	mrand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), 2}).Read(b)
	return b
}

// smallTree is a quick tree with every kind of entry.
func smallTree(t testing.TB, root string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "ünï cödé", "sub dir"), 0o755))
	must(os.MkdirAll(filepath.Join(root, "empty", "deeper"), 0o750))
	must(os.WriteFile(filepath.Join(root, "ünï cödé", "naïve café.txt"), []byte("hello, café\n"), 0o600))
	must(os.WriteFile(filepath.Join(root, "ünï cödé", "sub dir", "日本語 ファイル.bin"), randomBytes(7, 3000), 0o755))
	must(os.WriteFile(filepath.Join(root, "zero.bin"), nil, 0o644))
	writeRandom(t, filepath.Join(root, "medium.bin"), 3<<20+12345, 11, 0o640)
	must(os.Symlink("ünï cödé/naïve café.txt", filepath.Join(root, "link")))
	must(os.Symlink("/nonexistent/outside", filepath.Join(root, "dangling")))
	for i := range 50 {
		must(os.WriteFile(filepath.Join(root, "ünï cödé", fmt.Sprintf("f%03d.dat", i)), randomBytes(uint64(100+i), 100+i*37), 0o644))
	}
	must(os.WriteFile(filepath.Join(root, "dup1"), bytes.Repeat([]byte("x"), 5000), 0o644))
	must(os.WriteFile(filepath.Join(root, "dup2"), bytes.Repeat([]byte("x"), 5000), 0o644))
	stampTimes(t, root)
}

// stampTimes gives every path a distinct mtime in the past, deepest first so that setting a
// file's time is not undone by its directory's.
func stampTimes(t testing.TB, root string) {
	t.Helper()
	var paths []string
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if p != root {
			paths = append(paths, p)
		}
		return err
	})
	sort.Sort(sort.Reverse(sort.StringSlice(paths)))
	base := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	for i, p := range paths {
		ts := base.Add(time.Duration(i)*time.Second + time.Duration(i*7919)%time.Second)
		var err error
		if fi, _ := os.Lstat(p); fi.Mode()&fs.ModeSymlink != 0 {
			tv := unix.NsecToTimespec(ts.UnixNano())
			err = unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{tv, tv}, unix.AT_SYMLINK_NOFOLLOW)
		} else {
			err = os.Chtimes(p, ts, ts)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func sealedGet(t testing.TB, tg backupset.Target, key string, ids []age.Identity) []byte {
	t.Helper()
	rc, err := tg.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	pr, err := seal.Open(rc, ids)
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	b, err := io.ReadAll(pr)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func dirTargetAt(t testing.TB, dir string) backupset.Dest {
	t.Helper()
	tg, err := targets.Open("local", targets.Spec{Type: "dir", Path: dir}, targets.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return backupset.Dest{Name: "local", Target: tg}
}

// testSigner signs the sets these tests write; testTrust trusts it alone.
var testSigner = func() *signing.Signer {
	s, err := signing.NewSigner(ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)), "storage-test")
	if err != nil {
		panic(err)
	}
	return s
}()

var testTrust = signing.NewVerifier(testSigner.Public())
