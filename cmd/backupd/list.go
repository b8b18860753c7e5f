package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
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
}

func runList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("list", "[--config FILE] [--policy NAME] [--json]", stdout)
	pf := addPolicyFlags(fs)
	asJSON := fs.Bool("json", false, "print a JSON array instead of a table")
	if err := parseFlags(fs, args); err != nil {
		return err
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
	sets, err := listSets(ctx, p.Name, dests, time.Now(), trust)
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
	for _, s := range sets {
		if s.Untrusted != "" {
			untrusted = append(untrusted, s)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\n", s.ID, s.FinishedAt.Local().Format("2006-01-02 15:04:05"),
			humanize.Bytes(s.Bytes), s.Tables, s.Rows, strings.Join(s.Targets, ","))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, s := range untrusted {
		fmt.Fprintf(stdout, "UNTRUSTED %s on %s: %s (never restored, drilled or counted; delete it if nobody knows it)\n",
			s.ID, strings.Join(s.Targets, ","), s.Untrusted)
	}
	return nil
}

// listSets merges the sets of every target by set ID, newest last: committed ones, and apart
// from them those whose manifest is present but not trusted, with the reason. A target that
// cannot be listed, or a manifest it fails to return, fails the command: a silent gap would
// misreport what exists. Each manifest is held only while it is summarised.
func listSets(ctx context.Context, policy string, dests []backupset.Dest, now time.Time, trust backupset.Trust) ([]*listedSet, error) {
	type key struct{ id, untrusted string }
	byID := map[key]*listedSet{}
	for _, d := range dests {
		entries, err := backupset.SetKeys(ctx, d.Target, policy)
		if err != nil {
			return nil, fmt.Errorf("target %s: %w", d.Name, err)
		}
		untrusted, err := backupset.Scan(ctx, d.Target, policy, entries, now, trust, func(m *backupset.Manifest) bool {
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
