package storage

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/backupd/backupd/internal/backupset"
	"github.com/backupd/backupd/internal/testenv"
)

// flipStanza changes one base64 character of the first recipient stanza's body of a sealed
// object on a target, as a bit flip on the provider would: the object still parses as age,
// but no identity unwraps it.
func flipStanza(t *testing.T, ctx context.Context, tg backupset.Target, key string) {
	t.Helper()
	rc, err := tg.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	// "age-encryption.org/v1\n-> X25519 <share>\n<body>\n--- <mac>\n"
	lines := bytes.SplitN(data, []byte("\n"), 4)
	if len(lines) < 4 || !bytes.HasPrefix(lines[1], []byte("-> X25519 ")) || len(lines[2]) < 10 {
		t.Fatalf("%s does not start with an X25519 stanza", key)
	}
	i := len("age-encryption.org/v1\n") + len(lines[1]) + 1 + 5
	if data[i] == 'A' {
		data[i] = 'B'
	} else {
		data[i] = 'A'
	}
	if err := tg.Put(ctx, key, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
}

// TestDamagedStanzaFallsBack: one flipped character in an age stanza of a pack and of the
// index root on the preferred target is a damaged copy, not a wrong key: the restore reads
// both from the second target and says which target it fell back from. Sets written before
// pack hashes were recorded (index version 1) fall back too.
func TestDamagedStanzaFallsBack(t *testing.T) {
	ctx := context.Background()
	k := newTestKeys(t)
	src := filepath.Join(t.TempDir(), "src")
	smallTree(t, src)
	want := scanTree(t, src)
	for _, tc := range []struct {
		name    string
		version int
	}{
		{"current index", IndexVersion},
		{"version 1 index without pack hashes", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := s3Dest(t, "minio", s3Bucket(t, testenv.MinIO(t)))
			b := s3Dest(t, "versitygw", s3Bucket(t, testenv.Versity(t)))
			if tc.version == 1 {
				testHookRoot = func(r *indexRoot) { r.Version, r.PackSums = 1, nil }
				defer func() { testHookRoot = nil }()
			}
			id, res := makeSet(t, ctx, k, []backupset.Dest{a, b}, SourceSpec{Name: "up", Path: src}, snapOpts{packSize: 256 << 10})
			testHookRoot = nil
			root := readRootForTest(t, ctx, k, a, id)
			if got := len(root.PackSums); (got > 0) != (tc.version > 1) || root.Version != tc.version {
				t.Fatalf("got index version %d with %d pack hashes, want version %d with hashes only from version 2", root.Version, got, tc.version)
			}
			flipStanza(t, ctx, a.Target, packKey(testPolicy, res.Packs[0]))
			flipStanza(t, ctx, a.Target, backupset.ObjectKey(testPolicy, id, IndexObjectName("up")))

			dst := filepath.Join(t.TempDir(), "out")
			rr, err := restoreDir(t, ctx, k, []backupset.Dest{a, b}, id, "up", dst, nil)
			if err != nil {
				t.Fatalf("restore: got %v, want success from the second target", err)
			}
			compareTrees(t, want, scanTree(t, dst), cmpOpts{meta: true})
			joined := strings.Join(rr.Warnings, "\n")
			for _, w := range []string{"index root files/up.index unreadable on target minio", packKey(testPolicy, res.Packs[0]) + " on target minio"} {
				if !strings.Contains(joined, w) {
					t.Errorf("warnings do not say %q:\n%s", w, joined)
				}
			}
			if rr.Fallbacks < 2 {
				t.Errorf("got %d fallbacks, want at least 2 (index root and pack)", rr.Fallbacks)
			}
			t.Logf("warnings:\n%s", joined)
		})
	}
}

func readRootForTest(t *testing.T, ctx context.Context, k testKeys, d backupset.Dest, id string) *indexRoot {
	t.Helper()
	m, err := backupset.ReadManifest(ctx, d.Target, testPolicy, id, time.Now(), testTrust)
	if err != nil {
		t.Fatal(err)
	}
	obj, _ := m.Object(IndexObjectName("up"))
	root, err := readIndexRoot(ctx, &readSource{name: d.Name, t: d.Target}, RestoreOptions{Policy: testPolicy, SetID: id, Source: "up", Identities: k.ids}, obj)
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// TestHostileIndexBounded restores crafted indexes, each under 200 KB sealed, in a child
// process: each fails with a clear error, and the child's peak RSS stays under 256 MiB.
func TestHostileIndexBounded(t *testing.T) {
	if childMode() == "bombs" {
		bombsChild(t)
		return
	}
	plan := craftBombs(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestHostileIndexBounded$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"=bombs", "BACKUPD_FILES_BOMBS="+plan)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	var peak int64 = -1
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "bomb ") {
			t.Log(strings.TrimSpace(line))
		}
		if _, v, ok := strings.Cut(line, "VmHWM-bytes="); ok {
			peak, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	if peak < 0 {
		t.Fatalf("the child did not report its peak RSS:\n%s", out)
	}
	t.Logf("peak RSS of restoring every hostile index: %.1f MiB", float64(peak)/(1<<20))
	if peak >= 256<<20 {
		t.Errorf("peak RSS %d bytes, want under 256 MiB", peak)
	}
}

// craftBombs stores each hostile index in a dir target of its own and writes the plan for
// the child: one line per bomb, "name<TAB>dir<TAB>set<TAB>want", after the identity.
func craftBombs(t *testing.T) string {
	ctx := context.Background()
	k := newTestKeys(t)
	var plan strings.Builder
	fmt.Fprintln(&plan, k.ids[0].(*age.X25519Identity).String())
	const n = 200_000
	for _, tc := range []struct {
		name    string
		entries func(pack Loc) []*Entry
		root    func(*indexRoot)
		want    string
	}{
		{
			name: "a chunk claiming 1 TiB",
			entries: func(at Loc) []*Entry {
				return []*Entry{{Path: "big", Type: TypeFile, Size: 1 << 40, SHA256: strings.Repeat("ab", 32),
					Chunks: []ChunkRef{{Size: 1 << 40, At: []Loc{at}}}}}
			},
			want: "chunks are 1 to 8388608 bytes",
		},
		{
			name: "one entry of 64 MiB",
			entries: func(Loc) []*Entry {
				return []*Entry{{Path: "x", Type: TypeSkipped, Reason: strings.Repeat("a", 64<<20)}}
			},
			want: "is longer than 16777216 bytes",
		},
		{
			name: "a path of 1 MiB",
			entries: func(Loc) []*Entry {
				return []*Entry{{Path: strings.Repeat("a/", 512<<10) + "b", Type: TypeDir}}
			},
			want: "longer than 4096 bytes",
		},
		{
			name: "200 000 copies of one path",
			entries: func(Loc) []*Entry {
				out := make([]*Entry, n)
				for i := range out {
					out[i] = &Entry{Path: "same", Type: TypeDir, Mode: 0o755}
				}
				return out
			},
			want: `"same": appears twice`,
		},
		{
			name: "a skip reason of 8 MiB",
			entries: func(Loc) []*Entry {
				return []*Entry{{Path: "x", Type: TypeSkipped, Reason: strings.Repeat("r", 8<<20)}}
			},
			want: "skip reason is longer than 4096 bytes",
		},
		{
			name: "an index stream claiming 8 GiB",
			root: func(r *indexRoot) { r.Size = 8 << 30 },
			want: "index stream of 8589934592 bytes",
		},
		{
			name: "an index chunk claiming 1 TiB",
			root: func(r *indexRoot) { r.Chunks[0].Size = 1 << 40 },
			want: "chunk 0 has size 1099511627776",
		},
	} {
		d, dir := newDirTarget(t, "local")
		testHookRoot = tc.root
		entries := func(Loc) []*Entry { return []*Entry{{Path: "a", Type: TypeDir, Mode: 0o755}} }
		if tc.entries != nil {
			entries = tc.entries
		}
		id := craftedBomb(t, ctx, k, d, entries)
		testHookRoot = nil
		sealed := policyBytes(t, d.Target)
		if sealed >= 200<<10 {
			t.Fatalf("bomb %s: %d bytes sealed, want under 200 KB", tc.name, sealed)
		}
		fmt.Fprintf(&plan, "%s\t%s\t%s\t%s\n", tc.name, dir, id, tc.want)
	}
	p := filepath.Join(t.TempDir(), "plan")
	if err := os.WriteFile(p, []byte(plan.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func bombsChild(t *testing.T) {
	ctx := context.Background()
	plan, err := os.ReadFile(os.Getenv("BACKUPD_FILES_BOMBS"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(plan)), "\n")
	id, err := age.ParseX25519Identity(lines[0])
	if err != nil {
		t.Fatal(err)
	}
	k := testKeys{ids: []age.Identity{id}}
	for _, line := range lines[1:] {
		f := strings.Split(line, "\t")
		name, dir, set, want := f[0], f[1], f[2], f[3]
		d := dirTargetAt(t, dir)
		_, err := restoreDir(t, ctx, k, []backupset.Dest{d}, set, "evil", filepath.Join(t.TempDir(), "out"), nil)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("bomb %s: got %v, want an error containing %q", name, err, want)
			continue
		}
		t.Logf("bomb %s: %.200s", name, err)
	}
	t.Logf("VmHWM-bytes=%d", vmHWM(t))
}

// craftedBomb stores a set whose index holds the entries built from a location of a real
// blob, so that hostile chunk references point into a pack that exists.
func craftedBomb(t *testing.T, ctx context.Context, k testKeys, d backupset.Dest, entries func(Loc) []*Entry) string {
	t.Helper()
	id := nextSetID()
	dests := []backupset.Dest{d}
	w, err := backupset.NewWriter(ctx, testPolicy, id, dests, backupset.WriterOptions{Signer: testSigner, Recipients: k.rcpt, SpoolDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	walk := func(ctx context.Context, sn *snapshotter) error {
		chunks, _, _, err := sn.storeStream(ctx, strings.NewReader("hello"), 5)
		if err != nil {
			return err
		}
		for _, e := range entries(chunks[0].At[0]) {
			if err := sn.emit(ctx, e); err != nil {
				return err
			}
		}
		return nil
	}
	res, err := snapshot(ctx, SourceSpec{Name: "evil", Path: "/nonexistent"}, w, dests, SnapshotOptions{
		Policy: testPolicy, SetID: id, Recipients: k.rcpt, NameKey: k.nameKey, SpoolDir: t.TempDir(), Level: "best",
	}, walk)
	if err != nil {
		t.Fatal(err)
	}
	desc, _ := Describe(res)
	for _, tr := range w.Commit(ctx, &backupset.Manifest{Files: desc, Recipients: []string{"test"}}) {
		if tr.Err != nil {
			t.Fatal(fmt.Errorf("commit: %w", tr.Err))
		}
	}
	return id
}

// TestMarkersKeptUntilCommit: a job snapshots two sources into one set; the first finishes
// long before the second (here: longer than MarkerMaxAge). Another host's garbage collection
// runs in between. With the markers kept fresh on a timer it defers, and the set commits and
// restores; without (as a snapshot alone did), it deletes the first source's packs, and the
// recheck before the manifest fails the job on every target: nothing is committed.
func TestMarkersKeptUntilCommit(t *testing.T) {
	const maxAge = 3 * time.Second
	for _, tc := range []struct {
		name string
		keep bool
	}{
		{"markers kept on a timer", true},
		{"markers left to the snapshot alone", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			k := newTestKeys(t)
			d := s3Dest(t, "minio", s3Bucket(t, testenv.MinIO(t)))
			dests := []backupset.Dest{d}
			first := filepath.Join(t.TempDir(), "first")
			smallTree(t, first)
			second := t.TempDir()
			writeRandom(t, filepath.Join(second, "f.bin"), 1<<20, 5, 0o644)

			id := nextSetID()
			var snaps []*SnapshotResult
			w, err := backupset.NewWriter(ctx, testPolicy, id, dests, backupset.WriterOptions{
				Signer: testSigner, Recipients: k.rcpt, SpoolDir: t.TempDir(),
				BeforeCommit: func(ctx context.Context) error { return CheckPacks(ctx, dests, snaps...) },
			})
			if err != nil {
				t.Fatal(err)
			}
			var keeper *MarkerKeeper
			refreshed := make(chan struct{}, 1)
			if tc.keep {
				keeper, err = KeepMarkers(ctx, testPolicy, id, dests, k.nameKey, KeepOptions{Every: 200 * time.Millisecond})
				if err != nil {
					t.Fatal(err)
				}
				keeper.refreshed = func() {
					select {
					case refreshed <- struct{}{}:
					default:
					}
				}
				defer keeper.Stop()
			}
			snap := func(name, path string) {
				r, err := Snapshot(ctx, SourceSpec{Name: name, Path: path}, w, dests, SnapshotOptions{
					Policy: testPolicy, SetID: id, Recipients: k.rcpt, NameKey: k.nameKey, PackSize: 128 << 10,
					SpoolDir: t.TempDir(), Markers: keeper,
				})
				if err != nil {
					t.Fatal(err)
				}
				snaps = append(snaps, r)
			}
			snap("first", first)
			time.Sleep(maxAge + time.Second) // the second source takes long
			if tc.keep {
				<-refreshed // drop a signal sent before the sleep ended
				<-refreshed
			}
			gc, err := GC(ctx, d.Target, testPolicy, GCOptions{Grace: time.Nanosecond, MarkerMaxAge: maxAge})
			if err != nil {
				t.Fatal(err)
			}
			snap("second", second)
			desc, err := Describe(snaps...)
			if err != nil {
				t.Fatal(err)
			}
			results := w.Commit(ctx, &backupset.Manifest{Files: desc, Recipients: []string{"test"}})
			committed := 0
			for _, s := range mustSetKeys(t, d.Target) {
				if s.ID == id && s.Committed {
					committed++
				}
			}

			if tc.keep {
				if len(gc.Deleted) != 0 || len(gc.Deferred) == 0 {
					t.Fatalf("gc deleted %d objects, deferred by %v; want nothing deleted, deferred by the job's markers", len(gc.Deleted), gc.Deferred)
				}
				if results[0].Err != nil || committed != 1 {
					t.Fatalf("commit: got %v (committed %d), want the set committed", results[0].Err, committed)
				}
				dst := filepath.Join(t.TempDir(), "out")
				if _, err := restoreDir(t, ctx, k, dests, id, "first", dst, nil); err != nil {
					t.Fatal(err)
				}
				compareTrees(t, scanTree(t, first), scanTree(t, dst), cmpOpts{meta: true})
				return
			}
			if len(gc.Deleted) == 0 {
				t.Fatalf("gc deleted nothing (deferred by %v); this case needs the stale marker to let it delete", gc.Deferred)
			}
			if err := results[0].Err; err == nil || !strings.Contains(err.Error(), "is gone from target minio") {
				t.Errorf("commit: got %v, want an error saying a pack is gone from target minio", err)
			}
			if committed != 0 {
				t.Errorf("got the set committed on %d targets, want none", committed)
			}
			t.Logf("commit error: %.300v", results[0].Err)
		})
	}
}

// TestPackSumsCarriedForward: a set that reuses packs stored by an earlier set records their
// hashes too (from the earlier manifest's files section), and every recorded hash is the hash
// of the sealed pack on the target.
func TestPackSumsCarriedForward(t *testing.T) {
	ctx := context.Background()
	k := newTestKeys(t)
	d, _ := newDirTarget(t, "a")
	src := filepath.Join(t.TempDir(), "src")
	smallTree(t, src)
	spec := SourceSpec{Name: "up", Path: src}
	makeSet(t, ctx, k, []backupset.Dest{d}, spec, snapOpts{packSize: 128 << 10})
	writeRandom(t, filepath.Join(src, "new.bin"), 300<<10, 9, 0o644)
	id2, res2 := makeSet(t, ctx, k, []backupset.Dest{d}, spec, snapOpts{packSize: 128 << 10})
	if res2.NewPacks >= len(res2.Packs) {
		t.Fatalf("set 2 wrote %d of its %d packs; the test needs reused ones", res2.NewPacks, len(res2.Packs))
	}
	root := readRootForTest(t, ctx, k, d, id2)
	for _, p := range res2.Packs {
		got, want := root.PackSums[p], objectSum(t, d.Target, packKey(testPolicy, p))
		if got != want {
			t.Errorf("pack %s: index records SHA-256 %q, want %s", p, got, want)
		}
	}
	if len(root.PackSums) != len(res2.Packs) {
		t.Errorf("index records %d pack hashes, want %d", len(root.PackSums), len(res2.Packs))
	}
}
