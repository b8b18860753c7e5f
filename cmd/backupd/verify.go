package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"

	"github.com/backupd/backupd/internal/backupset"
	"github.com/backupd/backupd/internal/humanize"
	"github.com/backupd/backupd/internal/keys"
	"github.com/backupd/backupd/internal/restore"
)

func init() {
	register(&command{name: "verify", summary: "download every object of a set and prove it intact (no database needed)", run: runVerify})
}

func runVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("verify", "[--config FILE] [--policy NAME] [--set ID] [--target NAME] [--identity FILE] [--allow-unsigned]", stdout)
	pf := addPolicyFlags(fs)
	setID := fs.String("set", "", "set ID (default: the newest committed set)")
	target := fs.String("target", "", "verify only the copy on this target (default: every target holding the set)")
	identity := fs.String("identity", "", "age identity file (default: encryption.identity_file)")
	threads := fs.Int("threads", runtime.NumCPU(), "objects checked in parallel")
	allowUnsigned := addAllowUnsignedFlag(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, p, err := pf.load()
	if err != nil {
		return err
	}
	ids, err := keys.Identities(cfg, *identity)
	if err != nil {
		return &operatorError{fmt.Errorf("cannot load the private key to decrypt the set: %w", err)}
	}
	log := newLogger(ctx, stderr, false)
	dests, warns, err := openRestoreTargets(cfg, p, "", log)
	if err != nil {
		return err
	}
	if *target != "" {
		dests, err = onlyTarget(dests, *target)
		if err != nil {
			return err
		}
	}
	trust, err := trustFor(cfg, *allowUnsigned)
	if err != nil {
		return err
	}
	found, err := backupset.Find(ctx, dests, p.Name, backupset.Query{ID: *setID, Trust: trust})
	if err != nil {
		return classifyRestoreError(err)
	}
	m, holders, findWarns := found.Manifest, found.Holders, found.Warnings
	for _, w := range append(warns, findWarns...) {
		fmt.Fprintf(stdout, "WARN  %s\n", w)
	}
	if m.Unsigned {
		log.Warn(backupset.UnsignedWarning, "set", m.SetID)
	}
	if len(holders) < len(dests) {
		var missing []string
		for _, d := range dests {
			if !slices.ContainsFunc(holders, func(h backupset.Dest) bool { return h.Name == d.Name }) {
				missing = append(missing, d.Name)
			}
		}
		fmt.Fprintf(stdout, "WARN  set %s is not on target(s) %s\n", m.SetID, strings.Join(missing, ", "))
	}
	fmt.Fprintf(stdout, "verifying set %s (%d objects, %s) on %d target(s)\n", m.SetID, len(m.Objects), humanize.Bytes(m.Bytes()), len(holders))
	res, err := restore.Verify(ctx, m, holders, ids, *threads, func(c restore.ObjectCheck) {
		where := c.Target
		if where == "" {
			where = "manifest"
		}
		if c.Err != nil {
			fmt.Fprintf(stdout, "FAIL  %s  %s: %v\n", where, c.Object.Name, humanize.OneLine(c.Err))
		} else {
			fmt.Fprintf(stdout, "ok    %s  %s\n", where, c.Object.Name)
		}
	})
	fmt.Fprintf(stdout, "%d object copies checked, %d failed, %s in %s\n", res.Checked, res.Failed, humanize.Bytes(res.Bytes), res.Duration.Round(1e6))
	if err != nil {
		return classifyRestoreError(err)
	}
	return nil
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
