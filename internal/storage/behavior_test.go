package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/backupset"
)

// craftedSet stores a set whose index holds exactly the given entries; files' contents come
// from contents by path. It is how a hostile index gets onto a target.
func craftedSet(t *testing.T, ctx context.Context, k testKeys, dests []backupset.Dest, entries []*Entry, contents map[string][]byte) string {
	t.Helper()
	id := nextSetID()
	w, err := backupset.NewWriter(ctx, testPolicy, id, dests, backupset.WriterOptions{Signer: testSigner, Recipients: k.rcpt, SpoolDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	walk := func(ctx context.Context, sn *snapshotter) error {
		for _, e := range entries {
			if e.Type == TypeFile {
				data := contents[e.Path]
				chunks, sum, n, err := sn.storeStream(ctx, bytes.NewReader(data), int64(len(data)))
				if err != nil {
					return err
				}
				e.Chunks, e.Size, e.SHA256 = chunks, n, fmt.Sprintf("%x", sum)
			}
			if err := sn.emit(ctx, e); err != nil {
				return err
			}
		}
		return nil
	}
	res, err := snapshot(ctx, SourceSpec{Name: "evil", Path: "/nonexistent"}, w, dests, SnapshotOptions{Trust: testTrust,
		Policy: testPolicy, SetID: id, Recipients: k.rcpt, NameKey: k.nameKey, SpoolDir: t.TempDir(),
	}, walk)
	if err != nil {
		t.Fatal(err)
	}
	desc, _ := Describe(res)
	for _, tr := range w.Commit(ctx, &backupset.Manifest{Files: desc}) {
		if tr.Err != nil {
			t.Fatal(tr.Err)
		}
	}
	return id
}

func TestHostileIndexRefused(t *testing.T) {
	ctx := context.Background()
	k := newTestKeys(t)
	d, _ := newDirTarget(t, "a")
	dests := []backupset.Dest{d}
	file := func(p string) *Entry { return &Entry{Path: p, Type: TypeFile, Mode: 0o644, UID: -1, GID: -1} }
	tests := []struct {
		name    string
		entries []*Entry
		wantErr string
	}{
		{"dot-dot", []*Entry{file("../x")}, `refusing entry "../x": path has a ".." segment`},
		{"dot-dot inside", []*Entry{file("a/../../x")}, `path has a ".." segment`},
		{"absolute", []*Entry{file("/tmp/x")}, "path is absolute"},
		{"NUL", []*Entry{file("a\x00b")}, "NUL"},
		{"empty segment", []*Entry{file("a//x")}, "empty segment"},
		{"through a symlink", []*Entry{
			{Path: "ln", Type: TypeSymlink, Link: "..", UID: -1, GID: -1},
			file("ln/x"),
		}, `"ln/x": lies below "ln", which is a symlink`},
		{"through an absolute symlink", []*Entry{
			{Path: "ln", Type: TypeSymlink, Link: "/tmp", UID: -1, GID: -1},
			{Path: "ln/d", Type: TypeDir, Mode: 0o755, UID: -1, GID: -1},
		}, `lies below "ln", which is a symlink`},
		{"below a file", []*Entry{file("f"), file("f/x")}, `lies below "f", which is a file`},
		{"twice", []*Entry{file("x"), {Path: "x", Type: TypeSymlink, Link: "/etc/passwd", UID: -1, GID: -1}}, "appears twice"},
		{"mode bits", []*Entry{{Path: "x", Type: TypeDir, Mode: 0o170000, UID: -1, GID: -1}}, "bits beyond 07777"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			contents := map[string][]byte{}
			for _, e := range tt.entries {
				contents[e.Path] = []byte("payload of " + e.Path)
			}
			id := craftedSet(t, ctx, k, dests, tt.entries, contents)
			base := t.TempDir()
			dst := filepath.Join(base, "restore", "here")
			_, err := restoreDir(t, ctx, k, dests, id, "evil", dst, nil)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
			}
			// Nothing was created at all: not the destination, not anything beside it.
			if got := scanTree(t, base); len(got) != 0 {
				t.Errorf("the refused restore created %v", got)
			}
		})
	}

	// A symlink pointing out of the tree is data: it is restored verbatim, and nothing is
	// created where it points.
	t.Run("symlink to outside restored as a link only", func(t *testing.T) {
		outside := t.TempDir()
		entries := []*Entry{
			{Path: "up", Type: TypeSymlink, Link: "../../../..", UID: -1, GID: -1},
			{Path: "abs", Type: TypeSymlink, Link: outside, UID: -1, GID: -1},
			file("real"),
		}
		id := craftedSet(t, ctx, k, dests, entries, map[string][]byte{"real": []byte("x")})
		dst := filepath.Join(t.TempDir(), "out")
		if _, err := restoreDir(t, ctx, k, dests, id, "evil", dst, nil); err != nil {
			t.Fatal(err)
		}
		for p, want := range map[string]string{"up": "../../../..", "abs": outside} {
			if got, err := os.Readlink(filepath.Join(dst, p)); err != nil || got != want {
				t.Errorf("link %s: got %q (%v), want %q", p, got, err, want)
			}
		}
		if got := scanTree(t, outside); len(got) != 0 {
			t.Errorf("restore wrote through a symlink: %v", got)
		}
	})
}

func TestChangingFile(t *testing.T) {
	ctx := context.Background()
	k := newTestKeys(t)
	d, _ := newDirTarget(t, "a")
	dests := []backupset.Dest{d}
	tests := []struct {
		name        string
		changes     int // how many reads find the file changed
		wantSkipped bool
	}{
		{"changes once, stored on the next read", 1, false},
		{"keeps changing, skipped", changeAttempts, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := filepath.Join(t.TempDir(), "src")
			os.MkdirAll(src, 0o755)
			target := filepath.Join(src, "growing.log")
			os.WriteFile(target, randomBytes(5, 700<<10), 0o644) // chunked path
			os.WriteFile(filepath.Join(src, "stable.txt"), []byte("stable"), 0o644)
			var reads atomic.Int32
			testHookAfterRead = func(rel string) {
				if rel == "growing.log" && int(reads.Add(1)) <= tt.changes {
					f, _ := os.OpenFile(target, os.O_APPEND|os.O_WRONLY, 0)
					f.Write([]byte("one more line\n"))
					f.Close()
				}
			}
			defer func() { testHookAfterRead = nil }()
			id, res := makeSet(t, ctx, k, dests, SourceSpec{Name: "logs", Path: src}, snapOpts{})
			if got := res.Skipped == 1; got != tt.wantSkipped {
				t.Errorf("skipped %d files, want skipped=%v; warnings %v", res.Skipped, tt.wantSkipped, res.Warnings)
			}
			if tt.wantSkipped && (len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "growing.log: changed while being read")) {
				t.Errorf("warnings %q, want one naming growing.log", res.Warnings)
			}
			dst := filepath.Join(t.TempDir(), "out")
			rr, err := restoreDir(t, ctx, k, dests, id, "logs", dst, nil)
			if err != nil {
				t.Fatal(err)
			}
			want := scanTree(t, src)
			if tt.wantSkipped {
				delete(want, "growing.log")
				if len(rr.Skipped) != 1 || rr.Skipped[0] != "growing.log" {
					t.Errorf("restore reports skipped %v, want [growing.log]", rr.Skipped)
				}
			}
			compareTrees(t, want, scanTree(t, dst), cmpOpts{meta: true})
		})
	}
}

// corruptFile flips one byte in the middle of a file.
func corruptFile(t *testing.T, p string) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x55
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestRestoreFallsBackToTheNextTarget(t *testing.T) {
	ctx := context.Background()
	k := newTestKeys(t)
	a, dirA := newDirTarget(t, "a")
	b, _ := newDirTarget(t, "b")
	src := filepath.Join(t.TempDir(), "src")
	smallTree(t, src)
	want := scanTree(t, src)
	id, res := makeSet(t, ctx, k, []backupset.Dest{a, b}, SourceSpec{Name: "up", Path: src}, snapOpts{packSize: 256 << 10})
	if len(res.Packs) < 4 {
		t.Fatalf("want several packs for this test, got %d", len(res.Packs))
	}
	onA := func(key string) string { return filepath.Join(dirA, filepath.FromSlash(key)) }

	corruptFile(t, onA(packKey(testPolicy, res.Packs[0])))
	if err := os.Remove(onA(packKey(testPolicy, res.Packs[1]))); err != nil {
		t.Fatal(err)
	}
	corruptFile(t, onA(backupset.ObjectKey(testPolicy, id, IndexObjectName("up"))))

	dst := filepath.Join(t.TempDir(), "out")
	rr, err := restoreDir(t, ctx, k, []backupset.Dest{a, b}, id, "up", dst, nil)
	if err != nil {
		t.Fatal(err)
	}
	compareTrees(t, want, scanTree(t, dst), cmpOpts{meta: true})
	if rr.Fallbacks < 1 {
		t.Errorf("got %d fallbacks, want at least 1", rr.Fallbacks)
	}
	joined := strings.Join(rr.Warnings, "\n")
	for _, p := range res.Packs[:2] {
		if !strings.Contains(joined, p) {
			t.Errorf("warnings do not name pack %s: %s", p, joined)
		}
	}
	t.Logf("fallbacks %d; warnings:\n%s", rr.Fallbacks, joined)

	t.Run("damaged everywhere fails naming the file", func(t *testing.T) {
		// Find the pack holding naïve café.txt and damage it on both targets.
		b2, dirB := newDirTarget(t, "b2")
		a2, dirA2 := newDirTarget(t, "a2")
		id, res := makeSet(t, ctx, k, []backupset.Dest{a2, b2}, SourceSpec{Name: "up", Path: src}, snapOpts{packSize: 256 << 10})
		for _, p := range res.Packs {
			for _, dir := range []string{dirA2, dirB} {
				corruptFile(t, filepath.Join(dir, filepath.FromSlash(packKey(testPolicy, p))))
			}
		}
		_, err := restoreDir(t, ctx, k, []backupset.Dest{a2, b2}, id, "up", filepath.Join(t.TempDir(), "out"), nil)
		if err == nil || !strings.Contains(err.Error(), "no target has a readable copy") {
			t.Fatalf("got %v, want an error saying no target has a readable copy", err)
		}
		t.Logf("error: %.300s", err)
	})
}

// faultyTarget fails Puts whose key matches.
type faultyTarget struct {
	backupset.Target
	failPut func(key string) bool
	puts    atomic.Int32
}

func (f *faultyTarget) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if f.failPut(key) {
		return errors.New("injected failure: disk full")
	}
	f.puts.Add(1)
	return f.Target.Put(ctx, key, r, size)
}

func TestUploadFailureFailsTheSnapshot(t *testing.T) {
	ctx := context.Background()
	k := newTestKeys(t)
	a, _ := newDirTarget(t, "a")
	b, _ := newDirTarget(t, "b")
	var packs atomic.Int32
	fb := &faultyTarget{Target: b.Target, failPut: func(key string) bool {
		return strings.HasSuffix(key, packSuffix) && strings.Contains(key, "/packs/") && !strings.HasSuffix(key, headerSuffix) && packs.Add(1) == 3
	}}
	dests := []backupset.Dest{a, {Name: "b", Target: fb}}
	src := filepath.Join(t.TempDir(), "src")
	smallTree(t, src)
	id := nextSetID()
	w, err := backupset.NewWriter(ctx, testPolicy, id, dests, backupset.WriterOptions{Signer: testSigner, Recipients: k.rcpt, SpoolDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := Snapshot(ctx, SourceSpec{Name: "up", Path: src}, w, dests, SnapshotOptions{Trust: testTrust,
			Policy: testPolicy, SetID: id, Recipients: k.rcpt, NameKey: k.nameKey, PackSize: 64 << 10, SpoolDir: t.TempDir(),
		})
		done <- err
	}()
	select {
	case err = <-done:
	case <-time.After(2 * time.Minute):
		t.Fatal("snapshot still running 2 minutes after an upload failed")
	}
	w.Abort(ctx)
	if err == nil || !strings.Contains(err.Error(), "to target b") || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("got %v, want an error naming the pack, target b and the cause", err)
	}
	t.Logf("error: %v", err)
	for _, d := range []backupset.Dest{a, b} {
		if keys := listKeys(t, d.Target, pendingPrefix(testPolicy)); len(keys) != 0 {
			t.Errorf("target %s: the failed snapshot left its marker: %v", d.Name, keys)
		}
	}
}

func TestRestoreDestinationRules(t *testing.T) {
	ctx := context.Background()
	k := newTestKeys(t)
	d, _ := newDirTarget(t, "a")
	dests := []backupset.Dest{d}
	src := filepath.Join(t.TempDir(), "src")
	smallTree(t, src)
	id, _ := makeSet(t, ctx, k, dests, SourceSpec{Name: "up", Path: src}, snapOpts{})
	full := scanTree(t, src)

	t.Run("non-empty destination refused", func(t *testing.T) {
		dst := t.TempDir()
		os.WriteFile(filepath.Join(dst, "keep.txt"), []byte("mine"), 0o600)
		_, err := restoreDir(t, ctx, k, dests, id, "up", dst, nil)
		if err == nil || !strings.Contains(err.Error(), "is not empty") {
			t.Fatalf("got %v, want a refusal of the non-empty destination", err)
		}
		if got := scanTree(t, dst); len(got) != 1 {
			t.Errorf("refused restore changed the destination: %v", got)
		}
	})
	t.Run("overwrite replaces what is in the way", func(t *testing.T) {
		dst := t.TempDir()
		os.WriteFile(filepath.Join(dst, "keep.txt"), []byte("mine"), 0o600)
		os.MkdirAll(filepath.Join(dst, "zero.bin"), 0o755)                    // a directory where a file goes
		os.WriteFile(filepath.Join(dst, "ünï cödé"), []byte("a file"), 0o644) // a file where a directory goes
		os.Symlink("/etc", filepath.Join(dst, "link"))                        // a symlink where a symlink goes
		if _, err := restoreDir(t, ctx, k, dests, id, "up", dst, func(o *RestoreOptions) { o.Overwrite = true }); err != nil {
			t.Fatal(err)
		}
		got := scanTree(t, dst)
		if _, ok := got["keep.txt"]; !ok {
			t.Errorf("overwrite removed a path the set does not have")
		}
		delete(got, "keep.txt")
		compareTrees(t, full, got, cmpOpts{meta: true})
	})
	t.Run("subpath", func(t *testing.T) {
		dst := filepath.Join(t.TempDir(), "out")
		res, err := restoreDir(t, ctx, k, dests, id, "up", dst, func(o *RestoreOptions) { o.Subpath = "/ünï cödé/sub dir/" })
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]node{}
		for p, n := range full {
			if p == "ünï cödé" || strings.HasPrefix(p, "ünï cödé/sub dir") {
				want[p] = n
			}
		}
		compareTrees(t, want, scanTree(t, dst), cmpOpts{meta: true})
		if res.Files != 1 {
			t.Errorf("restored %d files, want 1", res.Files)
		}
		_, err = restoreDir(t, ctx, k, dests, id, "up", filepath.Join(t.TempDir(), "x"), func(o *RestoreOptions) { o.Subpath = "nope" })
		if err == nil || !strings.Contains(err.Error(), "not in the snapshot") {
			t.Errorf("got %v for a missing subpath, want 'not in the snapshot'", err)
		}
	})
	t.Run("wrong key", func(t *testing.T) {
		other := newTestKeys(t)
		_, err := Restore(ctx, dests, ToDir(filepath.Join(t.TempDir(), "x")), RestoreOptions{Trust: testTrust, Policy: testPolicy, SetID: id, Source: "up", Identities: other.ids})
		if err == nil || !strings.Contains(err.Error(), "no identity matches") {
			t.Errorf("got %v, want the wrong-key error", err)
		}
	})
	t.Run("unknown source", func(t *testing.T) {
		_, err := restoreDir(t, ctx, k, dests, id, "other", filepath.Join(t.TempDir(), "x"), nil)
		if err == nil || !strings.Contains(err.Error(), `no storage source "other" (it has: up)`) {
			t.Errorf("got %v, want a list of the sources the set has", err)
		}
	})
}

// TestDivergedTargets: a target added later (or one that missed sets) gets what it lacks, and
// only it; both restore exactly.
func TestDivergedTargets(t *testing.T) {
	ctx := context.Background()
	k := newTestKeys(t)
	a, _ := newDirTarget(t, "a")
	src := filepath.Join(t.TempDir(), "src")
	smallTree(t, src)
	want := scanTree(t, src)
	makeSet(t, ctx, k, []backupset.Dest{a}, SourceSpec{Name: "up", Path: src}, snapOpts{})
	before := policyBytes(t, a.Target)

	b, _ := newDirTarget(t, "b")
	os.WriteFile(filepath.Join(src, "new.txt"), []byte("new file"), 0o644)
	want = scanTree(t, src)
	id, res := makeSet(t, ctx, k, []backupset.Dest{a, b}, SourceSpec{Name: "up", Path: src}, snapOpts{})
	addedA := policyBytes(t, a.Target) - before
	t.Logf("uploaded %v; a grew by %d bytes, b holds %d", res.Uploaded, addedA, policyBytes(t, b.Target))
	if res.Uploaded["a"] > 20<<10 {
		t.Errorf("target a got %d bytes of blobs, want only the new file's and the index's", res.Uploaded["a"])
	}
	if res.Uploaded["b"] < 3<<20 {
		t.Errorf("target b got %d bytes of blobs, want everything (over 3 MiB)", res.Uploaded["b"])
	}
	for _, d := range []backupset.Dest{a, b} {
		dst := filepath.Join(t.TempDir(), "out")
		if _, err := restoreDir(t, ctx, k, []backupset.Dest{d}, id, "up", dst, nil); err != nil {
			t.Fatalf("restore from %s alone: %v", d.Name, err)
		}
		compareTrees(t, want, scanTree(t, dst), cmpOpts{meta: true})
	}
}

// TestReadableByHand follows FORMAT.md: every object opens with `age -d | zstd -d`, and a file
// comes back out of its pack with dd.
func TestReadableByHand(t *testing.T) {
	for _, tool := range []string{"age", "zstd", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed (scripts/testenv.sh install installs it): %v", tool, err)
		}
	}
	ctx := context.Background()
	k := newTestKeys(t)
	d, dir := newDirTarget(t, "a")
	src := filepath.Join(t.TempDir(), "src")
	smallTree(t, src)
	id, _ := makeSet(t, ctx, k, []backupset.Dest{d}, SourceSpec{Name: "up", Path: src}, snapOpts{})
	keyFile := filepath.Join(t.TempDir(), "key.txt")
	os.WriteFile(keyFile, []byte(k.ids[0].(interface{ String() string }).String()+"\n"), 0o600)
	hdrKey, _ := HeaderIdentity(k.nameKey)
	hdrFile := filepath.Join(t.TempDir(), "hdr.txt")
	os.WriteFile(hdrFile, []byte(hdrKey+"\n"), 0o600)

	script := `set -eu
cd "$TARGET/nightly"
open() { age -d -i "$KEY" "$1" | zstd -dc; }
root="$SET/files/up.index.zst.age"
# The index stream: each chunk is a byte range of a pack's plaintext.
open "$root" | jq -r '.index_chunks[] | "\(.at[0].pack) \(.at[0].offset) \(.size)"' |
while read -r pack off size; do
  open "blobs/packs/${pack:0:2}/$pack.zst.age" | tail -c +$((off + 1)) | head -c "$size"
done > /tmp/index.$$
# A single-chunk file, by path.
jq -r 'select(.path == "ünï cödé/naïve café.txt") | "\(.chunks[0].at[0].pack) \(.chunks[0].at[0].offset) \(.size)"' /tmp/index.$$ |
{ read -r pack off size; open "blobs/packs/${pack:0:2}/$pack.zst.age" | tail -c +$((off + 1)) | head -c "$size"; }
# A pack header opens with the identity derived from the name key.
h=$(ls blobs/packs/*/*.hdr.zst.age | head -1)
age -d -i "$HDRKEY" "$h" | zstd -dc | jq -e '.format == "backupd-pack-header"' >/dev/null
rm /tmp/index.$$
`
	cmd := exec.Command("bash", "-c", script)
	cmd.Env = append(os.Environ(), "TARGET="+dir, "KEY="+keyFile, "HDRKEY="+hdrFile, "SET="+id)
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("by hand: %v\n%s", err, ee.Stderr)
		}
		t.Fatal(err)
	}
	if want := "hello, café\n"; string(out) != want {
		t.Errorf("by hand got %q, want %q", out, want)
	}
}

func TestSnapshotRefusesBadInput(t *testing.T) {
	ctx := context.Background()
	k := newTestKeys(t)
	d, _ := newDirTarget(t, "a")
	good := SnapshotOptions{Trust: testTrust, Policy: testPolicy, SetID: nextSetID(), Recipients: k.rcpt, NameKey: k.nameKey}
	src := t.TempDir()
	tests := []struct {
		name    string
		spec    SourceSpec
		mod     func(*SnapshotOptions)
		wantErr string
	}{
		{"bad name", SourceSpec{Name: "a/b", Path: src}, nil, "storage source name"},
		{"both", SourceSpec{Name: "x", Path: src, S3: &S3Source{Endpoint: "http://x", Bucket: "b"}}, nil, "not both"},
		{"neither", SourceSpec{Name: "x"}, nil, "set path"},
		{"relative", SourceSpec{Name: "x", Path: "storage/app"}, nil, "not absolute"},
		{"bad exclude", SourceSpec{Name: "x", Path: src, Exclude: []string{"["}}, nil, "exclude pattern"},
		{"missing dir", SourceSpec{Name: "x", Path: filepath.Join(src, "nope")}, nil, "no such file"},
		{"no recipients", SourceSpec{Name: "x", Path: src}, func(o *SnapshotOptions) { o.Recipients = nil }, "no age recipients"},
		{"short name key", SourceSpec{Name: "x", Path: src}, func(o *SnapshotOptions) { o.NameKey = []byte("abc") }, "name key is 3 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := good
			if tt.mod != nil {
				tt.mod(&o)
			}
			w, err := backupset.NewWriter(ctx, testPolicy, o.SetID, []backupset.Dest{d}, backupset.WriterOptions{Signer: testSigner, Recipients: k.rcpt})
			if err != nil {
				t.Fatal(err)
			}
			defer w.Abort(ctx)
			_, err = Snapshot(ctx, tt.spec, w, []backupset.Dest{d}, o)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("got %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}
