package main

import (
	"context"
	"io"

	"github.com/backupd/backupd/internal/daemon"
)

func init() {
	register(&command{name: "prune", summary: "apply a policy's retention now; --dry-run shows keep or delete, and why, for every set", run: runPrune})
}

func runPrune(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("prune", "[--config FILE] [--policy NAME] [--dry-run]", stdout)
	cfgPath := fs.String("config", "", "config file (default: the embedded default config)")
	policy := fs.String("policy", "", "policy name (may be omitted when the config has one policy)")
	dryRun := fs.Bool("dry-run", false, "decide and show, delete nothing")
	verbose := fs.Bool("verbose", false, "log debug detail")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	p, err := pickPolicy(cfg, *policy)
	if err != nil {
		return err
	}
	log := newLogger(stderr, *verbose)
	rep, err := daemon.Prune(ctx, cfg, p, daemon.PruneOptions{
		DryRun:    *dryRun,
		Logger:    log,
		StorageGC: storageGC(log),
	})
	if rep != nil {
		rep.Write(stdout)
	}
	return err
}
