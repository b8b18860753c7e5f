package backupset

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrNoSet means no committed set matches what was asked for.
var ErrNoSet = errors.New("no committed set")

// Query selects a set: an exact ID, or the newest finished before a time, or (both zero) the
// newest of all.
type Query struct {
	ID     string
	Before time.Time
}

// Found is a committed set and the targets that hold it, in the order they were given.
type Found struct {
	Manifest *Manifest
	Holders  []Dest
}

// Find looks for a committed set on every target. A target that cannot be listed is reported
// in the error only when no other target has an answer, so one dead target does not stop a
// restore from the others.
func Find(ctx context.Context, dests []Dest, policy string, q Query) (*Found, error) {
	if q.ID != "" && !ValidID(q.ID) {
		return nil, fmt.Errorf("%q is not a set ID (want e.g. 20261127T030000Z-3f9a; run 'backupd list' to see the sets)", q.ID)
	}
	var best *Manifest
	holders := map[string][]Dest{}
	var errs []error
	for _, d := range dests {
		if q.ID != "" {
			m, err := ReadManifest(ctx, d.Target, policy, q.ID)
			if err != nil {
				errs = append(errs, fmt.Errorf("target %s: %w", d.Name, err))
				continue
			}
			best = m
			holders[m.SetID] = append(holders[m.SetID], d)
			continue
		}
		ms, err := List(ctx, d.Target, policy)
		if err != nil {
			errs = append(errs, fmt.Errorf("target %s: %w", d.Name, err))
		}
		for _, m := range ms {
			if !q.Before.IsZero() && !m.FinishedAt.Before(q.Before) {
				continue
			}
			holders[m.SetID] = append(holders[m.SetID], d)
			if best == nil || m.SetID > best.SetID {
				best = m
			}
		}
	}
	if best == nil {
		what := "the newest set"
		switch {
		case q.ID != "":
			what = "set " + q.ID
		case !q.Before.IsZero():
			what = "a set finished before " + q.Before.UTC().Format(time.RFC3339)
		}
		return nil, fmt.Errorf("%w: %s of policy %s is on none of its targets (run 'backupd list --policy %s'): %w",
			ErrNoSet, what, policy, policy, errors.Join(errs...))
	}
	return &Found{Manifest: best, Holders: holders[best.SetID]}, nil
}
