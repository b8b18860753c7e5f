package files

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
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"sort"
	"syscall"
	"time"
	"unicode/utf8"

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
	// SourceTargetOptions are used to open a bucket source (logging, metrics, retries).
	SourceTargetOptions targets.Options
}

// DefaultPackSize is the plaintext size at which a pack is closed.
const DefaultPackSize = 16 << 20

// Index chunks are small so that one changed entry costs little in the next set.
const (
	indexChunkMin     = 4 << 10
	indexChunkMax     = 64 << 10
	indexChunkAvgBits = 14 // 16 KiB
)

// changeAttempts is how often a file that changes while being read is read again before it
// is skipped with a warning.
const changeAttempts = 3

// markerRefresh is how often a long snapshot rewrites its in-progress markers, so that
// GCOptions.MarkerMaxAge bounds the time since the last sign of life, not the job's length.
const markerRefresh = time.Hour

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
	Warnings    []string         // skipped paths and other things a person should know
	Duration    time.Duration
}

func (r *SnapshotResult) summary() SourceSummary {
	return SourceSummary{
		Name: r.Source, Kind: r.Kind, Index: r.Index, Entries: r.Entries, Files: r.Files,
		Dirs: r.Dirs, Symlinks: r.Symlinks, Skipped: r.Skipped, Bytes: r.Bytes,
		NewBytes: r.NewBytes, Packs: r.Packs,
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
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("policy", opts.Policy, "set", opts.SetID, "storage", spec.Name)

	st := newStore(opts.Policy, dests, opts.Recipients, opts.Level, opts.PackSize, keys, log)
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
	if err := st.verify(ctx); err != nil {
		return res, err
	}
	if err := writeRoot(ctx, sink, res.Index, root); err != nil {
		return res, err
	}

	res.Packs = st.referenced()
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
	return sn.emit(ctx, &Entry{Path: p, Type: TypeSkipped, UID: -1, GID: -1, Reason: reason})
}

// putMarkers writes this snapshot's in-progress marker on every target.
func (sn *snapshotter) putMarkers(ctx context.Context) error {
	host, _ := os.Hostname()
	plain, _ := json.Marshal(map[string]any{
		"format": "backupd-snapshot-marker", "set": sn.opts.SetID, "source": sn.spec.Name,
		"host": host, "written": sn.now().UTC(),
	})
	var buf bytes.Buffer
	sw, err := seal.NewWriter(&buf, []age.Recipient{sn.keys.hdrRcpt}, seal.Fastest)
	if err == nil {
		_, err = sw.Write(plain)
	}
	if err == nil {
		err = sw.Close()
	}
	if err != nil {
		return fmt.Errorf("seal in-progress marker: %w", err)
	}
	key := markerKey(sn.opts.Policy, sn.opts.SetID, sn.spec.Name)
	for _, d := range sn.st.dests {
		if err := d.Target.Put(ctx, key, bytes.NewReader(buf.Bytes()), int64(buf.Len())); err != nil {
			return fmt.Errorf("write in-progress marker %s to target %s: %w", key, d.Name, err)
		}
		sn.res.Uploaded[d.Name] += int64(buf.Len())
	}
	sn.lastMarker = sn.now()
	return nil
}

// dropMarkers removes this snapshot's markers after it failed, so that garbage collection
// need not wait for them to go stale. Best effort, on a context that survives cancellation.
func (sn *snapshotter) dropMarkers(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	key := markerKey(sn.opts.Policy, sn.opts.SetID, sn.spec.Name)
	for _, d := range sn.st.dests {
		if err := d.Target.Delete(ctx, key); err != nil {
			sn.log.Warn("could not delete the in-progress marker of a failed snapshot", "target", d.Name, "key", key, "error", err)
		}
	}
}

// retireMarkers deletes the markers of sets that have committed since: they protect nothing
// any more, and a marker left behind by a set that retention later deletes would hold back
// garbage collection until it goes stale. Best effort; garbage collection does the same.
func (sn *snapshotter) retireMarkers(ctx context.Context) {
	for _, d := range sn.st.dests {
		sets, err := backupset.SetKeys(ctx, d.Target, sn.opts.Policy)
		if err != nil {
			continue // load reports the target's trouble
		}
		committed := map[string]bool{}
		for _, s := range sets {
			committed[s.ID] = s.Committed
		}
		var stale []string
		err = d.Target.List(ctx, pendingPrefix(sn.opts.Policy), func(oi targets.ObjectInfo) error {
			if set, _, ok := parseMarkerKey(sn.opts.Policy, oi.Key); ok && committed[set] {
				stale = append(stale, oi.Key)
			}
			return nil
		})
		if err != nil {
			continue
		}
		for _, key := range stale {
			if err := d.Target.Delete(ctx, key); err != nil {
				sn.log.Warn("could not retire an in-progress marker", "target", d.Name, "key", key, "error", err)
			}
		}
	}
}

// storeStream chunks r, stores the chunks and returns their references, the SHA-256 of all
// of r and its length. size is what the source said r holds: below the chunker's minimum
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

// --- directory sources ---

// testHookAfterRead, when set by a test, runs after a file's contents were read and before
// its status is compared with the one before reading.
var testHookAfterRead func(rel string)

var errVanished = errors.New("vanished while the snapshot ran")

func (sn *snapshotter) walkDir(ctx context.Context) error {
	rootPath, err := filepath.EvalSymlinks(sn.spec.Path)
	if err != nil {
		return fmt.Errorf("storage source %s: %w", sn.spec.Name, err)
	}
	fi, err := os.Stat(rootPath)
	if err != nil {
		return fmt.Errorf("storage source %s: %w", sn.spec.Name, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("storage source %s: %s is not a directory", sn.spec.Name, sn.spec.Path)
	}
	// os.Root refuses any name that resolves outside the tree, so even a symlink swapped in
	// while we walk cannot lead the snapshot out of it.
	root, err := os.OpenRoot(rootPath)
	if err != nil {
		return fmt.Errorf("storage source %s: %w", sn.spec.Name, err)
	}
	defer root.Close()
	return sn.walkTree(ctx, root, "")
}

func (sn *snapshotter) abs(rel string) string {
	return filepath.Join(sn.spec.Path, filepath.FromSlash(rel))
}

func readDirNames(root *os.Root, rel string) ([]string, error) {
	name := rel
	if name == "" {
		name = "."
	}
	f, err := root.OpenFile(name, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	sort.Strings(names)
	return names, err
}

func (sn *snapshotter) walkTree(ctx context.Context, root *os.Root, rel string) error {
	names, err := readDirNames(root, rel)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) && rel != "" {
			sn.warn(fmt.Sprintf("directory %s %v", rel, errVanished))
			return nil
		}
		return fmt.Errorf("read directory %s: %w (exclude it in the source's exclude: list, or give backupd read access)", sn.abs(rel), err)
	}
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		p := path.Join(rel, name)
		if !utf8.ValidString(name) {
			sn.warn(fmt.Sprintf("skipped %q in %s: the name is not valid UTF-8", name, sn.abs(rel)))
			continue
		}
		fi, err := root.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			sn.warn(fmt.Sprintf("%s %v", p, errVanished))
			continue
		}
		if err != nil {
			return fmt.Errorf("stat %s: %w", sn.abs(p), err)
		}
		mode := fi.Mode()
		if sn.match.excluded(p, mode.IsDir()) {
			continue
		}
		e := &Entry{Path: p, Mode: unixMode(mode), MTime: fi.ModTime().UnixNano(), UID: -1, GID: -1}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			e.UID, e.GID = int(st.Uid), int(st.Gid)
		}
		switch {
		case mode.IsDir():
			e.Type = TypeDir
			if err := sn.emit(ctx, e); err != nil {
				return err
			}
			if err := sn.walkTree(ctx, root, p); err != nil {
				return err
			}
		case mode&fs.ModeSymlink != 0:
			link, err := root.Readlink(p)
			if errors.Is(err, fs.ErrNotExist) {
				sn.warn(fmt.Sprintf("%s %v", p, errVanished))
				continue
			}
			if err != nil {
				return fmt.Errorf("read symlink %s: %w", sn.abs(p), err)
			}
			if !utf8.ValidString(link) || link == "" {
				sn.warn(fmt.Sprintf("skipped symlink %s: its target is not valid UTF-8", p))
				continue
			}
			e.Type, e.Link, e.Mode = TypeSymlink, link, 0
			if err := sn.emit(ctx, e); err != nil {
				return err
			}
		case mode.IsRegular():
			if err := sn.file(ctx, root, p); err != nil {
				return err
			}
		default:
			sn.warn(fmt.Sprintf("skipped %s: a %s is not backed up", p, typeName(mode)))
		}
	}
	return nil
}

func typeName(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeDevice != 0:
		return "device"
	}
	return "special file"
}

func (sn *snapshotter) file(ctx context.Context, root *os.Root, p string) error {
	var reason string
	for attempt := 1; attempt <= changeAttempts; attempt++ {
		e, why, err := sn.readFile(ctx, root, p)
		if errors.Is(err, errVanished) {
			sn.warn(fmt.Sprintf("%s %v", p, errVanished))
			return nil
		}
		if err != nil {
			return err
		}
		if why == "" {
			return sn.emit(ctx, e)
		}
		reason = why
		sn.log.Warn("file changed while being read", "path", p, "attempt", attempt, "reason", why)
	}
	return sn.skip(ctx, p, fmt.Sprintf("changed while being read (%d attempts; last: %s)", changeAttempts, reason))
}

// readFile stores one regular file. why is non-empty when the file changed while it was read.
func (sn *snapshotter) readFile(ctx context.Context, root *os.Root, p string) (e *Entry, why string, err error) {
	f, err := root.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "", errVanished
	}
	if err != nil {
		return nil, "", fmt.Errorf("open %s: %w (exclude it in the source's exclude: list, or give backupd read access)", sn.abs(p), err)
	}
	defer f.Close()
	before, err := f.Stat()
	if err != nil {
		return nil, "", fmt.Errorf("stat %s: %w", sn.abs(p), err)
	}
	if !before.Mode().IsRegular() {
		return nil, "it is no longer a regular file", nil
	}
	chunks, sum, n, err := sn.storeStream(ctx, f, before.Size())
	if err != nil {
		if ctx.Err() != nil || sn.st.failed() != nil {
			return nil, "", err
		}
		return nil, "", fmt.Errorf("read %s: %w", sn.abs(p), err)
	}
	if testHookAfterRead != nil {
		testHookAfterRead(p)
	}
	after, err := f.Stat()
	if err != nil {
		return nil, "", fmt.Errorf("stat %s: %w", sn.abs(p), err)
	}
	if why := changed(before, after, n); why != "" {
		return nil, why, nil
	}
	e = &Entry{
		Path: p, Type: TypeFile, Mode: unixMode(before.Mode()), MTime: before.ModTime().UnixNano(),
		UID: -1, GID: -1, Size: n, SHA256: hex.EncodeToString(sum[:]), Chunks: chunks,
	}
	if st, ok := before.Sys().(*syscall.Stat_t); ok {
		e.UID, e.GID = int(st.Uid), int(st.Gid)
	}
	return e, "", nil
}

func changed(before, after fs.FileInfo, read int64) string {
	switch {
	case after.Size() != before.Size():
		return fmt.Sprintf("size went from %d to %d bytes", before.Size(), after.Size())
	case read != before.Size():
		return fmt.Sprintf("read %d bytes of %d", read, before.Size())
	case !after.ModTime().Equal(before.ModTime()):
		return "modification time changed"
	}
	b, ok1 := before.Sys().(*syscall.Stat_t)
	a, ok2 := after.Sys().(*syscall.Stat_t)
	if ok1 && ok2 && (a.Ctim != b.Ctim) {
		return "status change time changed"
	}
	return ""
}

// --- bucket sources ---

// Small objects are fetched ahead, bucketPrefetch at a time, in batches of at most
// bucketBatchBytes, because a bucket source is latency-bound: one GET after another would
// take hours for a million uploads. They are stored in listing order all the same.
const (
	bucketPrefetch   = 8
	bucketBatchLen   = 64
	bucketBatchBytes = 16 << 20
)

type prefetched struct {
	done bool
	data []byte
	err  error
}

func (sn *snapshotter) walkBucket(ctx context.Context) error {
	s3 := sn.spec.S3
	src, err := targets.Open("storage "+sn.spec.Name, targets.Spec{
		Type: "s3", Endpoint: s3.Endpoint, Region: s3.Region, Bucket: s3.Bucket, Prefix: s3.Prefix,
		AccessKey: s3.AccessKey, SecretKey: s3.SecretKey, BucketLookup: s3.BucketLookup, CAFile: s3.CAFile,
	}, sn.opts.SourceTargetOptions)
	if err != nil {
		return fmt.Errorf("storage source %s: %w", sn.spec.Name, err)
	}
	var (
		batch      []targets.ObjectInfo
		batchBytes int64
	)
	flush := func() error {
		pre := make([]prefetched, len(batch))
		parallel(ctx, bucketPrefetch, len(batch), func(i int) {
			if oi := batch[i]; oi.Size < chunker.MinSize {
				pre[i].data, pre[i].err = readSmall(ctx, src, oi)
				pre[i].done = true
			}
		})
		for i, oi := range batch {
			if err := sn.object(ctx, src, oi, pre[i]); err != nil {
				return err
			}
			pre[i].data = nil
		}
		batch, batchBytes = batch[:0], 0
		return ctx.Err()
	}
	err = src.List(ctx, "", func(oi targets.ObjectInfo) error {
		if err := checkRelPath(oi.Key); err != nil {
			sn.warn(fmt.Sprintf("skipped object %q: the key cannot be a path (%v)", oi.Key, err))
			return nil
		}
		if sn.match.excluded(oi.Key, false) {
			return nil
		}
		batch = append(batch, oi)
		if oi.Size < chunker.MinSize {
			batchBytes += oi.Size
		}
		if len(batch) >= bucketBatchLen || batchBytes >= bucketBatchBytes {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil && ctx.Err() == nil && sn.st.failed() == nil {
		return fmt.Errorf("storage source %s (bucket %s): %w", sn.spec.Name, s3.Bucket, err)
	}
	return err
}

// readSmall reads a small object whole; one byte more than listed shows it was replaced.
func readSmall(ctx context.Context, src targets.Target, oi targets.ObjectInfo) ([]byte, error) {
	rc, err := src.Get(ctx, oi.Key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(io.LimitReader(rc, oi.Size+1))
}

func (sn *snapshotter) object(ctx context.Context, src targets.Target, oi targets.ObjectInfo, pre prefetched) error {
	var reason string
	for attempt := 1; attempt <= changeAttempts; attempt++ {
		var (
			r   io.Reader
			rc  io.ReadCloser
			err error
		)
		if attempt == 1 && pre.done {
			r, err = bytes.NewReader(pre.data), pre.err
		} else {
			rc, err = src.Get(ctx, oi.Key)
			r = rc
		}
		if errors.Is(err, targets.ErrNotFound) {
			sn.warn(fmt.Sprintf("%s %v", oi.Key, errVanished))
			return nil
		}
		if err != nil {
			return fmt.Errorf("read object %s of storage source %s: %w", oi.Key, sn.spec.Name, err)
		}
		chunks, sum, n, err := sn.storeStream(ctx, r, oi.Size)
		if rc != nil {
			rc.Close()
		}
		if err != nil {
			return fmt.Errorf("read object %s of storage source %s: %w", oi.Key, sn.spec.Name, err)
		}
		if n == oi.Size {
			return sn.emit(ctx, &Entry{
				Path: oi.Key, Type: TypeFile, Mode: 0o644, MTime: oi.ModTime.UnixNano(), UID: -1, GID: -1,
				Size: n, SHA256: hex.EncodeToString(sum[:]), Chunks: chunks,
			})
		}
		// Replaced between the listing and the read: describe the object as it is now.
		reason = fmt.Sprintf("listed with %d bytes, read %d", oi.Size, n)
		info, err := src.Stat(ctx, oi.Key)
		if errors.Is(err, targets.ErrNotFound) {
			sn.warn(fmt.Sprintf("%s %v", oi.Key, errVanished))
			return nil
		}
		if err != nil {
			return fmt.Errorf("stat object %s of storage source %s: %w", oi.Key, sn.spec.Name, err)
		}
		oi = info
	}
	return sn.skip(ctx, oi.Key, "changed while being read: "+reason)
}
