package main

import (
	"context"
	"fmt"
	"io"
	"runtime"

	"github.com/backupd/backupd/internal/backup"
	"github.com/backupd/backupd/internal/backupset"
	"github.com/backupd/backupd/internal/humanize"
	"github.com/backupd/backupd/internal/keys"
	"github.com/backupd/backupd/internal/restore"
	"github.com/backupd/backupd/internal/targets"
)

func init() {
	register(&command{name: "verify", summary: "download every object of a set and prove it intact (no database needed)", run: runVerify})
}

func runVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("verify", "[--config FILE] [--policy NAME] [--set ID] [--target NAME] [--identity FILE]", stdout)
	cfgPath := fs.String("config", "", "config file (default: the embedded default config)")
	policy := fs.String("policy", "", "policy name (may be omitted when the config has one policy)")
	setID := fs.String("set", "", "set ID (default: the newest committed set)")
	target := fs.String("target", "", "verify only the copy on this target (default: every target holding the set)")
	identity := fs.String("identity", "", "age identity file (default: encryption.identity_file)")
	threads := fs.Int("threads", runtime.NumCPU(), "objects checked in parallel")
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
	ids, err := keys.Identities(cfg, *identity)
	if err != nil {
		return err
	}
	log := newLogger(stderr, false)
	dests, err := backup.OpenTargets(cfg, p, targets.Options{Logger: log})
	if err != nil {
		return err
	}
	if *target != "" {
		dests, err = onlyTarget(dests, *target)
		if err != nil {
			return err
		}
	}
	found, err := backupset.Find(ctx, dests, p.Name, backupset.Query{ID: *setID})
	if err != nil {
		return err
	}
	m := found.Manifest
	fmt.Fprintf(stdout, "verifying set %s (%d objects, %s) on %d target(s)\n", m.SetID, len(m.Objects), humanize.Bytes(m.Bytes()), len(found.Holders))
	res, err := restore.Verify(ctx, m, found.Holders, ids, *threads, func(c restore.ObjectCheck) {
		if c.Err != nil {
			fmt.Fprintf(stdout, "FAIL  %s  %s: %v\n", c.Target, c.Object.Name, c.Err)
		} else {
			fmt.Fprintf(stdout, "ok    %s  %s\n", c.Target, c.Object.Name)
		}
	})
	fmt.Fprintf(stdout, "%d object copies checked, %d failed, %s in %s\n", res.Checked, res.Failed, humanize.Bytes(res.Bytes), res.Duration.Round(1e6))
	return err
}

// onlyTarget keeps the named target, or says which targets the policy has.
func onlyTarget(dests []backupset.Dest, name string) ([]backupset.Dest, error) {
	var names []string
	for _, d := range dests {
		if d.Name == name {
			return []backupset.Dest{d}, nil
		}
		names = append(names, d.Name)
	}
	return nil, usageErrorf("--target %q is not a target of this policy (it has %v)", name, names)
}
