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

	"github.com/backupd/backupd/internal/backup"
	"github.com/backupd/backupd/internal/backupset"
	"github.com/backupd/backupd/internal/humanize"
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
	log := newLogger(stderr, false)
	dests, err := backup.OpenTargets(cfg, p, targets.Options{Logger: log})
	if err != nil {
		return err
	}
	sets, err := listSets(ctx, p.Name, dests)
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
	for _, s := range sets {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\n", s.ID, s.FinishedAt.Local().Format("2006-01-02 15:04:05"),
			humanize.Bytes(s.Bytes), s.Tables, s.Rows, strings.Join(s.Targets, ","))
	}
	return tw.Flush()
}

// listSets merges the committed sets of every target by set ID, newest last. A target that
// cannot be listed fails the command: a silent gap would misreport what exists.
func listSets(ctx context.Context, policy string, dests []backupset.Dest) ([]*listedSet, error) {
	byID := map[string]*listedSet{}
	for _, d := range dests {
		ms, err := backupset.List(ctx, d.Target, policy)
		if err != nil {
			return nil, fmt.Errorf("target %s: %w", d.Name, err)
		}
		for _, m := range ms {
			s := byID[m.SetID]
			if s == nil {
				tables, rows := backup.Counts(m)
				s = &listedSet{ID: m.SetID, StartedAt: m.StartedAt, FinishedAt: m.FinishedAt, Bytes: m.Bytes(),
					PlainBytes: m.PlainBytes(), Tables: tables, Rows: rows}
				byID[m.SetID] = s
			}
			s.Targets = append(s.Targets, d.Name)
		}
	}
	out := make([]*listedSet, 0, len(byID))
	for _, s := range byID {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}
