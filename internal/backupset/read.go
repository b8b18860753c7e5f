package backupset

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
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

// SetKeys lists the set IDs present under a policy, committed or not, with whether each has a
// manifest. Sorted oldest first.
func SetKeys(ctx context.Context, t Target, policy string) ([]SetEntry, error) {
	return setKeysUnder(ctx, t, policy, "")
}

// SetKeysOnly is SetKeys without walking the rest of the policy's area: set IDs start with
// their year, so listing "<policy>/2" sees every set of this millennium and none of the
// storage blobs (<policy>/blobs/, possibly millions of objects), drill reports or locks —
// which matters for a check that runs every minute.
func SetKeysOnly(ctx context.Context, t Target, policy string) ([]SetEntry, error) {
	return setKeysUnder(ctx, t, policy, "2")
}

// setKeysUnder lists the sets whose IDs start with idPrefix.
func setKeysUnder(ctx context.Context, t Target, policy, idPrefix string) ([]SetEntry, error) {
	byID := map[string]*SetEntry{}
	prefix := policy + "/"
	err := t.List(ctx, prefix+idPrefix, func(oi targets.ObjectInfo) error {
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

// List returns the committed sets of a policy on one target, oldest first, and apart from
// them the sets whose manifest is present but not trusted (see Committed), newest first.
// Every manifest is held at once: callers that need only a summary of each use Scan.
func List(ctx context.Context, t Target, policy string, now time.Time, trust Trust) ([]*Manifest, []Untrusted, error) {
	entries, err := SetKeys(ctx, t, policy)
	if err != nil {
		return nil, nil, err
	}
	var out []*Manifest
	untrusted, err := Scan(ctx, t, policy, entries, now, trust, func(m *Manifest) bool {
		out = append(out, m)
		return true
	})
	slices.Reverse(out)
	return out, untrusted, err
}

func isNotFound(err error) bool { return errors.Is(err, targets.ErrNotFound) }
