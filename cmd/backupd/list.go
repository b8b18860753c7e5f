package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/backupd/backupd/internal/backupset"
	"github.com/backupd/backupd/internal/humanize"
	"github.com/backupd/backupd/internal/keys"
	"github.com/backupd/backupd/internal/targets"
	"github.com/backupd/backupd/internal/termsafe"
)

func init() {
	register(&command{name: "list", summary: "list committed sets of a policy on every target", run: runList})
}

// listedSet is one set as `list --json` prints it.
type listedSet struct {
	ID         string    `json:"id"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
	Bytes      int64     `json:"bytes"`
	PlainBytes int64     `json:"plain_bytes"`
	Tables     int       `json:"tables"`
	Rows       int64     `json:"rows"`
	Targets    []string  `json:"targets"`
	// Untrusted says why the set's manifest on Targets does not commit it (see
	// backupset.Committed); such a set is never restored, drilled or counted. Empty for a
	// committed set.
	Untrusted string `json:"untrusted,omitempty"`
	// ListedOnly marks a set older than the newest --limit whose manifest was not read: its
	// size is the sum of its objects in the listing, its finish time that of its newest object,
	// its tables and rows are unknown, and whether its manifest is trusted was not checked.
	ListedOnly bool `json:"listed_only,omitempty"`
}

// defaultListLimit is how many of the newest sets list reads in full by default: every
// manifest is one GET per target, and a policy keeps hundreds of sets after a few years.
const defaultListLimit = 10

func runList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("list", "[--config FILE] [--policy NAME] [--json] [--limit N | --all]", stdout)
	pf := addPolicyFlags(fs)
	asJSON := fs.Bool("json", false, "print a JSON array instead of a table")
	limit := fs.Int("limit", defaultListLimit, "read the manifests of the newest `N` sets (tables, rows, trust); older sets are shown from the listing only")
	all := fs.Bool("all", false, "read the manifest of every set (one read per set and target)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *limit < 1 {
		return usageErrorf("--limit %d: give a number of sets of 1 or more, or --all to read every manifest", *limit)
	}
	if *all {
		*limit = 0
	}
	cfg, p, err := pf.load()
	if err != nil {
		return err
	}
	log := newLogger(ctx, stderr, false)
	dests, err := cfg.OpenTargets(p, targets.Options{Logger: log})
	if err != nil {
		return err
	}
	trust, _, err := keys.Verifier(cfg)
	if err != nil {
		return err
	}
	sets, err := listNewest(ctx, p.Name, dests, time.Now(), *limit, trust)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if sets == nil {
			sets = []*listedSet{}
		}
		return enc.Encode(sets)
	}
	if len(sets) == 0 {
		fmt.Fprintf(stdout, "no committed sets for policy %s on %s\n", p.Name, strings.Join(p.Targets, ", "))
		return nil
	}
	tw := tabwriter.NewWriter(termsafe.NewWriter(stdout), 0, 4, 2, ' ', 0) // set IDs and target names come from the targets
	fmt.Fprintln(tw, "SET\tFINISHED\tSIZE\tTABLES\tROWS\tTARGETS")
	var untrusted []*listedSet
	listedOnly := 0
	for _, s := range sets {
		if s.Untrusted != "" {
			untrusted = append(untrusted, s)
			continue
		}
		tables, rows := fmt.Sprint(s.Tables), fmt.Sprint(s.Rows)
		if s.ListedOnly {
			listedOnly++
			tables, rows = "-", "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, s.FinishedAt.Local().Format("2006-01-02 15:04:05"),
			humanize.Bytes(s.Bytes), tables, rows, strings.Join(s.Targets, ","))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if listedOnly > 0 {
		fmt.Fprintf(stdout, "%d older set(s) shown from the listing only: their manifests were not read (tables and rows -, trust not checked); --all reads them\n", listedOnly)
	}
	for _, s := range untrusted {
		fmt.Fprintf(stdout, "UNTRUSTED %s on %s: %s (never restored, drilled or counted; delete it if nobody knows it)\n",
			s.ID, strings.Join(s.Targets, ","), s.Untrusted)
	}
	return nil
}

// listSets is listNewest reading every manifest.
func listSets(ctx context.Context, policy string, dests []backupset.Dest, now time.Time, trust backupset.Trust) ([]*listedSet, error) {
	return listNewest(ctx, policy, dests, now, 0, trust)
}

// listNewest merges the sets of every target by set ID, newest last: committed ones, and apart
// from them those whose manifest is present but not trusted, with the reason. Only the
// manifests of the newest limit sets (every set when limit is 0) are read; older sets with a
// manifest are listed from the listing alone (ListedOnly). A target that cannot be listed, or
// a manifest it fails to return, fails the command: a silent gap would misreport what exists.
// Each manifest is held only while it is summarised.
func listNewest(ctx context.Context, policy string, dests []backupset.Dest, now time.Time, limit int, trust backupset.Trust) ([]*listedSet, error) {
	listings := make([][]backupset.SetEntry, len(dests))
	var ids []string
	for i, d := range dests {
		entries, err := backupset.SetKeysOnly(ctx, d.Target, policy)
		if err != nil {
			return nil, fmt.Errorf("target %s: %w", d.Name, err)
		}
		listings[i] = entries
		for _, e := range entries {
			if e.Committed {
				ids = append(ids, e.ID)
			}
		}
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	read := map[string]bool{}
	for i, id := range slices.Backward(ids) {
		if limit > 0 && len(ids)-i > limit {
			break
		}
		read[id] = true
	}

	type key struct{ id, untrusted string }
	byID := map[key]*listedSet{}
	for i, d := range dests {
		var full []backupset.SetEntry
		for _, e := range listings[i] {
			switch {
			case !e.Committed:
			case read[e.ID]:
				full = append(full, e)
			default:
				s := byID[key{id: e.ID}]
				if s == nil {
					started, _ := backupset.IDTime(e.ID)
					s = &listedSet{ID: e.ID, StartedAt: started, FinishedAt: e.LastModified, Bytes: e.Bytes, ListedOnly: true}
					byID[key{id: e.ID}] = s
				}
				s.Targets = append(s.Targets, d.Name)
			}
		}
		untrusted, err := backupset.Scan(ctx, d.Target, policy, full, now, trust, func(m *backupset.Manifest) bool {
			s := byID[key{id: m.SetID}]
			if s == nil {
				tables, rows := m.Counts()
				s = &listedSet{ID: m.SetID, StartedAt: m.StartedAt, FinishedAt: m.FinishedAt, Bytes: m.Bytes(),
					PlainBytes: m.PlainBytes(), Tables: tables, Rows: rows}
				byID[key{id: m.SetID}] = s
			}
			s.Targets = append(s.Targets, d.Name)
			return true
		})
		if err != nil {
			return nil, fmt.Errorf("target %s: %w", d.Name, err)
		}
		for _, u := range untrusted {
			k := key{u.ID, u.Reason}
			s := byID[k]
			if s == nil {
				s = &listedSet{ID: u.ID, Untrusted: u.Reason}
				byID[k] = s
			}
			s.Targets = append(s.Targets, d.Name)
		}
	}
	out := make([]*listedSet, 0, len(byID))
	for _, s := range byID {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].ID != out[j].ID {
			return out[i].ID < out[j].ID
		}
		return out[i].Untrusted < out[j].Untrusted
	})
	return out, nil
}
