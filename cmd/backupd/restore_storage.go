package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/backupd/backupd/internal/backupset"
	"github.com/backupd/backupd/internal/config"
	"github.com/backupd/backupd/internal/humanize"
	"github.com/backupd/backupd/internal/keys"
	"github.com/backupd/backupd/internal/storage"
	"github.com/backupd/backupd/internal/targets"
)

// storageRestore is `backupd restore storage NAME` (also spelled `backupd restore --storage
// NAME`): one storage source of a set back into a directory (--to-dir) or a bucket
// (--to-target), every file verified against its hash.
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
	for _, w := range found.Warnings {
		r.log.Warn(w)
	}
	m := found.Manifest
	if m.Unsigned {
		fmt.Fprintf(stdout, "WARNING: %s (accepted because of --allow-unsigned)\n", backupset.UnsignedWarning)
	}
	desc, err := storage.ParseDescription(m.Files)
	if err != nil {
		return fmt.Errorf("read the storage part of set %s: %w", m.SetID, err)
	}
	var src *storage.SourceSummary
	for i := range desc.Sources {
		if desc.Sources[i].Name == r.source {
			src = &desc.Sources[i]
		}
	}
	if src == nil {
		return &operatorError{fmt.Errorf("set %s holds no snapshot of storage %q (it was added to the policy later?); pick an older or newer set with --set", m.SetID, r.source)}
	}

	var dest storage.Destination
	where := ""
	if r.toDir != "" {
		abs, err := filepath.Abs(r.toDir)
		if err != nil {
			return usageErrorf("--to-dir: %v", err)
		}
		dest, where = storage.ToDir(abs), "directory "+abs
	} else {
		tc, ok := r.cfg.Targets[r.toTarget]
		if !ok {
			return usageErrorf("--to-target %q is not a target in %s", r.toTarget, r.cfg.File)
		}
		t, err := targets.Open(r.toTarget, tc.Spec(), targets.Options{Logger: r.log})
		if err != nil {
			return err
		}
		dest, where = storage.ToTarget(r.toTarget, t, ""), "target "+r.toTarget
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
	res, err := storage.Restore(ctx, found.Holders, dest, storage.RestoreOptions{
		Policy: r.policy.Name, SetID: m.SetID, Source: r.source, Identities: ids,
		Subpath: r.subpath, Overwrite: r.overwrite, SpoolDir: spool, Workers: r.threads, Logger: r.log,
		Trust: r.set.Trust,
	})
	if errors.Is(err, storage.ErrNotEmpty) {
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

const restoreStorageUsage = `NAME (--to-dir DIR | --to-target TARGET) [--path SUBPATH] [--overwrite]
       [--config FILE] [--policy NAME] [--set ID | --before TIME] [--from TARGET] [--threads N]
       [--identity FILE] [--dry-run] [--yes] [--allow-unsigned]

Restores the storage source NAME of the newest committed set (or --set, or the newest finished
before --before) into an empty directory or into a target of the config (a bucket), and checks
every file against its SHA-256. On a terminal the plan is shown and you are asked; otherwise
--yes is required. The same restore is also spelled: backupd restore --storage NAME ...`

// runRestoreStorage is `backupd restore storage NAME`: the storage restore with only its own
// options, instead of among the database restore's.
func runRestoreStorage(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("restore storage", restoreStorageUsage, stdout)
	pf := addPolicyFlags(fs)
	sf := addSetFlags(fs)
	var r storageRestore
	addStorageDestFlags(fs, &r)
	fs.IntVar(&r.threads, "threads", runtime.NumCPU(), "packs downloaded at once")
	names, err := parseFlagsAndArgs(fs, args)
	if err != nil {
		return err
	}
	if len(names) != 1 {
		return usageErrorf("restore storage needs the name of one storage source of the policy, e.g. backupd restore storage uploads --to-dir DIR; got %d", len(names))
	}
	r.source = names[0]
	return runStorageRestore(ctx, stdout, stderr, storageRestoreFlags{pf: pf, sf: sf, r: r})
}

// storageDestFlagNames are the options only a storage restore has, for the database restore's
// --help, which lists them apart.
var storageDestFlagNames = []string{"to-dir", "to-target", "path", "overwrite"}

// addStorageDestFlags adds the options only a storage restore has: where the files go, and which.
func addStorageDestFlags(fs *flag.FlagSet, r *storageRestore) {
	fs.StringVar(&r.toDir, "to-dir", "", "the directory to restore into (must be empty unless --overwrite)")
	fs.StringVar(&r.toTarget, "to-target", "", "a target of the config (e.g. a bucket) to restore the files into")
	fs.StringVar(&r.subpath, "path", "", "restore only this file or directory of the tree")
	fs.BoolVar(&r.overwrite, "overwrite", false, "restore into a non-empty destination, replacing what is in the way")
}

// storageRestoreFlags is what both spellings of a storage restore parsed.
type storageRestoreFlags struct {
	pf policyFlags
	sf setFlags
	to string // --to of `backupd restore --storage`, which a storage restore refuses
	r  storageRestore
}

func runStorageRestore(ctx context.Context, stdout, stderr io.Writer, f storageRestoreFlags) error {
	if f.to != "" {
		return usageErrorf("--to names a database server; a storage restore goes --to-dir or --to-target")
	}
	r := f.r
	q, err := f.sf.query()
	if err != nil {
		return err
	}
	r.set = q
	r.from, r.identity, r.dryRun, r.yes = *f.sf.from, *f.sf.identity, *f.sf.dryRun, *f.sf.yes
	if err := f.sf.confirmable(restoreStdinIsTerminal()); err != nil {
		return err
	}
	cfg, p, err := f.pf.load()
	if err != nil {
		return err
	}
	if r.set.Trust, err = trustFor(cfg, *f.sf.allowUnsigned); err != nil {
		return err
	}
	r.cfg, r.policy, r.log = cfg, p, newLogger(ctx, stderr, *f.sf.verbose)
	return r.run(ctx, stdout)
}
