package main

import (
	"context"
	"io"

	"github.com/backupd/backupd/internal/prune"
)

func init() {
	register(&command{name: "prune", summary: "apply a policy's retention now; --dry-run shows keep or delete, and why, for every set", run: runPrune})
}

func runPrune(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("prune", "[--config FILE] [--policy NAME] [--dry-run]", stdout)
	pf := addPolicyFlags(fs)
	dryRun := fs.Bool("dry-run", false, "decide and show, delete nothing")
	verbose := fs.Bool("verbose", false, "log debug detail")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, p, err := pf.load()
	if err != nil {
		return err
	}
	log := newLogger(ctx, stderr, *verbose)
	rep, err := prune.Run(ctx, cfg, p, prune.Options{
		DryRun:    *dryRun,
		Logger:    log,
		StorageGC: storageGC(log),
	})
	if rep != nil {
		rep.Write(stdout)
	}
	return err
}
