package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/backupd/backupd/internal/backupset"
	"github.com/backupd/backupd/internal/config"
	"github.com/backupd/backupd/internal/files"
	"github.com/backupd/backupd/internal/humanize"
	"github.com/backupd/backupd/internal/keys"
	"github.com/backupd/backupd/internal/targets"
)

// storageRestore is `backupd restore --storage NAME`: one storage source of a set back into a
// directory (--to-dir) or a bucket (--to-target), every file verified against its hash.
type storageRestore struct {
	cfg       *config.Config
	policy    *config.Policy
	source    string
	toDir     string
	toTarget  string
	subpath   string
	overwrite bool
	dryRun    bool
	yes       bool
	from      string
	set       backupset.Query
	identity  string
	threads   int
	log       *slog.Logger
}

func (r *storageRestore) run(ctx context.Context, stdout io.Writer) error {
	if (r.toDir == "") == (r.toTarget == "") {
		return usageErrorf("--storage needs exactly one destination: --to-dir DIR or --to-target NAME")
	}
	var names []string
	for _, s := range r.policy.Storage {
		names = append(names, s.Name)
	}
	if !contains(names, r.source) {
		return usageErrorf("--storage %q is not a storage source of policy %s (it has: %s)", r.source, r.policy.Name, strings.Join(names, ", "))
	}
	ids, err := keys.Identities(r.cfg, r.identity)
	if err != nil {
		return &operatorError{fmt.Errorf("cannot load the private key to decrypt the set: %w", err)}
	}
	dests, warns, err := openRestoreTargets(r.cfg, r.policy, r.from, r.log)
	if err != nil {
		return err
	}
	for _, w := range warns {
		r.log.Warn(w)
	}
	found, err := backupset.Find(ctx, dests, r.policy.Name, r.set)
	if err != nil {
		return classifyRestoreError(err)
	}
	m := found.Manifest
	desc, err := files.ParseDescription(m.Files)
	if err != nil {
		return fmt.Errorf("read the storage part of set %s: %w", m.SetID, err)
	}
	var src *files.SourceSummary
	for i := range desc.Sources {
		if desc.Sources[i].Name == r.source {
			src = &desc.Sources[i]
		}
	}
	if src == nil {
		return &operatorError{fmt.Errorf("set %s holds no snapshot of storage %q (it was added to the policy later?); pick an older or newer set with --set", m.SetID, r.source)}
	}

	var dest files.Destination
	where := ""
	if r.toDir != "" {
		abs, err := filepath.Abs(r.toDir)
		if err != nil {
			return usageErrorf("--to-dir: %v", err)
		}
		dest, where = files.ToDir(abs), "directory "+abs
	} else {
		tc, ok := r.cfg.Targets[r.toTarget]
		if !ok {
			return usageErrorf("--to-target %q is not a target in %s", r.toTarget, r.cfg.File)
		}
		t, err := targets.Open(r.toTarget, tc.Spec(), targets.Options{Logger: r.log})
		if err != nil {
			return err
		}
		dest, where = files.ToTarget(r.toTarget, t, ""), "target "+r.toTarget
	}
	what := "the whole tree"
	if r.subpath != "" {
		what = r.subpath
	}
	fmt.Fprintf(stdout, "Restore storage %s (%s) of set %s, finished %s (%s ago)\n  %d files, %s — %s\n  into %s",
		r.source, src.Kind, m.SetID, m.FinishedAt.Local().Format("2006-01-02 15:04:05"),
		restoreNow().Sub(m.FinishedAt).Round(1e9), src.Files, humanize.Bytes(src.Bytes), what, where)
	if r.overwrite {
		fmt.Fprint(stdout, ", replacing what is in the way")
	}
	fmt.Fprintln(stdout)
	if r.dryRun {
		fmt.Fprintln(stdout, "dry run: nothing was changed")
		return nil
	}
	if !r.yes {
		fmt.Fprint(stdout, "Type yes to restore: ")
		line, _ := readLine(restoreStdin)
		if strings.TrimSpace(strings.ToLower(line)) != "yes" {
			return &operatorError{fmt.Errorf("not confirmed: nothing was changed")}
		}
	}
	spool := filepath.Join(r.cfg.StateDir, "spool")
	if err := os.MkdirAll(spool, 0o700); err != nil {
		spool = ""
	}
	res, err := files.Restore(ctx, found.Holders, dest, files.RestoreOptions{
		Policy: r.policy.Name, SetID: m.SetID, Source: r.source, Identities: ids,
		Subpath: r.subpath, Overwrite: r.overwrite, SpoolDir: spool, Workers: r.threads, Logger: r.log,
	})
	if errors.Is(err, files.ErrNotEmpty) {
		return &operatorError{err}
	}
	if err != nil {
		return classifyRestoreError(err)
	}
	for _, w := range res.Warnings {
		r.log.Warn("storage restore", "warning", w)
	}
	fmt.Fprintf(stdout, "restored %d files, %d directories, %d symlinks (%s, every file verified) in %s\n",
		res.Files, res.Dirs, res.Symlinks, humanize.Bytes(res.Bytes), res.Duration.Round(1e6))
	if len(res.Skipped) > 0 {
		fmt.Fprintf(stdout, "%d path(s) were skipped when the snapshot was taken (they kept changing): %s\n", len(res.Skipped), strings.Join(res.Skipped, ", "))
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// readLine reads one line of an answer.
func readLine(r io.Reader) (string, error) {
	var b strings.Builder
	buf := make([]byte, 1)
	for {
		n, err := r.Read(buf)
		if n == 1 {
			if buf[0] == '\n' {
				return b.String(), nil
			}
			b.WriteByte(buf[0])
		}
		if err != nil {
			return b.String(), err
		}
	}
}

type storageRestoreFlags struct {
	pf                policyFlags
	setID, before, to string
	r                 storageRestore
	verbose           bool
}

func runStorageRestore(ctx context.Context, stdout, stderr io.Writer, f storageRestoreFlags) error {
	if f.to != "" {
		return usageErrorf("--to names a database server; a storage restore goes --to-dir or --to-target")
	}
	if f.setID != "" && f.before != "" {
		return usageErrorf("--set and --before both choose the set: give one of them")
	}
	r := f.r
	r.set.ID = f.setID
	if f.before != "" {
		t, err := parseBefore(f.before, restoreNow())
		if err != nil {
			return usageErrorf("--before: %v", err)
		}
		r.set.Before = t
	}
	if !r.dryRun && !r.yes && !restoreStdinIsTerminal() {
		return &operatorError{errRestoreNeedsConfirmation}
	}
	cfg, p, err := f.pf.load()
	if err != nil {
		return err
	}
	r.cfg, r.policy, r.log = cfg, p, newLogger(ctx, stderr, f.verbose)
	return r.run(ctx, stdout)
}
