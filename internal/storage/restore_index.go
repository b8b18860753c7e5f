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

	"github.com/backupd/backupd/internal/backupset"
	"github.com/backupd/backupd/internal/seal"
)

// openIndexRoot reads the manifest and the source's index root from the first target that
// has the set committed and an intact copy, and lists the packs on every such target.
func openIndexRoot(ctx context.Context, from []backupset.Dest, opts RestoreOptions, log *slog.Logger) ([]*readSource, *indexRoot, []string, error) {
	var (
		srcs []*readSource
		man  *backupset.Manifest
		errs []error
	)
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	for _, d := range from {
		m, err := backupset.ReadManifest(ctx, d.Target, opts.Policy, opts.SetID, now(), opts.Trust)
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
		return nil, nil, nil, fmt.Errorf("set %s of policy %s is not committed on any target given: %w", opts.SetID, opts.Policy, errors.Join(errs...))
	}
	desc, err := ParseDescription(man.Files)
	if err != nil {
		return nil, nil, nil, err
	}
	sum, ok := desc.Source(opts.Source)
	if !ok {
		var names []string
		for _, s := range desc.Sources {
			names = append(names, s.Name)
		}
		if len(names) == 0 {
			return nil, nil, nil, fmt.Errorf("set %s has no storage snapshot", opts.SetID)
		}
		return nil, nil, nil, fmt.Errorf("set %s has no storage source %q (it has: %s)", opts.SetID, opts.Source, strings.Join(names, ", "))
	}
	obj, ok := man.Object(sum.Index)
	if !ok {
		return nil, nil, nil, fmt.Errorf("manifest of set %s does not list %s", opts.SetID, sum.Index)
	}
	var root *indexRoot
	var fellBack []string
	errs = nil
	for _, s := range srcs {
		root, err = readIndexRoot(ctx, s, opts, obj)
		if err == nil {
			break
		}
		if errors.Is(err, seal.ErrWrongKey) {
			return nil, nil, nil, err // the bytes are the ones the manifest names: the key is wrong
		}
		errs = append(errs, err)
		log.Warn("index root unreadable, trying the next target", "target", s.name, "error", err)
		fellBack = append(fellBack, fmt.Sprintf("index root %s unreadable on target %s (%v); read it from the next target", sum.Index, s.name, err))
	}
	if root == nil {
		return nil, nil, nil, fmt.Errorf("no target has a readable copy of %s: %w", sum.Index, errors.Join(errs...))
	}
	parallel(ctx, 4, len(srcs), func(i int) {
		packs, err := listPacks(ctx, srcs[i].t, opts.Policy)
		if err != nil {
			log.Warn("cannot list packs; not reading from this target", "target", srcs[i].name, "error", err)
			return
		}
		srcs[i].packs = packs
	})
	return srcs, root, fellBack, ctx.Err()
}

func readIndexRoot(ctx context.Context, s *readSource, opts RestoreOptions, obj backupset.Object) (*indexRoot, error) {
	key := backupset.ObjectKey(opts.Policy, opts.SetID, obj.Name)
	rc, err := s.t.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("read %s from target %s: %w", key, s.name, err)
	}
	defer rc.Close()
	// The sealed bytes are read whole (bounded) and checked against the manifest before any
	// of them reaches the age or zstd decoder: a damaged stanza is then a damaged copy, to be
	// read from the next target, not a wrong key.
	if obj.Size < 0 || obj.Size > maxRootSealed || obj.PlainSize < 0 || obj.PlainSize > maxRootPlain {
		return nil, fmt.Errorf("%s: the manifest says %d sealed, %d plain bytes; an index root is at most %d and %d", key, obj.Size, obj.PlainSize, int64(maxRootSealed), int64(maxRootPlain))
	}
	sealed, err := io.ReadAll(io.LimitReader(rc, obj.Size+1))
	if err != nil {
		return nil, fmt.Errorf("read %s from target %s: %w", key, s.name, err)
	}
	if int64(len(sealed)) != obj.Size {
		return nil, fmt.Errorf("%s on target %s: got %d bytes or more, the manifest says %d", key, s.name, len(sealed), obj.Size)
	}
	if got := sha256.Sum256(sealed); hex.EncodeToString(got[:]) != obj.SHA256 {
		return nil, fmt.Errorf("%s on target %s has SHA-256 %x, the manifest says %s", key, s.name, got, obj.SHA256)
	}
	pr, err := seal.Open(bytes.NewReader(sealed), opts.Identities)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", key, err)
	}
	pr = seal.ExactSize(pr, obj.PlainSize)
	defer pr.Close()
	body, err := io.ReadAll(pr)
	if err != nil {
		return nil, fmt.Errorf("read %s on target %s: %w", key, s.name, err)
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
	case root.Size < 0 || root.Size > maxIndexStream:
		return nil, fmt.Errorf("%s: index stream of %d bytes; this backupd reads at most %d", key, root.Size, int64(maxIndexStream))
	}
	for id, sum := range root.PackSums {
		if !validPackID(id) {
			return nil, fmt.Errorf("%s: pack_sha256 names %q, which is not a pack ID", key, id)
		}
		if _, err := parseSum(sum); err != nil {
			return nil, fmt.Errorf("%s: pack_sha256 of %s: %w", key, id, err)
		}
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
	// One entry per line, each bounded, so that no single line of a hostile stream makes the
	// decoder buffer without limit; a path seen twice is refused as soon as it appears.
	sc := bufio.NewScanner(io.NewSectionReader(tmp, 0, root.Size))
	sc.Buffer(make([]byte, 0, 64<<10), maxEntryBytes)
	var entries []*Entry
	seen := map[string]bool{}
	for sc.Scan() {
		line := sc.Bytes()
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		e := &Entry{}
		if err := json.Unmarshal(line, e); err != nil {
			return nil, fmt.Errorf("index of %s: entry %d: %w", opts.Source, len(entries)+1, err)
		}
		if err := checkEntry(e); err != nil {
			return nil, fmt.Errorf("index of %s: refusing entry %q: %w", opts.Source, truncPath(e.Path), err)
		}
		if seen[e.Path] {
			return nil, fmt.Errorf("index of %s: refusing index entry %q: appears twice", opts.Source, e.Path)
		}
		seen[e.Path] = true
		entries = append(entries, e)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("index of %s: entry %d is longer than %d bytes (damaged or forged index)", opts.Source, len(entries)+1, maxEntryBytes)
		}
		return nil, fmt.Errorf("index of %s: entry %d: %w", opts.Source, len(entries)+1, err)
	}
	seen = nil
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

// Bounds on what a restore reads of an index before and after its hashes are checked. An
// index root lists about 100 bytes per 16 KiB of index stream; the stream holds a few hundred
// bytes per path, and every entry it holds is kept in memory for the restore.
const (
	maxRootSealed  = 64 << 20
	maxRootPlain   = 64 << 20
	maxIndexStream = 4 << 30  // about ten million paths
	maxEntryBytes  = 16 << 20 // one file of about 100 000 chunks (100 GB and more)
	maxPathBytes   = 4096
)

// truncPath keeps error messages about a hostile path to one readable size.
func truncPath(p string) string {
	if len(p) > 200 {
		return p[:200] + "…"
	}
	return p
}
