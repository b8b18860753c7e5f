package backupset

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/backupd/backupd/internal/targets"
)

// ReadJSON reads a small JSON object (a manifest, a drill report) from a target into v, refusing
// one larger than limit bytes. Errors name the key; a missing object wraps targets.ErrNotFound.
func ReadJSON(ctx context.Context, t Target, key string, limit int64, v any) error {
	rc, err := t.Get(ctx, key)
	if err != nil {
		return fmt.Errorf("read %s: %w", key, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return fmt.Errorf("read %s: %w", key, err)
	}
	if int64(len(data)) > limit {
		return fmt.Errorf("read %s: larger than %d bytes; this is not an object backupd wrote", key, limit)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("parse %s: %w", key, err)
	}
	return nil
}

// ReadManifest reads the manifest of one set; targets.ErrNotFound when the set is not committed.
func ReadManifest(ctx context.Context, t Target, policy, id string) (*Manifest, error) {
	key := ManifestKey(policy, id)
	var m Manifest
	if err := ReadJSON(ctx, t, key, 256<<20, &m); err != nil {
		return nil, err
	}
	if m.FormatVersion > FormatVersion {
		return nil, fmt.Errorf("%s has format version %d; this backupd reads up to %d: upgrade backupd", key, m.FormatVersion, FormatVersion)
	}
	if m.SetID != id || m.Policy != policy {
		return nil, fmt.Errorf("%s describes set %s of policy %s, not the set it is stored in", key, m.SetID, m.Policy)
	}
	return &m, nil
}

// SetKeys lists the set IDs present under a policy, committed or not, with whether each has a
// manifest. Sorted oldest first.
func SetKeys(ctx context.Context, t Target, policy string) ([]SetEntry, error) {
	byID := map[string]*SetEntry{}
	prefix := policy + "/"
	err := t.List(ctx, prefix, func(oi targets.ObjectInfo) error {
		rest := strings.TrimPrefix(oi.Key, prefix)
		id, name, ok := strings.Cut(rest, "/")
		if !ok || !ValidID(id) {
			return nil // not part of a set (blobs, drills, locks)
		}
		e := byID[id]
		if e == nil {
			e = &SetEntry{ID: id}
			byID[id] = e
		}
		e.Objects++
		e.Bytes += oi.Size
		if oi.ModTime.After(e.LastModified) {
			e.LastModified = oi.ModTime
		}
		if name == ManifestName {
			e.Committed = true
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list sets of policy %s: %w", policy, err)
	}
	out := make([]SetEntry, 0, len(byID))
	for _, e := range byID {
		out = append(out, *e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// SetEntry is a set as seen in a listing, before its manifest is read.
type SetEntry struct {
	ID           string
	Committed    bool
	Objects      int
	Bytes        int64
	LastModified time.Time
}

// List returns the committed sets of a policy on one target, oldest first. A manifest that
// cannot be read is an error naming it: a damaged commit marker needs a person's attention.
func List(ctx context.Context, t Target, policy string) ([]*Manifest, error) {
	entries, err := SetKeys(ctx, t, policy)
	if err != nil {
		return nil, err
	}
	var out []*Manifest
	var errs []error
	for _, e := range entries {
		if !e.Committed {
			continue
		}
		m, err := ReadManifest(ctx, t, policy, e.ID)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, m)
	}
	return out, errors.Join(errs...)
}
