package files

import (
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
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"filippo.io/age"
	"golang.org/x/sys/unix"

	"github.com/backupd/backupd/internal/backupset"
	"github.com/backupd/backupd/internal/seal"
	"github.com/backupd/backupd/internal/targets"
)

// ErrNotEmpty means the destination already holds files and Overwrite was not given; nothing
// was written.
var ErrNotEmpty = errors.New("destination is not empty")

// RestoreOptions select what to restore.
type RestoreOptions struct {
	Policy     string
	SetID      string
	Source     string         // the storage source's name
	Identities []age.Identity // private keys that open the set
	// Subpath restores only this file or directory (relative to the source root), at the same
	// place under the destination as in the tree; its parent directories are created too.
	Subpath string
	// Overwrite allows a non-empty destination: restored paths replace what is there (a file,
	// directory or symlink in the way is removed); other paths are left alone.
	Overwrite bool
	SpoolDir  string // temporary files (the index stream; multi-chunk files bound for a bucket)
	Workers   int    // packs read in parallel; default 4
	Logger    *slog.Logger
}

// RestoreResult describes a finished restore.
type RestoreResult struct {
	Source    string
	SetID     string
	Files     int64
	Dirs      int64
	Symlinks  int64
	Bytes     int64    // file bytes written, each verified against its SHA-256
	Skipped   []string // paths the snapshot had skipped (they kept changing)
	Warnings  []string // fallbacks to another target, things a bucket cannot hold
	Fallbacks int      // packs read from a later target because an earlier one failed
	PacksRead int
	Duration  time.Duration
}

// Destination is where a restore writes: ToDir or ToTarget.
type Destination interface {
	String() string
	prepare(ctx context.Context, overwrite bool, spoolDir string) error
	mkdir(e *Entry) error
	file(ctx context.Context, e *Entry) (fileWriter, error)
	symlink(e *Entry) error
	dirMeta(e *Entry) error
	close(ctx context.Context) error
	warnings() []string
}

type fileWriter interface {
	writeAt(ctx context.Context, p []byte, off int64) error
	// finish runs once every chunk is written; verify asks it to check the whole file's
	// SHA-256 (a single-chunk file was already checked as its chunk arrived).
	finish(ctx context.Context, verify bool) error
}

// Restore restores one storage source of a set. It reads from the targets in from, in order,
// and falls back pack by pack to the next target when a pack is missing or damaged. Every file
// is checked against its SHA-256 before it is reported restored; modes, owners (when running
// as root), mtimes, symlinks and empty directories come back on a directory destination.
//
// The index is treated as hostile: an entry that is absolute, has a ".." segment, or lies
// below a symlink or a file of the index refuses the whole restore before anything is
// written, and every filesystem operation goes through os.Root, which cannot leave the
// destination. Symlinks are created last and stored targets are kept verbatim: a link may
// point anywhere, but nothing is ever written through one.
func Restore(ctx context.Context, from []backupset.Dest, to Destination, opts RestoreOptions) (*RestoreResult, error) {
	start := time.Now()
	switch {
	case !backupset.ValidPolicyName(opts.Policy):
		return nil, fmt.Errorf("policy name %q is not valid", opts.Policy)
	case !backupset.ValidID(opts.SetID):
		return nil, fmt.Errorf("set ID %q is malformed", opts.SetID)
	case !sourceNamePattern.MatchString(opts.Source):
		return nil, fmt.Errorf("storage source name %q is not valid", opts.Source)
	case len(opts.Identities) == 0:
		return nil, errors.New("no identity: restoring needs the private key (--identity or encryption.identity_file)")
	case len(from) == 0:
		return nil, errNoTargets
	}
	sub, err := cleanSubpath(opts.Subpath)
	if err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("policy", opts.Policy, "set", opts.SetID, "storage", opts.Source)
	res := &RestoreResult{Source: opts.Source, SetID: opts.SetID}

	srcs, root, err := openIndexRoot(ctx, from, opts, log)
	if err != nil {
		return res, err
	}
	f := &fetcher{policy: opts.Policy, ids: opts.Identities, srcs: srcs, workers: opts.Workers, log: log}
	entries, err := readIndex(ctx, f, root, opts)
	if err != nil {
		return res, err
	}
	entries, err = selectSubpath(entries, sub)
	if err != nil {
		return res, err
	}

	r := &restorer{dst: to, res: res, log: log}
	err = r.run(ctx, f, entries, opts.Overwrite, opts.SpoolDir)
	res.Warnings = append(res.Warnings, f.warnings...)
	res.Warnings = append(res.Warnings, to.warnings()...)
	res.Fallbacks, res.PacksRead = f.fallbacks, f.packsRead
	res.Duration = time.Since(start)
	if err != nil {
		return res, err
	}
	log.Info("storage restore finished", "destination", to.String(), "files", res.Files, "bytes", res.Bytes,
		"fallbacks", res.Fallbacks, "duration", res.Duration)
	return res, nil
}

func cleanSubpath(s string) (string, error) {
	s = strings.Trim(s, "/")
	if s == "" || s == "." {
		return "", nil
	}
	c := path.Clean(s)
	if err := checkRelPath(c); err != nil {
		return "", fmt.Errorf("--path %q: %w", s, err)
	}
	return c, nil
}

// openIndexRoot reads the manifest and the source's index root from the first target that
// has the set committed and an intact copy, and lists the packs on every such target.
func openIndexRoot(ctx context.Context, from []backupset.Dest, opts RestoreOptions, log *slog.Logger) ([]*readSource, *indexRoot, error) {
	var (
		srcs []*readSource
		man  *backupset.Manifest
		errs []error
	)
	for _, d := range from {
		m, err := backupset.ReadManifest(ctx, d.Target, opts.Policy, opts.SetID)
		if err != nil {
			errs = append(errs, fmt.Errorf("target %s: %w", d.Name, err))
			continue
		}
		if man == nil {
			man = m
		}
		srcs = append(srcs, &readSource{name: d.Name, t: d.Target})
	}
	if man == nil {
		return nil, nil, fmt.Errorf("set %s of policy %s is not committed on any target given: %w", opts.SetID, opts.Policy, errors.Join(errs...))
	}
	desc, err := ParseDescription(man.Files)
	if err != nil {
		return nil, nil, err
	}
	sum, ok := desc.Source(opts.Source)
	if !ok {
		var names []string
		for _, s := range desc.Sources {
			names = append(names, s.Name)
		}
		if len(names) == 0 {
			return nil, nil, fmt.Errorf("set %s has no storage snapshot", opts.SetID)
		}
		return nil, nil, fmt.Errorf("set %s has no storage source %q (it has: %s)", opts.SetID, opts.Source, strings.Join(names, ", "))
	}
	obj, ok := man.Object(sum.Index)
	if !ok {
		return nil, nil, fmt.Errorf("manifest of set %s does not list %s", opts.SetID, sum.Index)
	}
	var root *indexRoot
	errs = nil
	for _, s := range srcs {
		root, err = readIndexRoot(ctx, s, opts, obj)
		if err == nil {
			break
		}
		if errors.Is(err, seal.ErrWrongKey) {
			return nil, nil, err
		}
		errs = append(errs, err)
		log.Warn("index root unreadable, trying the next target", "target", s.name, "error", err)
	}
	if root == nil {
		return nil, nil, fmt.Errorf("no target has a readable copy of %s: %w", sum.Index, errors.Join(errs...))
	}
	parallel(ctx, 4, len(srcs), func(i int) {
		packs, err := listPacks(ctx, srcs[i].t, opts.Policy)
		if err != nil {
			log.Warn("cannot list packs; not reading from this target", "target", srcs[i].name, "error", err)
			return
		}
		srcs[i].packs = packs
	})
	return srcs, root, ctx.Err()
}

func readIndexRoot(ctx context.Context, s *readSource, opts RestoreOptions, obj backupset.Object) (*indexRoot, error) {
	key := backupset.ObjectKey(opts.Policy, opts.SetID, obj.Name)
	rc, err := s.t.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("read %s from target %s: %w", key, s.name, err)
	}
	defer rc.Close()
	h := sha256.New()
	pr, err := seal.Open(io.TeeReader(rc, h), opts.Identities)
	if err != nil {
		return nil, fmt.Errorf("open %s on target %s: %w", key, s.name, err)
	}
	defer pr.Close()
	body, err := io.ReadAll(io.LimitReader(pr, 256<<20))
	if err == nil {
		_, err = io.Copy(io.Discard, rc) // the rest of the sealed bytes, for the hash
	}
	if err != nil {
		return nil, fmt.Errorf("read %s on target %s: %w", key, s.name, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != obj.SHA256 {
		return nil, fmt.Errorf("%s on target %s has SHA-256 %s, the manifest says %s", key, s.name, got, obj.SHA256)
	}
	var root indexRoot
	if err := json.Unmarshal(body, &root); err != nil {
		return nil, fmt.Errorf("parse %s: %w", key, err)
	}
	switch {
	case root.Format != IndexFormat:
		return nil, fmt.Errorf("%s is not a storage index (format %q)", key, root.Format)
	case root.Version > IndexVersion:
		return nil, fmt.Errorf("%s has index version %d; this backupd reads up to %d: upgrade backupd", key, root.Version, IndexVersion)
	case root.Source != opts.Source:
		return nil, fmt.Errorf("%s describes source %q, not %q", key, root.Source, opts.Source)
	}
	return &root, nil
}

// spoolConsumer collects the index stream in a temporary file.
type spoolConsumer struct{ f *os.File }

func (c spoolConsumer) deliver(_ context.Context, off int64, data []byte) error {
	_, err := c.f.WriteAt(data, off)
	return err
}

// readIndex fetches the index stream, checks it against the root's SHA-256 and validates
// every entry.
func readIndex(ctx context.Context, f *fetcher, root *indexRoot, opts RestoreOptions) ([]*Entry, error) {
	tmp, err := os.CreateTemp(opts.SpoolDir, "backupd-index-*")
	if err != nil {
		return nil, fmt.Errorf("create temporary index file: %w", err)
	}
	os.Remove(tmp.Name())
	defer tmp.Close()
	byLoc := map[Loc]*need{}
	var needs []*need
	var off int64
	for i, c := range root.Chunks {
		if c.Size <= 0 || c.Size > indexChunkMax*4 {
			return nil, fmt.Errorf("index of %s: chunk %d has size %d", opts.Source, i, c.Size)
		}
		if err := checkLocs(c.At); err != nil {
			return nil, fmt.Errorf("index of %s: chunk %d: %w", opts.Source, i, err)
		}
		n := byLoc[c.At[0]]
		if n == nil {
			n = &need{size: c.Size, label: fmt.Sprintf("index of %s, chunk %d", opts.Source, i)}
			byLoc[c.At[0]] = n
			needs = append(needs, n)
		}
		n.addLocs(c.At)
		n.sinks = append(n.sinks, sink{c: spoolConsumer{tmp}, off: off})
		off += c.Size
	}
	if off != root.Size {
		return nil, fmt.Errorf("index of %s: chunks hold %d bytes, the root says %d", opts.Source, off, root.Size)
	}
	if err := f.fetch(ctx, needs); err != nil {
		return nil, fmt.Errorf("read the index of %s: %w", opts.Source, err)
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(tmp, 0, root.Size)); err != nil {
		return nil, fmt.Errorf("read temporary index: %w", err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != root.SHA256 {
		return nil, fmt.Errorf("index of %s: the stream has SHA-256 %s, the root says %s", opts.Source, got, root.SHA256)
	}
	dec := json.NewDecoder(io.NewSectionReader(tmp, 0, root.Size))
	var entries []*Entry
	for {
		e := &Entry{}
		err := dec.Decode(e)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("index of %s: entry %d: %w", opts.Source, len(entries)+1, err)
		}
		if err := checkEntry(e); err != nil {
			return nil, fmt.Errorf("index of %s: refusing entry %q: %w", opts.Source, e.Path, err)
		}
		entries = append(entries, e)
	}
	if err := checkTree(entries); err != nil {
		return nil, fmt.Errorf("index of %s: refusing %w", opts.Source, err)
	}
	return entries, nil
}

func selectSubpath(entries []*Entry, sub string) ([]*Entry, error) {
	if sub == "" {
		return entries, nil
	}
	var out []*Entry
	found := false
	for _, e := range entries {
		switch {
		case e.Path == sub || strings.HasPrefix(e.Path, sub+"/"):
			found = true
			out = append(out, e)
		case e.Type == TypeDir && strings.HasPrefix(sub, e.Path+"/"):
			out = append(out, e) // a parent: created with its own mode and mtime
		}
	}
	if !found {
		return nil, fmt.Errorf("%s is not in the snapshot", sub)
	}
	return out, nil
}

type restorer struct {
	dst Destination
	res *RestoreResult
	log *slog.Logger

	files atomic.Int64
	bytes atomic.Int64
}

// fileState counts a file's chunks still to come; the delivery of the last one finishes it.
type fileState struct {
	r         *restorer
	e         *Entry
	w         fileWriter
	remaining atomic.Int64
}

func (s *fileState) deliver(ctx context.Context, off int64, data []byte) error {
	if err := s.w.writeAt(ctx, data, off); err != nil {
		return fmt.Errorf("write %s: %w", s.e.Path, err)
	}
	if s.remaining.Add(-1) == 0 {
		return s.finish(ctx)
	}
	return nil
}

func (s *fileState) finish(ctx context.Context) error {
	if err := s.w.finish(ctx, len(s.e.Chunks) > 1); err != nil {
		return fmt.Errorf("finish %s: %w", s.e.Path, err)
	}
	s.r.files.Add(1)
	s.r.bytes.Add(s.e.Size)
	return nil
}

func (r *restorer) run(ctx context.Context, f *fetcher, entries []*Entry, overwrite bool, spoolDir string) (err error) {
	if err := r.dst.prepare(ctx, overwrite, spoolDir); err != nil {
		return err
	}
	defer func() {
		if cerr := r.dst.close(ctx); err == nil && cerr != nil {
			err = cerr
		}
		r.res.Files, r.res.Bytes = r.files.Load(), r.bytes.Load()
	}()

	var dirs, links []*Entry
	for _, e := range entries {
		switch e.Type {
		case TypeDir:
			dirs = append(dirs, e)
		case TypeSymlink:
			links = append(links, e)
		case TypeSkipped:
			r.res.Skipped = append(r.res.Skipped, e.Path)
		}
	}
	sort.Slice(dirs, func(i, j int) bool { return dirs[i].Path < dirs[j].Path })
	for _, e := range dirs {
		if err := r.dst.mkdir(e); err != nil {
			return fmt.Errorf("create directory %s in %s: %w", e.Path, r.dst, err)
		}
	}

	byKey := map[[32]byte]*need{}
	var needs []*need
	var states []*fileState
	for _, e := range entries {
		if e.Type != TypeFile {
			continue
		}
		w, err := r.dst.file(ctx, e)
		if err != nil {
			return fmt.Errorf("create %s in %s: %w", e.Path, r.dst, err)
		}
		st := &fileState{r: r, e: e, w: w}
		st.remaining.Store(int64(len(e.Chunks)))
		states = append(states, st)
		if len(e.Chunks) == 0 {
			if err := st.finish(ctx); err != nil {
				return err
			}
			continue
		}
		var off int64
		for _, c := range e.Chunks {
			s := e.SHA256
			if len(e.Chunks) > 1 {
				s = c.SHA256
			}
			sum, _ := parseSum(s) // checked by checkEntry
			n := byKey[sum]
			if n == nil {
				n = &need{size: c.Size, sum: sum, hasSum: true, label: "file " + e.Path}
				byKey[sum] = n
				needs = append(needs, n)
			}
			if n.size != c.Size {
				return fmt.Errorf("index: %s: a chunk with SHA-256 %s has two sizes", e.Path, s)
			}
			n.addLocs(c.At)
			n.sinks = append(n.sinks, sink{c: st, off: off})
			off += c.Size
		}
	}
	if err := f.fetch(ctx, needs); err != nil {
		return err
	}
	for _, st := range states {
		if st.remaining.Load() != 0 {
			return fmt.Errorf("%s: %d chunks were never written (a bug)", st.e.Path, st.remaining.Load())
		}
	}
	for _, e := range links {
		if err := r.dst.symlink(e); err != nil {
			return fmt.Errorf("create symlink %s in %s: %w", e.Path, r.dst, err)
		}
		r.res.Symlinks++
	}
	// Deepest first: setting a parent's mtime before its children are done would be undone.
	sort.Slice(dirs, func(i, j int) bool { return dirs[i].Path > dirs[j].Path })
	for _, e := range dirs {
		if err := r.dst.dirMeta(e); err != nil {
			return fmt.Errorf("set attributes of directory %s in %s: %w", e.Path, r.dst, err)
		}
		r.res.Dirs++
	}
	return nil
}

// --- directory destination ---

// ToDir restores into a local directory, created if missing.
func ToDir(dir string) Destination { return &dirDest{path: dir} }

type dirDest struct {
	path      string
	root      *os.Root
	overwrite bool
	chown     bool
	made      map[string]bool // directories known to exist; used by the planning goroutine only
}

func (d *dirDest) String() string              { return d.path }
func (d *dirDest) warnings() []string          { return nil }
func (d *dirDest) close(context.Context) error { return d.root.Close() }

func (d *dirDest) prepare(_ context.Context, overwrite bool, _ string) error {
	abs, err := filepath.Abs(d.path)
	if err != nil {
		return err
	}
	d.path, d.overwrite, d.chown = abs, overwrite, os.Geteuid() == 0
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return fmt.Errorf("create destination: %w", err)
	}
	f, err := os.Open(abs)
	if err != nil {
		return fmt.Errorf("open destination: %w", err)
	}
	names, err := f.Readdirnames(1)
	f.Close()
	if err != nil && err != io.EOF {
		return fmt.Errorf("read destination %s: %w", abs, err)
	}
	if len(names) > 0 && !overwrite {
		return fmt.Errorf("%w: %s; restore into an empty directory, or pass --overwrite to replace what is there", ErrNotEmpty, abs)
	}
	d.root, err = os.OpenRoot(abs)
	if err != nil {
		return fmt.Errorf("open destination: %w", err)
	}
	return nil
}

// clear makes room for p: nothing there is fine; something there is removed with overwrite
// (a directory is kept when keepDir), and an error without.
func (d *dirDest) clear(p string, keepDir bool) (exists bool, err error) {
	fi, err := d.root.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if keepDir && fi.IsDir() {
		return true, nil
	}
	if !d.overwrite {
		return false, fmt.Errorf("%s already exists", p)
	}
	return false, d.root.RemoveAll(p)
}

func (d *dirDest) parents(p string) error {
	dir := parentOf(p)
	if dir == "" || d.made[dir] {
		return nil
	}
	if err := d.root.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if d.made == nil {
		d.made = map[string]bool{}
	}
	d.made[dir] = true
	return nil
}

func (d *dirDest) mkdir(e *Entry) error {
	if err := d.parents(e.Path); err != nil {
		return err
	}
	exists, err := d.clear(e.Path, true)
	if err != nil || exists {
		return err
	}
	// Owner-only until the end, when the stored mode is applied: the restore must be able to
	// write into a directory whose stored mode is read-only.
	if err := d.root.Mkdir(e.Path, 0o700); err != nil {
		return err
	}
	if d.made == nil {
		d.made = map[string]bool{}
	}
	d.made[e.Path] = true
	return nil
}

func (d *dirDest) file(_ context.Context, e *Entry) (fileWriter, error) {
	if err := d.parents(e.Path); err != nil {
		return nil, err
	}
	if _, err := d.clear(e.Path, false); err != nil {
		return nil, err
	}
	f, err := d.root.OpenFile(e.Path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, err
	}
	if err := f.Truncate(e.Size); err != nil {
		f.Close()
		return nil, err
	}
	return &dirFile{d: d, e: e}, f.Close()
}

type dirFile struct {
	d *dirDest
	e *Entry
}

func (w *dirFile) writeAt(_ context.Context, p []byte, off int64) error {
	f, err := w.d.root.OpenFile(w.e.Path, os.O_WRONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(p, off); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (w *dirFile) finish(_ context.Context, verify bool) error {
	e := w.e
	if verify {
		f, err := w.d.root.OpenFile(e.Path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
		if err != nil {
			return err
		}
		h := sha256.New()
		n, err := io.Copy(h, f)
		f.Close()
		if err != nil {
			return err
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != e.SHA256 || n != e.Size {
			return fmt.Errorf("restored file has %d bytes with SHA-256 %s; the index says %d bytes with %s", n, got, e.Size, e.SHA256)
		}
	}
	return w.d.setMeta(e)
}

// setMeta applies owner, then mode (chown clears setuid bits), then mtime.
func (d *dirDest) setMeta(e *Entry) error {
	if d.chown && e.UID >= 0 && e.GID >= 0 {
		if err := d.root.Lchown(e.Path, e.UID, e.GID); err != nil {
			return err
		}
	}
	if err := d.root.Chmod(e.Path, goMode(e.Mode)); err != nil {
		return err
	}
	t := time.Unix(0, e.MTime)
	return d.root.Chtimes(e.Path, t, t)
}

func (d *dirDest) symlink(e *Entry) error {
	if err := d.parents(e.Path); err != nil {
		return err
	}
	if _, err := d.clear(e.Path, false); err != nil {
		return err
	}
	if err := d.root.Symlink(e.Link, e.Path); err != nil {
		return err
	}
	if d.chown && e.UID >= 0 && e.GID >= 0 {
		if err := d.root.Lchown(e.Path, e.UID, e.GID); err != nil {
			return err
		}
	}
	// os.Root has no lutimes: set the link's own mtime relative to its parent, opened
	// through the root so the parent cannot be outside it.
	dir := parentOf(e.Path)
	if dir == "" {
		dir = "."
	}
	pf, err := d.root.OpenFile(dir, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer pf.Close()
	ts := unix.NsecToTimespec(e.MTime)
	return unix.UtimesNanoAt(int(pf.Fd()), path.Base(e.Path), []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW)
}

func (d *dirDest) dirMeta(e *Entry) error { return d.setMeta(e) }

// --- bucket destination ---

// ToTarget restores into a bucket (or any target): each file becomes the object prefix+path.
// Directories, symlinks, modes, owners and mtimes have no place in a bucket; the restore
// reports what it left out.
func ToTarget(name string, t backupset.Target, prefix string) Destination {
	return &bucketDest{name: name, t: t, prefix: prefix}
}

// bucketUploads bounds the objects uploaded at once, and with them the memory held.
const bucketUploads = 8

type bucketDest struct {
	name   string
	t      backupset.Target
	prefix string
	spool  string

	queue chan bucketPut
	wg    sync.WaitGroup
	mu    sync.Mutex
	err   error

	symlinks, dirs atomic.Int64
}

type bucketPut struct {
	key  string
	data []byte
}

func (b *bucketDest) String() string { return "target " + b.name }

func (b *bucketDest) prepare(ctx context.Context, overwrite bool, spoolDir string) error {
	b.spool = spoolDir
	b.prefix = strings.Trim(b.prefix, "/")
	if b.prefix != "" {
		if err := checkRelPath(b.prefix); err != nil {
			return fmt.Errorf("destination prefix %q: %w", b.prefix, err)
		}
		b.prefix += "/"
	}
	if !overwrite {
		errNotEmpty := errors.New("not empty")
		err := b.t.List(ctx, b.prefix, func(targets.ObjectInfo) error { return errNotEmpty })
		if errors.Is(err, errNotEmpty) {
			return fmt.Errorf("%w: %s (prefix %q); restore into an empty prefix, or pass --overwrite to replace objects", ErrNotEmpty, b, b.prefix)
		}
		if err != nil {
			return fmt.Errorf("list destination %s: %w", b, err)
		}
	}
	b.queue = make(chan bucketPut, bucketUploads)
	for range bucketUploads {
		b.wg.Go(func() {
			for p := range b.queue {
				if b.failed() != nil {
					continue
				}
				if err := b.t.Put(ctx, p.key, bytes.NewReader(p.data), int64(len(p.data))); err != nil {
					b.fail(fmt.Errorf("upload %s to %s: %w", p.key, b, err))
				}
			}
		})
	}
	return nil
}

func (b *bucketDest) fail(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err == nil {
		b.err = err
	}
}

func (b *bucketDest) failed() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

func (b *bucketDest) close(context.Context) error {
	if b.queue != nil {
		close(b.queue)
		b.wg.Wait()
	}
	return b.failed()
}

func (b *bucketDest) warnings() []string {
	var w []string
	if n := b.symlinks.Load(); n > 0 {
		w = append(w, fmt.Sprintf("%d symlinks not restored: a bucket cannot hold them", n))
	}
	if n := b.dirs.Load(); n > 0 {
		w = append(w, fmt.Sprintf("%d directories not restored as such (a bucket has none; empty ones are lost); modes, owners and mtimes are not kept either", n))
	}
	return w
}

func (b *bucketDest) mkdir(*Entry) error   { b.dirs.Add(1); return nil }
func (b *bucketDest) symlink(*Entry) error { b.symlinks.Add(1); return nil }
func (b *bucketDest) dirMeta(*Entry) error { return nil }

func (b *bucketDest) file(_ context.Context, e *Entry) (fileWriter, error) {
	if err := b.failed(); err != nil {
		return nil, err
	}
	key := b.prefix + e.Path
	if len(e.Chunks) <= 1 {
		return &bucketMemFile{b: b, key: key, size: e.Size}, nil
	}
	return &bucketSpoolFile{b: b, key: key, e: e}, nil
}

// bucketMemFile is a file of at most one chunk: it arrives whole, and goes up from memory.
type bucketMemFile struct {
	b    *bucketDest
	key  string
	size int64
	data []byte
}

func (w *bucketMemFile) writeAt(_ context.Context, p []byte, off int64) error {
	if off != 0 || int64(len(p)) != w.size {
		return fmt.Errorf("single-chunk file written at %d with %d bytes", off, len(p))
	}
	w.data = bytes.Clone(p)
	return nil
}

func (w *bucketMemFile) finish(ctx context.Context, _ bool) error {
	if err := w.b.failed(); err != nil {
		return err
	}
	data := w.data
	if data == nil {
		data = []byte{}
	}
	w.data = nil
	select {
	case w.b.queue <- bucketPut{key: w.key, data: data}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// bucketSpoolFile assembles a multi-chunk file in a temporary file, verifies it, then uploads
// it with its known size, so memory does not grow with the file.
type bucketSpoolFile struct {
	b   *bucketDest
	key string
	e   *Entry
	mu  sync.Mutex
	f   *os.File
}

func (w *bucketSpoolFile) writeAt(_ context.Context, p []byte, off int64) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		f, err := os.CreateTemp(w.b.spool, "backupd-restore-*")
		if err != nil {
			return fmt.Errorf("create temporary file: %w", err)
		}
		os.Remove(f.Name())
		w.f = f
	}
	_, err := w.f.WriteAt(p, off)
	return err
}

func (w *bucketSpoolFile) finish(ctx context.Context, _ bool) error {
	w.mu.Lock()
	f := w.f
	w.f = nil
	w.mu.Unlock()
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, w.e.Size)); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != w.e.SHA256 {
		return fmt.Errorf("assembled file has SHA-256 %s; the index says %s", got, w.e.SHA256)
	}
	if err := w.b.t.Put(ctx, w.key, io.NewSectionReader(f, 0, w.e.Size), w.e.Size); err != nil {
		return fmt.Errorf("upload %s to %s: %w", w.key, w.b, err)
	}
	return nil
}
