package storage

import (
	"bytes"
	"context"
	"encoding/json"
	"github.com/backupd/backupd/internal/signing"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/backupset"
)

// gcScenario: set 1 holds a 16 MiB file that set 2 lacks; small packs so that file's packs
// hold nothing else. Set 1 is deleted, as retention would.
func gcScenario(t *testing.T) (ctx context.Context, k testKeys, d backupset.Dest, src, id2 string, garbage []string) {
	t.Helper()
	ctx = context.Background()
	k = newTestKeys(t)
	d, _ = newDirTarget(t, "a")
	src = filepath.Join(t.TempDir(), "src")
	smallTree(t, src)
	writeRandom(t, filepath.Join(src, "old.bin"), 16<<20, 77, 0o644)
	id1, _ := makeSet(t, ctx, k, []backupset.Dest{d}, SourceSpec{Name: "up", Path: src}, snapOpts{packSize: 128 << 10})
	os.Remove(filepath.Join(src, "old.bin"))
	id2, _ = makeSet(t, ctx, k, []backupset.Dest{d}, SourceSpec{Name: "up", Path: src}, snapOpts{packSize: 128 << 10})
	keep := map[string]bool{}
	for _, p := range setPacks(t, d.Target, id2) {
		keep[p] = true
	}
	for _, p := range setPacks(t, d.Target, id1) {
		if !keep[p] {
			garbage = append(garbage, p)
		}
	}
	sort.Strings(garbage)
	if len(garbage) < 3 {
		t.Fatalf("scenario has %d unreferenced packs, want several", len(garbage))
	}
	deleteSet(t, d.Target, id1)
	return ctx, k, d, src, id2, garbage
}

func later(d time.Duration) func() time.Time { return func() time.Time { return time.Now().Add(d) } }

func TestGCRules(t *testing.T) {
	tests := []struct {
		name        string
		setup       func(t *testing.T, ctx context.Context, d backupset.Dest, k testKeys)
		opts        GCOptions
		wantDeleted bool
		wantErr     string
		check       func(t *testing.T, res *GCResult)
	}{
		{
			name: "unreferenced packs past the grace period go", opts: GCOptions{Trust: testTrust, Now: later(7 * time.Hour)}, wantDeleted: true,
		},
		{
			name: "dry run deletes nothing", opts: GCOptions{Trust: testTrust, Now: later(7 * time.Hour), DryRun: true},
			check: func(t *testing.T, res *GCResult) {
				if len(res.Deleted) == 0 {
					t.Errorf("dry run reports nothing to delete")
				}
			},
		},
		{
			name: "young packs are kept", opts: GCOptions{Trust: testTrust},
			check: func(t *testing.T, res *GCResult) {
				if len(res.KeptYoung) == 0 {
					t.Errorf("no pack reported kept for its age")
				}
			},
		},
		{
			name: "a running snapshot defers deletion",
			setup: func(t *testing.T, ctx context.Context, d backupset.Dest, k testKeys) {
				putMarker(t, ctx, d, k, nextSetID())
			},
			opts: GCOptions{Trust: testTrust, Now: later(7 * time.Hour)},
			check: func(t *testing.T, res *GCResult) {
				if len(res.Deferred) != 1 {
					t.Errorf("deferred by %v, want one marker", res.Deferred)
				}
			},
		},
		{
			name: "a stale marker is retired and does not defer",
			setup: func(t *testing.T, ctx context.Context, d backupset.Dest, k testKeys) {
				putMarker(t, ctx, d, k, nextSetID())
			},
			opts: GCOptions{Trust: testTrust, Now: later(25 * time.Hour)}, wantDeleted: true,
			check: func(t *testing.T, res *GCResult) {
				stale := slices.ContainsFunc(res.RetiredMarkers, func(k string) bool { return strings.Contains(k, ".other.") })
				if !stale || len(res.Deferred) != 0 {
					t.Errorf("retired %v, deferred %v; want the stale marker retired, none deferring", res.RetiredMarkers, res.Deferred)
				}
			},
		},
		{
			name: "a set deleted while the collection lists is skipped",
			setup: func(t *testing.T, ctx context.Context, d backupset.Dest, k testKeys) {
				// Listed as committed, gone when read: what a concurrent deletion looks like.
				gcTestHookListed = func() {
					gcTestHookListed = nil
					for _, s := range mustSetKeys(t, d.Target) {
						d.Target.Delete(ctx, backupset.ManifestKey(testPolicy, s.ID))
					}
				}
			},
			opts: GCOptions{Trust: testTrust, Now: later(7 * time.Hour)},
			check: func(t *testing.T, res *GCResult) {
				if len(res.Sets) != 0 {
					t.Errorf("counted sets %v, want none (all were deleted)", res.Sets)
				}
			},
		},
		{
			name: "an unreadable manifest keeps every older pack and does not stop the collection",
			setup: func(t *testing.T, ctx context.Context, d backupset.Dest, k testKeys) {
				body := []byte("{not json")
				if err := d.Target.Put(ctx, backupset.ManifestKey(testPolicy, nextSetID()), bytes.NewReader(body), int64(len(body))); err != nil {
					t.Fatal(err)
				}
			},
			opts: GCOptions{Trust: testTrust, Now: later(7 * time.Hour)},
			check: func(t *testing.T, res *GCResult) {
				if len(res.Untrusted) != 1 || len(res.KeptUntrusted) == 0 || len(res.Sets) != 1 {
					t.Errorf("untrusted %v, kept for it %d packs, counted sets %v; want one untrusted set keeping the garbage, one set counted",
						res.Untrusted, len(res.KeptUntrusted), res.Sets)
				}
			},
		},
		{
			name: "a future-dated manifest that parses keeps the packs it lists",
			setup: func(t *testing.T, ctx context.Context, d backupset.Dest, k testKeys) {
				id := backupset.NewID(time.Now().Add(1000 * time.Hour))
				var packs []string
				for _, p := range listPackIDs(t, d.Target) {
					packs = append(packs, p)
				}
				desc, _ := json.Marshal(Description{Version: DescriptionVersion, Sources: []SourceSummary{{Name: "up", Packs: packs}}})
				body, _ := json.Marshal(backupset.Manifest{FormatVersion: backupset.FormatVersion, SetID: id, Policy: testPolicy, Files: desc})
				if err := d.Target.Put(ctx, backupset.ManifestKey(testPolicy, id), bytes.NewReader(body), int64(len(body))); err != nil {
					t.Fatal(err)
				}
				// Signed by the trusted key (a writer whose clock is wrong): the date is the fault.
				sig, _ := testSigner.Sign(signing.NamespaceManifest, body)
				if err := d.Target.Put(ctx, backupset.SignatureKey(testPolicy, id), bytes.NewReader(sig), int64(len(sig))); err != nil {
					t.Fatal(err)
				}
			},
			opts: GCOptions{Trust: testTrust, Now: later(7 * time.Hour)},
			check: func(t *testing.T, res *GCResult) {
				if len(res.Untrusted) != 1 || !strings.Contains(res.Untrusted[0], "in the future") || len(res.KeptUntrusted) != 0 {
					t.Errorf("untrusted %v, kept for it %d packs; want one set dated in the future whose listed packs are marked",
						res.Untrusted, len(res.KeptUntrusted))
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, k, d, src, id2, garbage := gcScenario(t)
			if tt.setup != nil {
				tt.setup(t, ctx, d, k)
			}
			before := listPackIDs(t, d.Target)
			res, err := GC(ctx, d.Target, testPolicy, tt.opts)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %v, want an error containing %q", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			after := listPackIDs(t, d.Target)
			var gone []string
			for _, p := range before {
				if !slices.Contains(after, p) {
					gone = append(gone, p)
				}
			}
			if tt.wantDeleted && !slices.Equal(gone, garbage) {
				t.Errorf("deleted packs %v, want exactly the unreferenced %v", gone, garbage)
			}
			if !tt.wantDeleted && len(gone) != 0 {
				t.Errorf("deleted %d packs, want none", len(gone))
			}
			if tt.check != nil && res != nil {
				tt.check(t, res)
			}
			if res != nil && len(res.Sets) == 0 {
				return // the set is gone too
			}
			// Whatever happened, the remaining set restores exactly.
			dst := filepath.Join(t.TempDir(), "out")
			if _, err := restoreDir(t, ctx, k, []backupset.Dest{d}, id2, "up", dst, nil); err != nil {
				t.Fatal(err)
			}
			compareTrees(t, scanTree(t, src), scanTree(t, dst), cmpOpts{meta: true})
		})
	}
}

func putMarker(t *testing.T, ctx context.Context, d backupset.Dest, k testKeys, setID string) {
	t.Helper()
	keys, _ := newKeyring(k.nameKey)
	sn := &snapshotter{st: &store{dests: []backupset.Dest{d}}, res: &SnapshotResult{Uploaded: map[string]int64{}}, keys: keys,
		now: time.Now, spec: SourceSpec{Name: "other"}, opts: SnapshotOptions{Trust: testTrust, Policy: testPolicy, SetID: setID}}
	if err := sn.putMarkers(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestGCWhileASnapshotRuns: a snapshot has read what set 1 holds and is about to reuse it when
// retention deletes set 1 and collects garbage. The collection must leave the packs alone,
// and the new set must restore exactly.
func TestGCWhileASnapshotRuns(t *testing.T) {
	ctx := context.Background()
	k := newTestKeys(t)
	d, _ := newDirTarget(t, "a")
	src := filepath.Join(t.TempDir(), "src")
	smallTree(t, src)
	spec := SourceSpec{Name: "up", Path: src}
	id1, _ := makeSet(t, ctx, k, []backupset.Dest{d}, spec, snapOpts{packSize: 128 << 10})

	var gc *GCResult
	testHookAfterLoad = func() {
		testHookAfterLoad = nil
		deleteSet(t, d.Target, id1)
		var err error
		gc, err = GC(ctx, d.Target, testPolicy, GCOptions{Trust: testTrust, Now: later(7 * time.Hour)})
		if err != nil {
			t.Error(err)
		}
	}
	defer func() { testHookAfterLoad = nil }()
	id2, res := makeSet(t, ctx, k, []backupset.Dest{d}, spec, snapOpts{packSize: 128 << 10})
	if gc == nil {
		t.Fatal("the hook did not run")
	}
	if len(gc.Deleted) != 0 || len(gc.Deferred) != 1 {
		t.Errorf("gc during the snapshot deleted %d objects, deferred by %v; want nothing deleted, deferred by the snapshot's marker", len(gc.Deleted), gc.Deferred)
	}
	if res.NewBytes > 64<<10 {
		t.Errorf("the snapshot stored %d new bytes; it should have reused set 1's packs", res.NewBytes)
	}
	dst := filepath.Join(t.TempDir(), "out")
	if _, err := restoreDir(t, ctx, k, []backupset.Dest{d}, id2, "up", dst, nil); err != nil {
		t.Fatal(err)
	}
	compareTrees(t, scanTree(t, src), scanTree(t, dst), cmpOpts{meta: true})

	// Once set 2 has committed, the next collection retires its marker and finds nothing to
	// delete: set 2 references every pack set 1 had.
	after, err := GC(ctx, d.Target, testPolicy, GCOptions{Trust: testTrust, Now: later(7 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if len(after.Deferred) != 0 || len(after.Deleted) != 0 {
		t.Errorf("after commit: deferred %v, deleted %d; want neither", after.Deferred, len(after.Deleted))
	}
}

func TestUsage(t *testing.T) {
	ctx, _, d, _, id2, garbage := gcScenario(t)
	_ = garbage
	u, err := Usage(ctx, d.Target, testPolicy, time.Now(), testTrust)
	if err != nil {
		t.Fatal(err)
	}
	if len(u) != 1 || u[0].SetID != id2 || u[0].Bytes == 0 || u[0].ExclusiveBytes != u[0].Bytes {
		t.Errorf("usage %+v, want one set %s whose bytes are all exclusive", u, id2)
	}
}

func mustSetKeys(t *testing.T, tg backupset.Target) []backupset.SetEntry {
	t.Helper()
	sets, err := backupset.SetKeys(context.Background(), tg, testPolicy)
	if err != nil {
		t.Fatal(err)
	}
	return sets
}
