package daemon

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/backupd/backupd/internal/backupset"
	"github.com/backupd/backupd/internal/dump"
)

// minShrinkRows: a table with fewer rows in the previous set is not compared on its own (a
// 3-row settings table losing 2 rows is not news); the set's totals still are.
const minShrinkRows = 100

// shrinkage lists what shrank by more than threshold (a fraction) from prev to cur: the set's
// rows, its plain bytes, and each table's rows (a table that disappeared counts as emptied).
// Empty when nothing did, or threshold is 0.
func shrinkage(prev, cur *dump.Result, threshold float64) []string {
	if threshold <= 0 || prev == nil || cur == nil {
		return nil
	}
	var out []string
	shrank := func(before, after int64) (float64, bool) {
		if before <= 0 || after >= before {
			return 0, false
		}
		f := float64(before-after) / float64(before)
		return f, f > threshold
	}
	if f, ok := shrank(prev.Rows, cur.Rows); ok {
		out = append(out, fmt.Sprintf("rows of the whole set: %d -> %d (-%.0f%%)", prev.Rows, cur.Rows, f*100))
	}
	if f, ok := shrank(prev.Bytes, cur.Bytes); ok {
		out = append(out, fmt.Sprintf("size of the whole set: %d -> %d bytes (-%.0f%%)", prev.Bytes, cur.Bytes, f*100))
	}
	rows := tableRows(cur)
	var tables []string
	for name, before := range tableRows(prev) {
		if before < minShrinkRows {
			continue
		}
		after, present := rows[name]
		if !present {
			tables = append(tables, fmt.Sprintf("table %s: %d rows -> missing from the set", name, before))
			continue
		}
		if f, ok := shrank(before, after); ok {
			tables = append(tables, fmt.Sprintf("table %s: %d -> %d rows (-%.0f%%)", name, before, after, f*100))
		}
	}
	sort.Strings(tables)
	return append(out, tables...)
}

// tableRows maps "db.table" to its row count, tables only (not views or sequences).
func tableRows(r *dump.Result) map[string]int64 {
	m := map[string]int64{}
	for _, db := range r.Databases {
		for _, t := range db.Tables {
			if t.Type == dump.TypeTable && t.NoData == "" {
				m[db.Name+"."+t.Name] = t.Rows
			}
		}
	}
	return m
}

// previousManifest reads the newest committed set older than id from the first target that
// can answer.
func previousManifest(ctx context.Context, dests []backupset.Dest, policy, id string, now time.Time, trust backupset.Trust) (*backupset.Manifest, error) {
	var errs []error
	for _, d := range dests {
		entries, err := backupset.SetKeysOnly(ctx, d.Target, policy)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		n := 0
		for n < len(entries) && entries[n].ID < id {
			n++
		}
		var prev *backupset.Manifest
		_, err = backupset.Scan(ctx, d.Target, policy, entries[:n], now, trust, func(m *backupset.Manifest) bool {
			prev = m
			return false
		})
		if prev == nil && err != nil {
			errs = append(errs, err)
			continue
		}
		return prev, nil
	}
	return nil, errors.Join(errs...)
}

// newestSet is the newest committed set of a policy on any of its targets.
type newestSet struct {
	ID   string
	Time time.Time // its start, from the ID
}

// newestCommitted lists every target and returns the newest committed set (see
// backupset.Committed: a planted, future-dated or unreadable manifest never counts); zero when
// there is none. Manifests are read newest first until one is trusted. It fails only when no
// target could be listed.
//
// untrusted are the sets met on the way whose manifest is present but not trusted, one per ID:
// those newer than the newest committed set, the ones that would otherwise count as newest.
func newestCommitted(ctx context.Context, dests []backupset.Dest, policy string, now time.Time, trust backupset.Trust) (best newestSet, untrusted []backupset.Untrusted, err error) {
	seen := map[string]bool{}
	var errs []error
	listed := 0
	for _, d := range dests {
		entries, err := backupset.SetKeysOnly(ctx, d.Target, policy)
		if err != nil {
			errs = append(errs, fmt.Errorf("target %s: %w", d.Name, err))
			continue
		}
		listed++
		// entries are oldest first: skip those not newer than what another target holds
		newer := entries
		for len(newer) > 0 && newer[0].ID <= best.ID {
			newer = newer[1:]
		}
		us, err := backupset.Scan(ctx, d.Target, policy, newer, now, trust, func(m *backupset.Manifest) bool {
			t, _ := backupset.IDTime(m.SetID)
			best = newestSet{ID: m.SetID, Time: t}
			return false
		})
		for _, u := range us {
			if !seen[u.ID] {
				seen[u.ID] = true
				untrusted = append(untrusted, u)
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("target %s: %w", d.Name, err))
		}
	}
	if listed == 0 && len(errs) > 0 {
		return best, untrusted, errors.Join(errs...)
	}
	// Only those newer than the newest committed set: an older one met on another target
	// before it was found is not what this reports.
	untrusted = slices.DeleteFunc(untrusted, func(u backupset.Untrusted) bool { return u.ID < best.ID })
	return best, untrusted, nil
}

// dumpOf decodes a manifest's database part; nil when it has none or it does not decode.
func dumpOf(m *backupset.Manifest) *dump.Result {
	if m == nil {
		return nil
	}
	r, err := m.Dump()
	if err != nil {
		return nil
	}
	return r
}
