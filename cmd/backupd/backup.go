package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/backupd/backupd/internal/backup"
	"github.com/backupd/backupd/internal/humanize"
	"github.com/backupd/backupd/internal/keys"
)

func init() {
	register(&command{name: "backup", summary: "run one backup of a policy now", run: runBackup})
}

func runBackup(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("backup", "[--config FILE] [--policy NAME]", stdout)
	pf := addPolicyFlags(fs)
	verbose := fs.Bool("verbose", false, "log debug detail")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, p, err := pf.load()
	if err != nil {
		return err
	}
	log := newLogger(ctx, stderr, *verbose)
	signer, err := keys.Signer(cfg, log)
	if err != nil {
		return err
	}
	opts := backup.Options{Logger: log, Version: buildVersion(), Signer: signer}
	if isTerminal(stderr) {
		opts.Progress = stderr
	}
	res, err := backup.Run(ctx, cfg, p, opts)
	printBackupSummary(stdout, res)
	return err
}

func printBackupSummary(w io.Writer, res *backup.Result) {
	if res == nil {
		return
	}
	status := "FAILED"
	if res.Manifest != nil {
		status = "committed"
	}
	fmt.Fprintf(w, "set %s (policy %s): %s in %s\n", res.SetID, res.Policy, status, res.Duration.Round(1e6))
	if res.Manifest != nil {
		tables, rows := res.Manifest.Counts()
		m := res.Manifest
		fmt.Fprintf(w, "  %d tables, %d rows, %s read, %s written (%d objects)\n", tables, rows,
			humanize.Bytes(m.PlainBytes()), humanize.Bytes(m.Bytes()), len(m.Objects))
	}
	for _, s := range res.Storage {
		fmt.Fprintf(w, "  storage %s: %d files, %s, %s new (%d new packs)\n", s.Source, s.Files,
			humanize.Bytes(s.Bytes), humanize.Bytes(s.NewBytes), s.NewPacks)
	}
	if len(res.Targets) > 0 {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, t := range res.Targets {
			if t.Err == nil {
				fmt.Fprintf(tw, "  target %s\tcommitted\n", t.Name)
			} else {
				fmt.Fprintf(tw, "  target %s\tFAILED: %v\n", t.Name, t.Err)
			}
		}
		tw.Flush()
	}
}
