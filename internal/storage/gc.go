package storage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"github.com/backupd/backupd/internal/backupset"
	"github.com/backupd/backupd/internal/targets"
)

// GCOptions tune garbage collection of the blob area; zero values are the safe defaults.
type GCOptions struct {
	// Grace protects packs younger than this, referenced or not (default 6h): a snapshot
	// that just finished uploading may not have committed its set yet. It must exceed the
	// clock skew between hosts and the time between a snapshot's end and its set's commit.
	Grace time.Duration
	// MarkerMaxAge is how long an in-progress marker of a set that never committed holds
	// back deletion (default 24h). A running snapshot rewrites its marker every hour, and the
	// backup job keeps doing so (MarkerKeeper) until its set commits; a job killed before it
	// commits leaves a marker that goes stale after this time.
	MarkerMaxAge time.Duration
	DryRun       bool // report what would be deleted, delete nothing
	Now          func() time.Time
	// Trust decides which sets are committed (backupset.Committed); nil trusts nothing, so
	// every set is untrusted and only the conservative rule for them keeps packs.
	Trust  backupset.Trust
	Logger *slog.Logger
}

// GCObject is an object garbage collection deleted, would delete, or kept.
type GCObject struct {
	Key     string
	Size    int64
	ModTime time.Time
}

// GCResult is what one garbage collection found and did.
type GCResult struct {
	DryRun          bool
	Sets            []string // committed sets whose references were counted
	Packs           int      // packs on the target
	Referenced      int      // of which referenced by a committed set
	ReferencedBytes int64
	// Deleted lists the packs and headers deleted (with DryRun: that would be deleted).
	Deleted      []GCObject
	DeletedBytes int64
	// KeptYoung lists unreferenced packs kept because they are younger than Grace.
	KeptYoung []GCObject
	// Deferred lists the in-progress markers of running (or recently failed) snapshots; while
	// there is one, no pack is deleted, because that snapshot may reuse any of them.
	Deferred []string
	// RetiredMarkers lists markers removed because their set committed or they went stale.
	RetiredMarkers []string
	// Untrusted lists the sets whose manifest is present but not trusted ("ID: reason", see
	// backupset.Committed). They do not stop the collection, but what they may reference is
	// kept: the packs their manifest lists when it parses that far, otherwise every pack
	// written before the set's last object (plus Grace) — see KeptUntrusted.
	Untrusted []string
	// KeptUntrusted lists unreferenced packs kept because an untrusted set whose references
	// cannot be read may need them.
	KeptUntrusted []GCObject
}

// GC deletes the packs of a policy's blob area on one target that no committed set references.
// Retention calls it after deleting sets; it never deletes a set.
//
// The rule, and why it is safe while a backup runs (on this or another host):
//
//  1. mark: read every committed manifest and collect the packs its files section lists; a
//     manifest the target fails to return aborts the collection, since its references are
//     unknown. A manifest that is present but not trusted (backupset.Committed) may still be
//     a real set's, damaged or from a newer backupd: the packs it lists are marked when it
//     parses that far; when it does not, every pack no newer than the set's last object
//     (plus Grace) is kept, since a set only references packs written before its manifest.
//     A planted manifest so holds back the collection of older packs, never of later ones;
//  2. list the blob area (packs, headers, in-progress markers);
//  3. look at markers: a marker whose set has committed, or older than MarkerMaxAge, is
//     retired; any other marker is a snapshot in progress and defers all pack deletion;
//  4. mark again from the sets committed since step 1;
//  5. delete the packs (then their headers) that are unmarked and older than Grace, and
//     headers whose pack is gone.
//
// A snapshot writes its marker before it reads anything, and reuses only packs referenced by
// a set committed when it read them. So a pack it reuses is marked in step 1 or 4, or its
// marker defers the sweep; a pack it uploads after step 2 was not listed; one uploaded before
// has a marker visible in step 3, or belongs to a set committed by step 4. Packs are deleted
// whole: a pack with one live blob is kept (there is no repacking).
func GC(ctx context.Context, t backupset.Target, policy string, opts GCOptions) (*GCResult, error) {
	if !backupset.ValidPolicyName(policy) {
		return nil, fmt.Errorf("policy name %q is not valid", policy)
	}
	if opts.Grace <= 0 {
		opts.Grace = 6 * time.Hour
	}
	if opts.MarkerMaxAge <= 0 {
		opts.MarkerMaxAge = 24 * time.Hour
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("policy", policy)
	res := &GCResult{DryRun: opts.DryRun}

	// 1. mark
	mk := &marking{marked: map[string]bool{}, counted: map[string]bool{}, now: now(), trust: opts.Trust}
	sets, err := backupset.SetKeys(ctx, t, policy)
	if err != nil {
		return res, err
	}
	if gcTestHookListed != nil {
		gcTestHookListed()
	}
	if err := mk.markSets(ctx, t, policy, sets, res); err != nil {
		return res, err
	}

	// 2. list
	type packObjs struct{ pack, hdr *targets.ObjectInfo }
	packs := map[string]*packObjs{}
	type marker struct {
		info targets.ObjectInfo
		set  string
	}
	var markers []marker
	err = t.List(ctx, blobsPrefix(policy), func(oi targets.ObjectInfo) error {
		if id, hdr, ok := parsePackKey(policy, oi.Key); ok {
			p := packs[id]
			if p == nil {
				p = &packObjs{}
				packs[id] = p
			}
			if hdr {
				p.hdr = &oi
			} else {
				p.pack = &oi
			}
			return nil
		}
		if set, _, ok := parseMarkerKey(policy, oi.Key); ok {
			markers = append(markers, marker{info: oi, set: set})
		}
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("list %s: %w", blobsPrefix(policy), err)
	}

	// 3. markers, against a fresh listing of sets; 4. mark again (first, so that a marker is
	// retired only when its set's manifest was read and trusted)
	sets, err = backupset.SetKeys(ctx, t, policy)
	if err != nil {
		return res, err
	}
	if err := mk.markSets(ctx, t, policy, sets, res); err != nil {
		return res, err
	}
	var retire []string
	for _, m := range markers {
		switch {
		case mk.counted[m.set] && !mk.untrusted[m.set]:
			retire = append(retire, m.info.Key)
		case now().Sub(m.info.ModTime) >= opts.MarkerMaxAge:
			log.Warn("in-progress marker is stale; its snapshot never committed", "set", m.set, "key", m.info.Key)
			retire = append(retire, m.info.Key)
		default:
			res.Deferred = append(res.Deferred, m.info.Key)
		}
	}

	// 5. sweep
	ids := make([]string, 0, len(packs))
	for id := range packs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var doomed []GCObject
	for _, id := range ids {
		p := packs[id]
		if p.pack != nil {
			res.Packs++
		}
		if mk.marked[id] {
			if p.pack != nil {
				res.Referenced++
				res.ReferencedBytes += p.pack.Size
			}
			continue
		}
		newest := time.Time{}
		for _, oi := range []*targets.ObjectInfo{p.pack, p.hdr} {
			if oi != nil && oi.ModTime.After(newest) {
				newest = oi.ModTime
			}
		}
		if now().Sub(newest) < opts.Grace {
			if p.pack != nil {
				res.KeptYoung = append(res.KeptYoung, GCObject{Key: p.pack.Key, Size: p.pack.Size, ModTime: p.pack.ModTime})
			}
			continue
		}
		if !mk.unreadableUntil.IsZero() && !newest.After(mk.unreadableUntil.Add(opts.Grace)) {
			if p.pack != nil {
				res.KeptUntrusted = append(res.KeptUntrusted, GCObject{Key: p.pack.Key, Size: p.pack.Size, ModTime: p.pack.ModTime})
			}
			continue
		}
		for _, oi := range []*targets.ObjectInfo{p.pack, p.hdr} { // pack first
			if oi != nil {
				doomed = append(doomed, GCObject{Key: oi.Key, Size: oi.Size, ModTime: oi.ModTime})
			}
		}
	}
	if len(res.Deferred) > 0 {
		log.Info("garbage collection deferred: a snapshot is in progress", "markers", res.Deferred, "unreferenced", len(doomed))
		doomed = nil
	}
	for _, o := range doomed {
		if !opts.DryRun {
			if err := t.Delete(ctx, o.Key); err != nil {
				return res, fmt.Errorf("delete %s: %w", o.Key, err)
			}
		}
		res.Deleted = append(res.Deleted, o)
		res.DeletedBytes += o.Size
	}
	for _, key := range retire {
		if !opts.DryRun {
			if err := t.Delete(ctx, key); err != nil {
				return res, fmt.Errorf("delete %s: %w", key, err)
			}
		}
		res.RetiredMarkers = append(res.RetiredMarkers, key)
	}
	log.Info("garbage collection finished", "dry_run", opts.DryRun, "sets", len(res.Sets), "packs", res.Packs,
		"referenced", res.Referenced, "deleted", len(res.Deleted), "deleted_bytes", res.DeletedBytes,
		"kept_young", len(res.KeptYoung), "deferred", len(res.Deferred), "untrusted_sets", len(res.Untrusted), "kept_untrusted", len(res.KeptUntrusted))
	return res, nil
}

// gcTestHookListed, when set by a test, runs between the first listing of sets and reading
// their manifests.
var gcTestHookListed func()

// marking is what the mark steps of one collection have learnt.
type marking struct {
	now     time.Time
	trust   backupset.Trust
	marked  map[string]bool // packs referenced
	counted map[string]bool // sets whose manifest was read
	// untrusted sets, and the last write of those whose references could not be read
	untrusted       map[string]bool
	unreadableUntil time.Time
}

func (mk *marking) markSets(ctx context.Context, t backupset.Target, policy string, sets []backupset.SetEntry, res *GCResult) error {
	for _, s := range sets {
		if !s.Committed || mk.counted[s.ID] {
			continue
		}
		m, err := backupset.ReadManifest(ctx, t, policy, s.ID, mk.now, mk.trust)
		var ue *backupset.UntrustedError
		switch {
		case errors.Is(err, targets.ErrNotFound):
			continue // deleted since the listing: it protects nothing any more
		case errors.As(err, &ue):
			mk.counted[s.ID] = true
			if mk.untrusted == nil {
				mk.untrusted = map[string]bool{}
			}
			mk.untrusted[s.ID] = true
			res.Untrusted = append(res.Untrusted, s.ID+": "+ue.Reason)
			if ue.Parsed != nil {
				if d, err := ParseDescription(ue.Parsed.Files); err == nil {
					mk.mark(d)
					continue
				}
			}
			if s.LastModified.After(mk.unreadableUntil) {
				mk.unreadableUntil = s.LastModified
			}
			continue
		case err != nil:
			return fmt.Errorf("garbage collection stopped, nothing deleted: %w (the set's references are unknown; repair or delete that set first)", err)
		}
		d, err := ParseDescription(m.Files)
		if err != nil {
			return fmt.Errorf("garbage collection stopped, nothing deleted: set %s: %w", s.ID, err)
		}
		mk.counted[s.ID] = true
		res.Sets = append(res.Sets, s.ID)
		mk.mark(d)
	}
	return nil
}

func (mk *marking) mark(d *Description) {
	for _, src := range d.Sources {
		for _, p := range src.Packs {
			mk.marked[p] = true
		}
	}
}

// SetUsage is how much of the blob area one committed set keeps alive on a target.
type SetUsage struct {
	SetID string
	Packs int
	Bytes int64 // sealed bytes of the packs it references
	// ExclusiveBytes are referenced by no other committed set: what deleting this set (and
	// collecting garbage) would free.
	ExclusiveBytes int64
}

// Usage accounts the blob area's packs to the committed sets of a policy on one target, so
// retention can say what deleting a set frees. Pack sizes come from one listing.
func Usage(ctx context.Context, t backupset.Target, policy string, now time.Time, trust backupset.Trust) ([]SetUsage, error) {
	sets, err := backupset.SetKeys(ctx, t, policy)
	if err != nil {
		return nil, err
	}
	listed, err := listPacks(ctx, t, policy)
	if err != nil {
		return nil, err
	}
	refs := map[string]int{}
	var out []SetUsage
	var perSet [][]string
	for _, s := range sets {
		if !s.Committed {
			continue
		}
		m, err := backupset.ReadManifest(ctx, t, policy, s.ID, now, trust)
		if errors.Is(err, backupset.ErrUntrusted) {
			continue // not a set retention can delete
		}
		if err != nil {
			return nil, err
		}
		d, err := ParseDescription(m.Files)
		if err != nil {
			return nil, fmt.Errorf("set %s: %w", s.ID, err)
		}
		seen := map[string]bool{}
		var ps []string
		for _, src := range d.Sources {
			for _, p := range src.Packs {
				if !seen[p] {
					seen[p] = true
					ps = append(ps, p)
					refs[p]++
				}
			}
		}
		out = append(out, SetUsage{SetID: s.ID})
		perSet = append(perSet, ps)
	}
	for i, ps := range perSet {
		for _, p := range ps {
			size := listed[p].size
			out[i].Packs++
			out[i].Bytes += size
			if refs[p] == 1 {
				out[i].ExclusiveBytes += size
			}
		}
	}
	return out, nil
}
