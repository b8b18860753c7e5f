package storage

import (
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
func openIndexRoot(ctx context.Context, from []backupset.Dest, opts RestoreOptions, log *slog.Logger) ([]*readSource, *indexRoot, error) {
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
