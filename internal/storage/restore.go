package storage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"filippo.io/age"

	"github.com/backupd/backupd/internal/backupset"
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
	Now       func() time.Time // injected clock, for judging the manifest; time.Now when nil
	// Trust decides whose signature commits the set (backupset.Committed); nil trusts nothing.
	// backupset.AllowUnsigned(trust) also accepts an unsigned set.
	Trust backupset.Trust
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
	Fallbacks int      // packs (and the index root) read from a later target because an earlier one failed
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

	srcs, root, fellBack, err := openIndexRoot(ctx, from, opts, log)
	if err != nil {
		return res, err
	}
	f := &fetcher{policy: opts.Policy, ids: opts.Identities, srcs: srcs, workers: opts.Workers, log: log,
		spoolDir: opts.SpoolDir, warnings: fellBack, fallbacks: len(fellBack), sums: map[string][32]byte{}}
	for id, s := range root.PackSums {
		f.sums[id], _ = parseSum(s) // checked by readIndexRoot
	}
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
