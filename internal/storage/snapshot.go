package storage

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"filippo.io/age"
	"github.com/restic/chunker"

	"github.com/backupd/backupd/internal/backupset"
	"github.com/backupd/backupd/internal/seal"
	"github.com/backupd/backupd/internal/targets"
)

// SetSink receives the sealed objects of the set being written; *backupset.Writer is one.
type SetSink interface {
	Create(ctx context.Context, name string) (io.WriteCloser, error)
}

// SnapshotOptions configure one snapshot. Policy, SetID, Recipients and NameKey are required.
type SnapshotOptions struct {
	Policy     string
	SetID      string
	Recipients []age.Recipient // the backup's public keys: packs and the index are sealed to them
	// NameKey is the secret that turns content hashes into blob IDs and derives the chunker
	// polynomial and the header key. Keep it stable for dedup; losing it costs dedup only.
	NameKey  []byte
	Level    seal.Level // zstd level of packs; default fastest (media does not compress)
	PackSize int64      // plaintext bytes per pack before it is closed; default 16 MiB
	SpoolDir string     // for the temporary index stream; default os.TempDir()
	Logger   *slog.Logger
	Now      func() time.Time
	// Trust decides which sets count as committed when the packs of the newest one are reused
	// and in-progress markers retired (backupset.Committed); nil trusts nothing, so nothing
	// is reused.
	Trust backupset.Trust
	// SourceTargetOptions are used to open a bucket source (logging, metrics, retries).
	SourceTargetOptions targets.Options
	// Markers, when set, keeps this snapshot's in-progress marker fresh after Snapshot
	// returns, until the job commits its set or fails (see KeepMarkers).
	Markers *MarkerKeeper
}

// DefaultPackSize is the plaintext size at which a pack is closed.
const DefaultPackSize = 16 << 20

// maxPackSize bounds SnapshotOptions.PackSize, so that a restore can refuse any blob offset
// beyond maxPackPlain without knowing what pack size the writer chose.
const maxPackSize = 64 << 20

// maxPackPlain is the most plaintext a pack can hold: it is closed before a blob would take it
// past its size, unless that blob is its first.
const maxPackPlain = maxPackSize + maxBlobSize

// Index chunks are small so that one changed entry costs little in the next set.
const (
	indexChunkMin     = 4 << 10
	indexChunkMax     = 64 << 10
	indexChunkAvgBits = 14 // 16 KiB
)

// changeAttempts is how often a file that changes while being read is read again before it
// is skipped with a warning.
const changeAttempts = 3

// SnapshotResult describes a finished snapshot. Pass it to Describe for the manifest.
type SnapshotResult struct {
	Source      string
	Kind        string // dir or s3
	Index       string // set object name of the index root
	Entries     int64
	Files       int64
	Dirs        int64
	Symlinks    int64
	Skipped     int64 // files that kept changing while read; listed in Warnings and the index
	Bytes       int64 // sum of the sizes of the files stored
	NewBlobs    int64
	NewBytes    int64            // plaintext bytes stored anew (file contents and index)
	ReusedBytes int64            // plaintext bytes found already stored
	NewPacks    int              // packs written
	Uploaded    map[string]int64 // sealed bytes put in the blob area, per target
	Packs       []string         // every pack the snapshot references
	packSums    map[string]string
	needed      map[string][]string // target name → the packs its copies of the blobs are in
	policy      string
	Warnings    []string // skipped paths and other things a person should know
	Duration    time.Duration
}

func (r *SnapshotResult) summary() SourceSummary {
	return SourceSummary{
		Name: r.Source, Kind: r.Kind, Index: r.Index, Entries: r.Entries, Files: r.Files,
		Dirs: r.Dirs, Symlinks: r.Symlinks, Skipped: r.Skipped, Bytes: r.Bytes,
		NewBytes: r.NewBytes, Packs: r.Packs, PackSums: r.packSums,
	}
}

// Snapshot stores one storage source: file contents go to the policy's shared blob area on
// every target (only what is not there yet), and the index root goes into the set through
// sink, so it is committed with the set's manifest. Put the result in the manifest with
// Describe before committing.
//
// A file that keeps changing while it is read (changeAttempts times) is skipped, not stored
// half-written: the snapshot succeeds, the file is listed in Warnings and recorded as skipped
// in the index. An unreadable file or directory fails the snapshot unless excluded. Any upload
// failure fails it on every target: a set must never reference a pack one target lacks.
func Snapshot(ctx context.Context, spec SourceSpec, sink SetSink, dests []backupset.Dest, opts SnapshotOptions) (*SnapshotResult, error) {
	return snapshot(ctx, spec, sink, dests, opts, nil)
}

// walkFunc emits the entries of a source; tests use it to store crafted indexes.
type walkFunc func(ctx context.Context, sn *snapshotter) error

// testHookAfterLoad, when set by a test, runs after the snapshot learned what the targets hold
// and before it reads the source.
var testHookAfterLoad func()

// testHookRoot, when set by a test, edits the index root before it is written (hostile or
// old-format roots).
var testHookRoot func(*indexRoot)

var errNoTargets = errors.New("no targets: a snapshot needs at least one target for its blobs")

func snapshot(ctx context.Context, spec SourceSpec, sink SetSink, dests []backupset.Dest, opts SnapshotOptions, walk walkFunc) (*SnapshotResult, error) {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	start := now()
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	switch {
	case !backupset.ValidPolicyName(opts.Policy):
		return nil, fmt.Errorf("policy name %q cannot be used as a key segment", opts.Policy)
	case !backupset.ValidID(opts.SetID):
		return nil, fmt.Errorf("set ID %q is malformed", opts.SetID)
	case len(opts.Recipients) == 0:
		return nil, errors.New("no age recipients: storage snapshots would not be encrypted")
	case len(dests) == 0:
		return nil, errNoTargets
	case len(dests) > 64:
		return nil, errors.New("a snapshot supports at most 64 targets")
	}
	keys, err := newKeyring(opts.NameKey)
	if err != nil {
		return nil, err
	}
	match, _ := newMatcher(spec.Exclude)
	if opts.PackSize <= 0 {
		opts.PackSize = DefaultPackSize
	}
	if opts.PackSize > maxPackSize {
		return nil, fmt.Errorf("pack size %d is above the format's maximum of %d bytes", opts.PackSize, int64(maxPackSize))
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("policy", opts.Policy, "set", opts.SetID, "storage", spec.Name)

	st := newStore(opts.Policy, dests, opts.Recipients, opts.Level, opts.PackSize, keys, log)
	st.now = now
	st.trust = opts.Trust
	res := &SnapshotResult{Source: spec.Name, Kind: spec.kind(), Index: IndexObjectName(spec.Name), Uploaded: map[string]int64{}}
	sn := &snapshotter{st: st, res: res, log: log, match: match, keys: keys, now: now, spec: spec, opts: opts}

	// The marker goes up before anything of the blob area is read: garbage collection relies
	// on that order (see gc.go).
	ok := false
	defer func() {
		if !ok {
			sn.dropMarkers(ctx)
		}
	}()
	if err := sn.putMarkers(ctx); err != nil {
		return res, err
	}
	if opts.Markers != nil {
		opts.Markers.add(spec.Name)
		defer func() {
			if !ok {
				opts.Markers.remove(spec.Name) // before dropMarkers (deferred earlier, runs later)
			}
		}()
	}
	sn.retireMarkers(ctx)
	warnings, err := st.load(ctx)
	for _, w := range warnings {
		sn.warn("dedup: " + w)
	}
	if err != nil {
		return res, fmt.Errorf("read what the targets already hold: %w", err)
	}
	log.Info("storage snapshot started", "kind", spec.kind(), "known_blobs", len(st.blobs), "known_packs", len(st.packs))
	if testHookAfterLoad != nil {
		testHookAfterLoad()
	}

	root, err := sn.run(ctx, walk)
	if err != nil {
		return res, err
	}
	if res.needed, err = st.verify(ctx); err != nil {
		return res, err
	}
	res.policy = opts.Policy
	res.Packs = st.referenced()
	root.PackSums = st.packSums(res.Packs)
	res.packSums = root.PackSums
	if testHookRoot != nil {
		testHookRoot(root)
	}
	if err := writeRoot(ctx, sink, res.Index, root); err != nil {
		return res, err
	}

	res.NewBlobs, res.NewBytes, res.ReusedBytes, res.NewPacks = st.newBlobs, st.newBytes, st.reusedBytes, st.newPacks
	for i, d := range dests {
		res.Uploaded[d.Name] += st.uploaded[i].Load()
	}
	res.Duration = now().Sub(start)
	ok = true
	log.Info("storage snapshot stored", "files", res.Files, "bytes", res.Bytes, "new_bytes", res.NewBytes,
		"reused_bytes", res.ReusedBytes, "new_packs", res.NewPacks, "skipped", res.Skipped, "duration", res.Duration)
	return res, nil
}

type snapshotter struct {
	st    *store
	res   *SnapshotResult
	log   *slog.Logger
	match *matcher
	keys  *keyring
	now   func() time.Time
	spec  SourceSpec
	opts  SnapshotOptions

	ch       *chunker.Chunker
	chunkBuf []byte
	small    []byte

	idxFile    *os.File
	idx        *bufio.Writer
	enc        *json.Encoder
	lastMarker time.Time
}

// run walks the source and stores the index stream, then waits for every upload.
func (sn *snapshotter) run(ctx context.Context, walk walkFunc) (*indexRoot, error) {
	f, err := os.CreateTemp(sn.opts.SpoolDir, "backupd-index-*")
	if err != nil {
		return nil, fmt.Errorf("create temporary index file: %w", err)
	}
	os.Remove(f.Name()) // nothing left behind if the process dies
	defer f.Close()
	sn.idxFile = f
	sn.idx = bufio.NewWriterSize(f, 256<<10)
	sn.enc = json.NewEncoder(sn.idx)
	sn.enc.SetEscapeHTML(false)
	sn.chunkBuf = make([]byte, chunker.MaxSize)
	sn.ch = chunker.New(bytes.NewReader(nil), sn.keys.pol)

	sctx := sn.st.start(ctx)
	var root *indexRoot
	switch {
	case walk != nil:
		err = walk(sctx, sn)
	case sn.spec.S3 != nil:
		err = sn.walkBucket(sctx)
	default:
		err = sn.walkDir(sctx)
	}
	if err == nil {
		root, err = sn.storeIndex(sctx)
	}
	if err == nil {
		err = sn.st.flush(sctx)
	}
	if err != nil {
		sn.st.fail(err)
	}
	if werr := sn.st.wait(); werr != nil {
		err = werr // the first failure, which also cancelled the rest
	}
	if err == nil {
		err = ctx.Err()
	}
	return root, err
}

func (sn *snapshotter) warn(msg string) {
	sn.res.Warnings = append(sn.res.Warnings, msg)
	sn.log.Warn(msg)
}

func (sn *snapshotter) emit(ctx context.Context, e *Entry) error {
	sn.res.Entries++
	switch e.Type {
	case TypeFile:
		sn.res.Files++
		sn.res.Bytes += e.Size
	case TypeDir:
		sn.res.Dirs++
	case TypeSymlink:
		sn.res.Symlinks++
	case TypeSkipped:
		sn.res.Skipped++
	}
	if err := sn.enc.Encode(e); err != nil {
		return fmt.Errorf("write temporary index: %w", err)
	}
	if sn.now().Sub(sn.lastMarker) > markerRefresh {
		return sn.putMarkers(ctx)
	}
	return nil
}

func (sn *snapshotter) skip(ctx context.Context, p, reason string) error {
	sn.warn(fmt.Sprintf("skipped %s: %s", p, reason))
	if len(reason) > 1024 {
		reason = strings.ToValidUTF8(reason[:1024], "") // restores refuse reasons over maxPathBytes
	}
	return sn.emit(ctx, &Entry{Path: p, Type: TypeSkipped, UID: -1, GID: -1, Reason: reason})
}

// the stream is one chunk read in one go, which is most files of a media tree.
func (sn *snapshotter) storeStream(ctx context.Context, r io.Reader, size int64) ([]ChunkRef, [32]byte, int64, error) {
	if size >= 0 && size < chunker.MinSize {
		if sn.small == nil {
			sn.small = make([]byte, chunker.MinSize+1)
		}
		n, err := io.ReadFull(r, sn.small[:size+1])
		if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
			return nil, [32]byte{}, 0, err
		}
		if int64(n) != size {
			return nil, [32]byte{}, int64(n), nil // the caller sees the size change
		}
		data := sn.small[:n]
		sum := sha256.Sum256(data)
		if n == 0 {
			return nil, sum, 0, nil
		}
		locs, err := sn.st.put(ctx, kindData, sum, data)
		if err != nil {
			return nil, sum, 0, err
		}
		return []ChunkRef{{Size: int64(n), At: locs}}, sum, int64(n), nil
	}
	sn.ch.Reset(r, sn.keys.pol)
	fh := sha256.New()
	var (
		chunks []ChunkRef
		total  int64
	)
	for {
		c, err := sn.ch.Next(sn.chunkBuf)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, [32]byte{}, total, err
		}
		sum := sha256.Sum256(c.Data)
		fh.Write(c.Data)
		locs, err := sn.st.put(ctx, kindData, sum, c.Data)
		if err != nil {
			return nil, [32]byte{}, total, err
		}
		chunks = append(chunks, ChunkRef{Size: int64(len(c.Data)), SHA256: hex.EncodeToString(sum[:]), At: locs})
		total += int64(len(c.Data))
	}
	var sum [32]byte
	fh.Sum(sum[:0])
	if len(chunks) == 1 {
		chunks[0].SHA256 = "" // the file's own
	}
	return chunks, sum, total, nil
}

// storeIndex chunks the index stream into index packs and returns the root that finds it.
func (sn *snapshotter) storeIndex(ctx context.Context) (*indexRoot, error) {
	if err := sn.idx.Flush(); err != nil {
		return nil, fmt.Errorf("write temporary index: %w", err)
	}
	if _, err := sn.idxFile.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("read temporary index: %w", err)
	}
	r := sn.res
	root := &indexRoot{
		Format: IndexFormat, Version: IndexVersion, Source: sn.spec.Name, Kind: sn.spec.kind(),
		Origin: sn.spec.origin(), Entries: r.Entries, Files: r.Files, Dirs: r.Dirs,
		Symlinks: r.Symlinks, Skipped: r.Skipped, Bytes: r.Bytes, Chunks: []ChunkRef{},
	}
	sn.ch.ResetWithBoundaries(sn.idxFile, sn.keys.pol, indexChunkMin, indexChunkMax)
	sn.ch.SetAverageBits(indexChunkAvgBits)
	h := sha256.New()
	for {
		c, err := sn.ch.Next(sn.chunkBuf)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read temporary index: %w", err)
		}
		h.Write(c.Data)
		locs, err := sn.st.put(ctx, kindIndex, sha256.Sum256(c.Data), c.Data)
		if err != nil {
			return nil, err
		}
		root.Chunks = append(root.Chunks, ChunkRef{Size: int64(len(c.Data)), At: locs})
		root.Size += int64(len(c.Data))
	}
	root.SHA256 = hex.EncodeToString(h.Sum(nil))
	return root, nil
}

func writeRoot(ctx context.Context, sink SetSink, name string, root *indexRoot) error {
	body, err := json.MarshalIndent(root, "", " ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", name, err)
	}
	w, err := sink.Create(ctx, name)
	if err != nil {
		return fmt.Errorf("create set object %s: %w", name, err)
	}
	if _, err := w.Write(append(body, '\n')); err != nil {
		w.Close()
		return fmt.Errorf("write set object %s: %w", name, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("write set object %s: %w", name, err)
	}
	return nil
}
