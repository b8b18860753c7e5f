package storage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"filippo.io/age"

	"github.com/backupd/backupd/internal/backupset"
	"github.com/backupd/backupd/internal/seal"
	"github.com/backupd/backupd/internal/targets"
)

// Pack kinds: index chunks go to packs of their own so that reading an index never downloads
// file contents.
const (
	kindData  = "data"
	kindIndex = "index"
)

// store is the snapshot side of the blob area: it decides, blob by blob, whether a copy is
// already on every target, packs the new ones, seals the packs and uploads them to the targets
// that lack them.
//
// Concurrency: put and flush run on the snapshot's goroutine (the producer), which owns the
// dedup tables; one sealer goroutine compresses and encrypts packs; uploaders put finished
// packs on the targets. Memory is bounded by the open packs, the one queued and the ones being
// uploaded, each at most about packSize.
type store struct {
	policy     string
	dests      []backupset.Dest
	recipients []age.Recipient
	level      seal.Level
	packSize   int64
	keys       *keyring
	log        *slog.Logger
	now        func() time.Time
	trust      backupset.Trust
	all        uint64 // bit i: dests[i]

	packs   []knownPack // every pack this snapshot may reference
	packIdx map[string]uint32
	blobs   map[blobID]*blobRec
	open    map[openKey]*openPack

	ops       chan sealOp
	uploads   chan *openPack
	wg        sync.WaitGroup
	packBufs  chan *bytes.Buffer // free list; dropped with the store, so nothing outlives a snapshot
	chunkBufs bufList            // chunk copies on their way to the sealer

	mu     sync.Mutex
	err    error
	sums   map[string]string // pack ID → hex SHA-256 of its sealed bytes, where known (under mu)
	cancel context.CancelFunc

	newBlobs, newBytes, reusedBytes int64 // producer only
	newPacks                        int
	uploaded                        []atomic.Int64 // sealed bytes put, per target
}

type knownPack struct {
	id   string
	mask uint64 // the targets that hold the pack (or will, once this run uploads it)
}

type blobLoc struct {
	pack uint32
	off  int64
}

type blobRec struct {
	locs []blobLoc
	used bool // referenced by this snapshot
}

type openKey struct {
	mask uint64
	kind string
}

type openPack struct {
	id   string
	idx  uint32
	kind string
	mask uint64
	off  int64
	hdr  []headerRec

	// owned by the sealer, then by the uploader
	buf       *bytes.Buffer
	sw        *seal.Writer
	sealedHdr []byte
}

type sealOp struct {
	p      *openPack
	data   []byte // from chunkBufs; nil when only finishing
	finish bool
}

const uploaders = 2

func newStore(policy string, dests []backupset.Dest, recipients []age.Recipient, level seal.Level, packSize int64, keys *keyring, log *slog.Logger) *store {
	return &store{
		policy: policy, dests: dests, recipients: recipients, level: level, packSize: packSize, keys: keys, log: log,
		all:      uint64(1)<<len(dests) - 1,
		packIdx:  map[string]uint32{},
		sums:     map[string]string{},
		blobs:    map[blobID]*blobRec{},
		open:     map[openKey]*openPack{},
		uploaded: make([]atomic.Int64, len(dests)),
	}
}

func (s *store) start(ctx context.Context) context.Context {
	ctx, s.cancel = context.WithCancel(ctx)
	s.ops = make(chan sealOp, 1)
	s.chunkBufs = newBufList(3) // one being filled, one queued, one being sealed
	s.packBufs = make(chan *bytes.Buffer, uploaders+1)
	s.uploads = make(chan *openPack) // a finished pack waits in the sealer, not in a queue
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.sealer(ctx)
	}()
	for range uploaders {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.uploader(ctx)
		}()
	}
	return ctx
}

func (s *store) fail(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.mu.Unlock()
	if s.cancel != nil {
		s.cancel()
	}
}

func (s *store) failed() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// put stores one blob, or finds it already stored, and returns every usable copy.
func (s *store) put(ctx context.Context, kind string, sum [32]byte, data []byte) ([]Loc, error) {
	if err := s.failed(); err != nil {
		return nil, err
	}
	id := s.keys.blobID(sum)
	rec := s.blobs[id]
	if rec == nil {
		rec = &blobRec{}
		s.blobs[id] = rec
	}
	rec.used = true
	var present uint64
	for _, l := range rec.locs {
		present |= s.packs[l.pack].mask
	}
	n := int64(len(data))
	if missing := s.all &^ present; missing != 0 {
		p := s.openPackFor(kind, missing)
		if p.off > 0 && (p.off+n > s.packSize || len(p.hdr) >= maxPackBlobs) {
			// Close it first: a pack never outgrows packSize (unless one blob does), so its
			// buffer never has to grow.
			if err := s.closePack(ctx, p); err != nil {
				return nil, err
			}
			p = s.openPackFor(kind, missing)
		}
		rec.locs = append(rec.locs, blobLoc{pack: p.idx, off: p.off})
		p.hdr = append(p.hdr, headerRec{ID: hex.EncodeToString(id[:]), Offset: p.off, Length: n})
		p.off += n
		buf, err := s.chunkBufs.get(ctx, len(data))
		if err != nil {
			if ferr := s.failed(); ferr != nil {
				return nil, ferr
			}
			return nil, err
		}
		copy(buf, data)
		if err := s.send(ctx, sealOp{p: p, data: buf}); err != nil {
			return nil, err
		}
		s.newBlobs++
		s.newBytes += n
	} else {
		s.reusedBytes += n
	}
	return s.locsOf(rec), nil
}

func (s *store) locsOf(rec *blobRec) []Loc {
	out := make([]Loc, 0, len(rec.locs))
	for _, l := range rec.locs {
		if s.packs[l.pack].mask != 0 {
			out = append(out, Loc{Pack: s.packs[l.pack].id, Offset: l.off})
		}
	}
	return out
}

func (s *store) openPackFor(kind string, mask uint64) *openPack {
	k := openKey{mask: mask, kind: kind}
	if p := s.open[k]; p != nil {
		return p
	}
	id := newPackID()
	idx := s.addPack(id, mask)
	p := &openPack{id: id, idx: idx, kind: kind, mask: mask}
	s.open[k] = p
	s.newPacks++
	return p
}

func (s *store) addPack(id string, mask uint64) uint32 {
	if i, ok := s.packIdx[id]; ok {
		s.packs[i].mask |= mask
		return i
	}
	i := uint32(len(s.packs))
	s.packs = append(s.packs, knownPack{id: id, mask: mask})
	s.packIdx[id] = i
	return i
}

func (s *store) send(ctx context.Context, op sealOp) error {
	select {
	case s.ops <- op:
		return nil
	case <-ctx.Done():
		if op.data != nil {
			s.chunkBufs.put(op.data)
		}
		if err := s.failed(); err != nil {
			return err
		}
		return ctx.Err()
	}
}

func (s *store) closePack(ctx context.Context, p *openPack) error {
	delete(s.open, openKey{mask: p.mask, kind: p.kind})
	return s.send(ctx, sealOp{p: p, finish: true})
}

// flush closes every open pack.
func (s *store) flush(ctx context.Context) error {
	open := make([]*openPack, 0, len(s.open))
	for _, p := range s.open {
		open = append(open, p)
	}
	sort.Slice(open, func(i, j int) bool { return open[i].id < open[j].id })
	for _, p := range open {
		if err := s.closePack(ctx, p); err != nil {
			return err
		}
	}
	return nil
}

// wait stops the pipeline after every queued pack is uploaded and returns its first error.
func (s *store) wait() error {
	close(s.ops)
	s.wg.Wait()
	return s.failed()
}

func (s *store) sealer(ctx context.Context) {
	defer close(s.uploads)
	for op := range s.ops {
		p := op.p
		if s.failed() != nil {
			if op.data != nil {
				s.chunkBufs.put(op.data)
			}
			continue
		}
		if op.data != nil {
			if p.sw == nil {
				p.buf = s.getPackBuf()
				sw, err := seal.NewWriter(p.buf, s.recipients, s.level)
				if err != nil {
					s.fail(fmt.Errorf("seal pack %s: %w", p.id, err))
					s.chunkBufs.put(op.data)
					continue
				}
				p.sw = sw
			}
			_, err := p.sw.Write(op.data)
			s.chunkBufs.put(op.data)
			if err != nil {
				s.fail(fmt.Errorf("seal pack %s: %w", p.id, err))
				continue
			}
		}
		if !op.finish {
			continue
		}
		if err := p.sw.Close(); err != nil {
			s.fail(fmt.Errorf("seal pack %s: %w", p.id, err))
			continue
		}
		hdr, err := s.sealHeader(p)
		if err != nil {
			s.fail(err)
			continue
		}
		p.sealedHdr = hdr
		select {
		case s.uploads <- p:
		case <-ctx.Done():
			s.fail(ctx.Err())
		}
	}
}

func (s *store) sealHeader(p *openPack) ([]byte, error) {
	plain, err := json.Marshal(packHeader{Format: headerFormat, Version: 1, Pack: p.id, Kind: p.kind, Size: p.off, Blobs: p.hdr})
	if err != nil {
		return nil, fmt.Errorf("encode header of pack %s: %w", p.id, err)
	}
	var out bytes.Buffer
	sw, err := seal.NewWriter(&out, []age.Recipient{s.keys.hdrRcpt}, seal.Fastest)
	if err == nil {
		_, err = sw.Write(plain)
	}
	if err == nil {
		err = sw.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("seal header of pack %s: %w", p.id, err)
	}
	return out.Bytes(), nil
}

func (s *store) uploader(ctx context.Context) {
	for p := range s.uploads {
		if s.failed() == nil {
			s.uploadPack(ctx, p)
		}
		s.putPackBuf(p.buf)
		p.buf, p.sw, p.sealedHdr = nil, nil, nil
	}
}

// uploadPack puts the pack, then its header, on every target in its mask, concurrently: the
// header second, so a header never announces blobs that are not there.
func (s *store) uploadPack(ctx context.Context, p *openPack) {
	// Every target gets these same sealed bytes, so one hash describes the pack everywhere.
	sum := sha256.Sum256(p.buf.Bytes())
	s.mu.Lock()
	s.sums[p.id] = hex.EncodeToString(sum[:])
	s.mu.Unlock()
	var wg sync.WaitGroup
	for i, d := range s.dests {
		if p.mask&(1<<i) == 0 {
			continue
		}
		wg.Go(func() {
			key := packKey(s.policy, p.id)
			body := p.buf.Bytes()
			if err := d.Target.Put(ctx, key, bytes.NewReader(body), int64(len(body))); err != nil {
				s.fail(fmt.Errorf("upload pack %s to target %s: %w", key, d.Name, err))
				return
			}
			hk := headerKey(s.policy, p.id)
			if err := d.Target.Put(ctx, hk, bytes.NewReader(p.sealedHdr), int64(len(p.sealedHdr))); err != nil {
				s.fail(fmt.Errorf("upload pack header %s to target %s: %w", hk, d.Name, err))
				return
			}
			s.uploaded[i].Add(int64(len(body) + len(p.sealedHdr)))
		})
	}
	wg.Wait()
}

// load learns what is already stored: on each target, the packs referenced by the newest
// committed set that has storage snapshots, and still listed there, with their headers. Only
// packs that a committed set references are reused, never merely present ones: that is what
// makes garbage collection safe against a running snapshot (see gc.go).
func (s *store) load(ctx context.Context) (warnings []string, err error) {
	live := make([]map[string]bool, len(s.dests))
	for i, d := range s.dests {
		base, w, err := newestDescription(ctx, d.Target, s.policy, s.now(), s.trust)
		warnings = append(warnings, w...)
		if err != nil {
			return warnings, fmt.Errorf("target %s: %w", d.Name, err)
		}
		if base == nil {
			continue
		}
		listed, err := listPacks(ctx, d.Target, s.policy)
		if err != nil {
			return warnings, fmt.Errorf("target %s: %w", d.Name, err)
		}
		live[i] = map[string]bool{}
		for _, src := range base.Sources {
			for id, sum := range src.PackSums {
				if _, err := parseSum(sum); err == nil && validPackID(id) {
					s.sums[id] = sum
				}
			}
			for _, id := range src.Packs {
				if listed[id].pack {
					live[i][id] = true
				}
			}
		}
	}
	masks := map[string]uint64{}
	for i, m := range live {
		for id := range m {
			masks[id] |= 1 << i
		}
	}
	ids := make([]string, 0, len(masks))
	for id := range masks {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	headers := make([]*packHeader, len(ids))
	errs := make([]error, len(ids))
	parallel(ctx, 8, len(ids), func(j int) {
		headers[j], errs[j] = s.readHeader(ctx, ids[j], masks[ids[j]])
	})
	for j, id := range ids {
		if errs[j] != nil {
			warnings = append(warnings, fmt.Sprintf("pack %s: header unreadable, its blobs will be stored again: %v", id, errs[j]))
			continue
		}
		idx := s.addPack(id, masks[id])
		for _, b := range headers[j].Blobs {
			var bid blobID
			if _, err := hex.Decode(bid[:], []byte(b.ID)); err != nil || len(b.ID) != 64 {
				continue
			}
			rec := s.blobs[bid]
			if rec == nil {
				rec = &blobRec{}
				s.blobs[bid] = rec
			}
			rec.locs = append(rec.locs, blobLoc{pack: idx, off: b.Offset})
		}
	}
	return warnings, ctx.Err()
}

func (s *store) readHeader(ctx context.Context, id string, mask uint64) (*packHeader, error) {
	var errs []error
	for i, d := range s.dests {
		if mask&(1<<i) == 0 {
			continue
		}
		h, err := readHeaderFrom(ctx, d.Target, s.policy, id, s.keys.hdrID)
		if err == nil {
			return h, nil
		}
		errs = append(errs, fmt.Errorf("target %s: %w", d.Name, err))
	}
	return nil, errors.Join(errs...)
}

func readHeaderFrom(ctx context.Context, t backupset.Target, policy, id string, ident age.Identity) (*packHeader, error) {
	key := headerKey(policy, id)
	rc, err := t.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	defer rc.Close()
	pr, err := seal.Open(rc, []age.Identity{ident})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", key, err)
	}
	defer pr.Close()
	var h packHeader
	// A header lists at most maxPackBlobs blobs of about 110 bytes each.
	body, err := io.ReadAll(io.LimitReader(pr, maxHeaderBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	if len(body) > maxHeaderBytes {
		return nil, fmt.Errorf("%s is larger than %d bytes, more than any pack header this format writes", key, maxHeaderBytes)
	}
	if err := json.Unmarshal(body, &h); err != nil {
		return nil, fmt.Errorf("parse %s: %w", key, err)
	}
	if h.Format != headerFormat || h.Pack != id {
		return nil, fmt.Errorf("%s is not the header of pack %s", key, id)
	}
	return &h, nil
}

// verify checks, after every upload, that each blob this snapshot references has a copy on
// every target: it catches a pack that vanished while the snapshot ran (a lifecycle rule, a
// person, a garbage collection that ignored the protocol) before the set is committed.
func (s *store) verify(ctx context.Context) (map[string][]string, error) {
	needed := map[string][]string{}
	for i, d := range s.dests {
		listed, err := listPacks(ctx, d.Target, s.policy)
		if err != nil {
			return nil, fmt.Errorf("target %s: %w", d.Name, err)
		}
		here := map[string]bool{}
		for _, rec := range s.blobs {
			if !rec.used {
				continue
			}
			ok := false
			var want string
			for _, l := range rec.locs {
				kp := s.packs[l.pack]
				if kp.mask&(1<<i) != 0 {
					want = kp.id
					if listed[kp.id].pack {
						ok = true
						here[kp.id] = true
						break
					}
				}
			}
			if !ok {
				return nil, fmt.Errorf("pack %s, which this snapshot uses, is missing on target %s (deleted while the snapshot ran?); run the backup again", packKey(s.policy, want), d.Name)
			}
		}
		for id := range here {
			needed[d.Name] = append(needed[d.Name], id)
		}
		slices.Sort(needed[d.Name])
	}
	return needed, nil
}

// referenced returns the packs that hold a copy of a blob this snapshot uses, sorted.
func (s *store) referenced() []string {
	seen := map[uint32]bool{}
	for _, rec := range s.blobs {
		if !rec.used {
			continue
		}
		for _, l := range rec.locs {
			if s.packs[l.pack].mask != 0 {
				seen[l.pack] = true
			}
		}
	}
	out := make([]string, 0, len(seen))
	for i := range seen {
		out = append(out, s.packs[i].id)
	}
	slices.Sort(out)
	return out
}

type listedPack struct {
	pack, header bool
	size         int64
	info         targets.ObjectInfo
}

// listPacks lists the blob area's packs and headers on one target.
func listPacks(ctx context.Context, t backupset.Target, policy string) (map[string]listedPack, error) {
	out := map[string]listedPack{}
	err := t.List(ctx, packsPrefix(policy), func(oi targets.ObjectInfo) error {
		id, hdr, ok := parsePackKey(policy, oi.Key)
		if !ok {
			return nil
		}
		lp := out[id]
		if hdr {
			lp.header = true
		} else {
			lp.pack, lp.size, lp.info = true, oi.Size, oi
		}
		out[id] = lp
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", packsPrefix(policy), err)
	}
	return out, nil
}

// newestDescription returns the files section of the newest committed set that has one.
// Unreadable manifests are skipped with a warning: dedup is an optimisation.
func newestDescription(ctx context.Context, t backupset.Target, policy string, now time.Time, trust backupset.Trust) (*Description, []string, error) {
	sets, err := backupset.SetKeys(ctx, t, policy)
	if err != nil {
		return nil, nil, err
	}
	var warnings []string
	for i := len(sets) - 1; i >= 0; i-- {
		if !sets[i].Committed {
			continue
		}
		m, err := backupset.ReadManifest(ctx, t, policy, sets[i].ID, now, trust)
		if err != nil {
			warnings = append(warnings, fmt.Sprintf("set %s: %v", sets[i].ID, err))
			continue
		}
		d, err := ParseDescription(m.Files)
		if err != nil {
			warnings = append(warnings, fmt.Sprintf("set %s: %v", sets[i].ID, err))
			continue
		}
		if len(d.Sources) > 0 {
			return d, warnings, nil
		}
	}
	return nil, warnings, nil
}

// parallel runs fn(0..n-1) on at most k goroutines and waits for them.
func parallel(ctx context.Context, k, n int, fn func(i int)) {
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for range min(k, n) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				fn(i)
			}
		})
	}
	wg.Wait()
}

// bufList is a fixed set of reusable byte buffers. Chunk copies travel from the producer to
// the sealer in them, and restore workers read blobs into them: a fixed set, rather than a
// sync.Pool, because a pool is emptied by every garbage collection and would then allocate
// again at the worst moment, and because the set bounds the memory in flight.
type bufList chan []byte

func newBufList(n int) bufList {
	l := make(bufList, n)
	for range n {
		l <- nil
	}
	return l
}

// get waits for a free buffer and returns it with length n, grown if needed.
func (l bufList) get(ctx context.Context, n int) ([]byte, error) {
	select {
	case b := <-l:
		if cap(b) < n {
			b = make([]byte, n, (n+256<<10-1)&^(256<<10-1)) // 256 KiB steps: few regrowths, little slack
		}
		return b[:n], nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (l bufList) put(b []byte) { l <- b }

// Pack buffers are sized for a full pack of incompressible data plus the zstd and age framing
// (a few bytes per 128 KiB block and 16 per 64 KiB chunk), so they never grow.
func (s *store) getPackBuf() *bytes.Buffer {
	select {
	case b := <-s.packBufs:
		return b
	default:
	}
	b := &bytes.Buffer{}
	b.Grow(int(s.packSize + s.packSize/64 + 64<<10))
	return b
}

func (s *store) putPackBuf(b *bytes.Buffer) {
	if b == nil {
		return
	}
	b.Reset()
	select {
	case s.packBufs <- b:
	default:
	}
}

// packSums returns the known sealed SHA-256 of each of ids.
func (s *store) packSums(ids []string) map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]string{}
	for _, id := range ids {
		if sum, ok := s.sums[id]; ok {
			out[id] = sum
		}
	}
	return out
}

// A pack holds at most maxPackBlobs blobs, which keeps its header (about 110 bytes a blob)
// under maxHeaderBytes whatever the file sizes.
const (
	maxPackBlobs   = 100_000
	maxHeaderBytes = 16 << 20
)
