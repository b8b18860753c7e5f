package storage

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"filippo.io/age"

	"github.com/backupd/backupd/internal/backupset"
	"github.com/backupd/backupd/internal/seal"
	"github.com/backupd/backupd/internal/targets"
)

// readSource is one target a restore may read from, in the caller's order of preference.
type readSource struct {
	name  string
	t     backupset.Target
	packs map[string]listedPack // nil when the target could not be listed
	down  atomic.Bool           // a read failed for a reason other than a missing or corrupt pack
}

// need is one blob a restore needs, with every place it is to be written.
type need struct {
	size   int64
	sum    [32]byte
	hasSum bool
	locs   []Loc
	sinks  []sink
	label  string // what it belongs to, for errors

	failed map[failKey]bool
	errs   []error
}

type sink struct {
	c   consumer
	off int64
}

// consumer receives a blob's bytes at an offset of something being restored. An error from
// it is the destination's and ends the restore: no other target can fix it.
type consumer interface {
	deliver(ctx context.Context, off int64, data []byte) error
}

type failKey struct {
	src  int
	pack string
}

func (n *need) addLocs(at []Loc) {
	for _, l := range at {
		dup := false
		for _, o := range n.locs {
			if o == l {
				dup = true
				break
			}
		}
		if !dup {
			n.locs = append(n.locs, l)
		}
	}
}

// fetcher reads needed blobs out of packs, each pack once, from the first target that has it,
// and falls back, pack by pack, to the next target when a pack is missing, unreadable or
// corrupt there.
type fetcher struct {
	policy  string
	ids     []age.Identity
	srcs    []*readSource
	workers int
	log     *slog.Logger
	// sums holds the sealed SHA-256 of each pack as the index root records it (index version
	// 2 on); a pack with a known sum is checked before a byte of it is decrypted.
	sums     map[string][32]byte
	spoolDir string

	missing map[failKey]bool // plan only
	bufs    bufList          // one blob buffer per worker

	mu        sync.Mutex
	warnings  []string
	fallbacks int
	packsRead int
	bytesRead int64
}

type jobItem struct {
	n   *need
	off int64
}

type job struct {
	src   int
	pack  string
	items []jobItem
}

func (f *fetcher) fetch(ctx context.Context, needs []*need) error {
	pending := needs
	for round := 0; len(pending) > 0; round++ {
		jobs, err := f.plan(pending)
		if err != nil {
			return err
		}
		if round > 0 {
			f.mu.Lock()
			f.fallbacks += len(jobs)
			f.mu.Unlock()
		}
		pending, err = f.run(ctx, jobs)
		if err != nil {
			return err
		}
	}
	return nil
}

// plan assigns every pending blob to the first target, in order, that lists a pack holding a
// copy that has not already failed, and groups the blobs by (target, pack) in order of first
// need, so that files complete in index order.
func (f *fetcher) plan(pending []*need) ([]*job, error) {
	byKey := map[failKey]*job{}
	var order []*job
	for _, n := range pending {
		si, loc, ok := f.assign(n)
		if !ok {
			return nil, f.unavailable(n)
		}
		k := failKey{si, loc.Pack}
		j := byKey[k]
		if j == nil {
			j = &job{src: si, pack: loc.Pack}
			byKey[k] = j
			order = append(order, j)
		}
		j.items = append(j.items, jobItem{n: n, off: loc.Offset})
	}
	for _, j := range order {
		sort.Slice(j.items, func(a, b int) bool { return j.items[a].off < j.items[b].off })
	}
	return order, nil
}

func (f *fetcher) assign(n *need) (int, Loc, bool) {
	var missing []failKey // earlier usable targets that lack every copy
	for si, s := range f.srcs {
		if s.packs == nil || s.down.Load() {
			continue
		}
		lacks := true
		for _, l := range n.locs {
			if s.packs[l.Pack].pack {
				lacks = false
				if !n.failed[failKey{si, l.Pack}] {
					f.noteMissing(missing)
					return si, l, true
				}
			}
		}
		if lacks {
			missing = append(missing, failKey{si, n.locs[0].Pack})
		}
	}
	return 0, Loc{}, false
}

// noteMissing warns, once per target and pack, that a pack was read from a later target
// because an earlier one does not have it.
func (f *fetcher) noteMissing(missing []failKey) {
	for _, m := range missing {
		if f.missing == nil {
			f.missing = map[failKey]bool{}
		}
		if f.missing[m] {
			continue
		}
		f.missing[m] = true
		f.fallbacks++
		msg := fmt.Sprintf("pack %s is missing on target %s; reading its blobs from another target", packKey(f.policy, m.pack), f.srcs[m.src].name)
		f.warnings = append(f.warnings, msg)
		f.log.Warn("pack missing, falling back", "target", f.srcs[m.src].name, "pack", m.pack)
	}
}

func (f *fetcher) unavailable(n *need) error {
	var where []string
	for _, l := range n.locs {
		where = append(where, l.Pack)
	}
	var listed []string
	for _, s := range f.srcs {
		switch {
		case s.packs == nil:
			listed = append(listed, s.name+": not listable")
		case s.down.Load():
			listed = append(listed, s.name+": unreachable")
		default:
			for _, l := range n.locs {
				if !s.packs[l.Pack].pack {
					listed = append(listed, fmt.Sprintf("%s: pack %s missing", s.name, l.Pack))
				}
			}
		}
	}
	msg := fmt.Sprintf("%s: no target has a readable copy (packs %s; %s)", n.label, strings.Join(where, ", "), strings.Join(listed, "; "))
	if len(n.errs) > 0 {
		return fmt.Errorf("%s: %w", msg, errors.Join(n.errs...))
	}
	return errors.New(msg)
}

func (f *fetcher) run(ctx context.Context, jobs []*job) ([]*need, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		mu    sync.Mutex
		retry []*need
	)
	workers := f.workers
	if workers <= 0 {
		workers = 4
	}
	if f.bufs == nil {
		f.bufs = newBufList(workers)
	}
	parallel(ctx, workers, len(jobs), func(i int) {
		j := jobs[i]
		rest, srcErr, dstErr := f.runJob(ctx, j)
		if dstErr != nil {
			cancel(dstErr)
			return
		}
		if srcErr == nil {
			return
		}
		if ctx.Err() != nil {
			return
		}
		for _, n := range rest {
			if n.failed == nil {
				n.failed = map[failKey]bool{}
			}
			n.failed[failKey{j.src, j.pack}] = true
			n.errs = append(n.errs, srcErr)
		}
		msg := fmt.Sprintf("%v; reading its blobs from another target", srcErr)
		f.log.Warn("pack unreadable, falling back", "target", f.srcs[j.src].name, "pack", j.pack, "error", srcErr)
		mu.Lock()
		retry = append(retry, rest...)
		f.warnings = append(f.warnings, msg)
		mu.Unlock()
	})
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	return retry, nil
}

// runJob reads one pack front to back, delivering the blobs it was asked for. It returns the
// blobs not delivered with the reason when the source failed, or the destination's error.
func (f *fetcher) runJob(ctx context.Context, j *job) (rest []*need, srcErr, dstErr error) {
	s := f.srcs[j.src]
	key := packKey(f.policy, j.pack)
	all := func(from int) []*need {
		out := make([]*need, 0, len(j.items)-from)
		for _, it := range j.items[from:] {
			out = append(out, it.n)
		}
		return out
	}
	rc, err := s.t.Get(ctx, key)
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		if !errors.Is(err, targets.ErrNotFound) {
			s.down.Store(true) // after the target's own retries: stop asking it
		}
		return all(0), fmt.Errorf("read %s from target %s: %w", key, s.name, err), nil
	}
	defer rc.Close()
	var sealed io.Reader = rc
	if want, ok := f.sums[j.pack]; ok {
		sp, err := f.spoolChecked(ctx, rc, want)
		if err != nil {
			if ctx.Err() != nil {
				return nil, nil, ctx.Err()
			}
			return all(0), fmt.Errorf("pack %s on target %s: %w", key, s.name, err), nil
		}
		defer sp.Close()
		sealed = sp
	}
	// A stanza damaged on this target looks like a wrong key: another target may hold an
	// intact copy, so it is a reason to fall back, not to stop. With every target failing
	// that way the joined errors still say "wrong key".
	sr, err := seal.Open(sealed, f.ids)
	if err != nil {
		return all(0), fmt.Errorf("open %s on target %s: %w", key, s.name, err), nil
	}
	defer sr.Close()
	// No pack holds more than maxPackPlain bytes: reading stops there whatever the stream
	// would expand to (checkLocs keeps every offset below it too).
	pr := io.LimitReader(sr, maxPackPlain)
	f.mu.Lock()
	f.packsRead++
	f.mu.Unlock()
	// One buffer per job, from the worker's share of f.bufs; it keeps the last blob read, for
	// a second need at the same offset (identical index chunks).
	buf, err := f.bufs.get(ctx, 0)
	if err != nil {
		return nil, nil, err
	}
	defer func() { f.bufs.put(buf) }()
	var (
		pos  int64
		data []byte
		last = int64(-1)
	)
	for i, it := range j.items {
		if it.off != last || int64(len(data)) != it.n.size {
			if it.off < pos {
				return all(i), fmt.Errorf("pack %s: blobs overlap at offset %d (damaged index)", j.pack, it.off), nil
			}
			if _, err := io.CopyN(io.Discard, pr, it.off-pos); err != nil {
				return all(i), fmt.Errorf("read %s on target %s: %w", key, s.name, err), nil
			}
			if it.n.size <= 0 || it.n.size > maxBlobSize {
				// checkEntry refuses such sizes; this keeps the allocation below bounded
				// whatever path a need took.
				return nil, nil, fmt.Errorf("%s: blob of %d bytes claimed, more than the format's maximum of %d (damaged or forged index)", it.n.label, it.n.size, maxBlobSize)
			}
			if int64(cap(buf)) < it.n.size {
				buf = make([]byte, it.n.size)
			}
			data, last = buf[:it.n.size], -1
			if _, err := io.ReadFull(pr, data); err != nil {
				if ctx.Err() != nil {
					return nil, nil, ctx.Err()
				}
				return all(i), fmt.Errorf("read %s on target %s: %w", key, s.name, err), nil
			}
			pos, last = it.off+it.n.size, it.off
			f.mu.Lock()
			f.bytesRead += it.n.size
			f.mu.Unlock()
		}
		if it.n.hasSum && sha256.Sum256(data) != it.n.sum {
			return all(i), fmt.Errorf("pack %s on target %s: the blob at offset %d does not match its SHA-256", key, s.name, it.off), nil
		}
		for _, sk := range it.n.sinks {
			if err := sk.c.deliver(ctx, sk.off, data); err != nil {
				return nil, nil, err
			}
		}
	}
	return nil, nil, nil
}

// maxSealedPack bounds what is spooled of one pack before its hash is checked: a pack holds
// at most packSize bytes of plaintext (plus one blob), and sealing adds little.
const maxSealedPack = maxPackPlain + maxPackPlain/8

// spoolChecked copies a sealed pack into an unlinked temporary file while hashing it and
// returns the file only if the hash is the one the index records: nothing of a damaged or
// substituted pack reaches the age or zstd decoder.
func (f *fetcher) spoolChecked(ctx context.Context, rc io.Reader, want [32]byte) (*os.File, error) {
	tmp, err := os.CreateTemp(f.spoolDir, "backupd-pack-*")
	if err != nil {
		return nil, fmt.Errorf("create temporary pack file: %w", err)
	}
	os.Remove(tmp.Name())
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(rc, maxSealedPack+1))
	if err == nil && n > maxSealedPack {
		err = fmt.Errorf("it is larger than %d bytes, more than any pack this format writes", int64(maxSealedPack))
	}
	if err == nil && [32]byte(h.Sum(nil)) != want {
		err = fmt.Errorf("its SHA-256 is %x, the index records %x (damaged or replaced)", h.Sum(nil), want)
	}
	if err == nil {
		_, err = tmp.Seek(0, io.SeekStart)
	}
	if err != nil {
		tmp.Close()
		return nil, err
	}
	return tmp, nil
}
