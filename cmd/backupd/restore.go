package main

import (
	"bufio"
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
	"time"

	"golang.org/x/term"

	"github.com/backupd/backupd/internal/backupset"
	"github.com/backupd/backupd/internal/config"
	"github.com/backupd/backupd/internal/humanize"
	"github.com/backupd/backupd/internal/keys"
	"github.com/backupd/backupd/internal/restore"
	"github.com/backupd/backupd/internal/targets"
)

func init() {
	register(&command{name: "restore", summary: "restore a set's databases (or some tables) into a MySQL/MariaDB server, or ('restore storage') its storage into a directory or bucket, verified", run: runRestore})
}

// The confirmation prompt reads stdin; tests replace these.
var (
	restoreStdin                = io.Reader(os.Stdin)
	restoreStdinIsTerminal      = func() bool { return term.IsTerminal(int(os.Stdin.Fd())) }
	restoreNow                  = time.Now
	restoreProgressEvery        = 2 * time.Second
	restoreProgressLogEvery     = 30 * time.Second
	restoreTargetRetry          = targets.RetryPolicy{}
	errRestoreNeedsConfirmation = errors.New("refusing to restore without confirmation: there is no terminal to ask on; pass --yes to confirm, or --dry-run to see the plan")
)

const restoreUsage = `--to DSN [--config FILE] [--policy NAME] [--set ID | --before TIME]
       [--database SRC [--as DEST]] [--tables db.t1,db.t2] [--from TARGET] [--threads N]
       [--identity FILE] [--drop-existing] [--users] [--dry-run] [--yes] [--no-verify] [--allow-unsigned]
   or: backupd restore storage NAME (--to-dir DIR | --to-target NAME) [--path SUBPATH]
       [--overwrite] [--config FILE] [--policy NAME] [--set ID | --before TIME] [--yes] [--dry-run] [--allow-unsigned]
       (also spelled: backupd restore --storage NAME ...; see backupd restore storage --help)

Restores the newest committed set (or --set, or the newest finished before --before) into the
server --to names. Nothing in the destination is changed unless the plan is confirmed: on a
terminal it is shown and you are asked; otherwise --yes is required. Anything the restore
would create that already exists stops it, unless --drop-existing. Every restored table's row
count and checksum are compared with the backup; until that has passed, each destination
database holds a table ` + restore.MarkerTable + ` saying the restore is incomplete.
See docs/restore.md for the runbook.`

func runRestore(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "storage" {
		return runRestoreStorage(ctx, args[1:], stdout, stderr)
	}
	fs := newFlagSet("restore", restoreUsage, stdout)
	pf := addPolicyFlags(fs)
	to := fs.String("to", "", "destination server DSN, without a database: user:password@tcp(host:3306)/ (required; the password is never printed)")
	sf := addSetFlags(fs)
	database := fs.String("database", "", "restore only this database of the set")
	as := fs.String("as", "", "restore the database under this name (needs --database when the set has several)")
	tables := fs.String("tables", "", "restore only these tables, views or sequences (comma-separated db.table), leaving the rest of the destination database alone")
	threads := fs.Int("threads", runtime.NumCPU(), "loader connections (and downloads ahead)")
	dropExisting := fs.Bool("drop-existing", false, "drop the tables, views, routines, triggers and events the restore would create again, instead of refusing")
	users := fs.Bool("users", false, "also restore the set's users, roles and grants (when it has them)")
	noVerify := fs.Bool("no-verify", false, "skip comparing row counts and checksums with the backup")
	deferIndexes := fs.Bool("defer-indexes", true, "build secondary indexes after loading a table's rows (faster for large tables)")
	loadData := fs.Bool("load-data", true, "send rows with LOAD DATA LOCAL INFILE where the server allows it (faster); false executes the backup's INSERT statements as written")
	// Today's spelling of `backupd restore storage NAME`, kept working; --help lists it apart.
	storageName := fs.String("storage", "", "restore this storage source of the set instead of databases (with --to-dir or --to-target); the same as backupd restore storage NAME")
	var sr storageRestore
	addStorageDestFlags(fs, &sr)
	groupedUsage(fs, "restore", restoreUsage, stdout, flagGroup{
		title: "Storage restore options (also: backupd restore storage NAME --help):",
		names: append([]string{"storage"}, storageDestFlagNames...),
	})
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *storageName == "" && (sr.toDir != "" || sr.toTarget != "" || sr.subpath != "" || sr.overwrite) {
		return usageErrorf("--to-dir, --to-target, --path and --overwrite go with --storage NAME")
	}
	if *storageName != "" {
		sr.source, sr.threads = *storageName, *threads
		return runStorageRestore(ctx, stdout, stderr, storageRestoreFlags{pf: pf, sf: sf, to: *to, r: sr})
	}
	if *to == "" {
		return usageErrorf("--to is required: the server to restore into, e.g. --to 'root@tcp(127.0.0.1:3306)/' (or restore storage NAME --to-dir DIR for files)")
	}
	if *threads < 1 {
		return usageErrorf("--threads must be at least 1")
	}
	query, err := sf.query()
	if err != nil {
		return err
	}
	interactive := restoreStdinIsTerminal()
	if err := sf.confirmable(interactive); err != nil {
		return err
	}
	cfg, p, err := pf.load()
	if err != nil {
		return err
	}
	ids, err := keys.Identities(cfg, *sf.identity)
	if err != nil {
		return &operatorError{fmt.Errorf("cannot load the private key to decrypt the set: %w", err)}
	}
	if query.Trust, err = trustFor(cfg, *sf.allowUnsigned); err != nil {
		return err
	}
	log := newLogger(ctx, stderr, *sf.verbose)
	dests, warns, err := openRestoreTargets(cfg, p, *sf.from, log)
	if err != nil {
		return err
	}
	for _, w := range warns {
		log.Warn(w)
	}
	var tableList []string
	if *tables != "" {
		tableList = strings.Split(*tables, ",")
	}
	spool := filepath.Join(cfg.StateDir, "spool")
	if err := os.MkdirAll(spool, 0o700); err != nil {
		spool = "" // the system temp directory
	}
	opts := restore.Options{
		Policy:     p.Name,
		Targets:    dests,
		Set:        query,
		Identities: ids,
		To:         *to,
		Selection: restore.Selection{
			Database: *database, As: *as, Tables: tableList, Users: *users,
		},
		Threads:      *threads,
		DropExisting: *dropExisting,
		NoVerify:     *noVerify,
		SpoolDir:     spool,
		Logger:       log,
		Now:          restoreNow,
	}
	opts.IndexesFirst = !*deferIndexes
	opts.InsertsOnly = !*loadData
	if isTerminal(stderr) {
		opts.Progress = progressPrinter(stderr)
		opts.ProgressEvery = restoreProgressEvery
	} else {
		opts.Progress = progressLogger(log)
		opts.ProgressEvery = restoreProgressLogEvery
	}

	plan, err := restore.Prepare(ctx, opts)
	if err != nil {
		return classifyRestoreError(err)
	}
	defer plan.Close()
	plan.Describe(stdout, restoreNow())
	if *sf.dryRun {
		fmt.Fprintln(stdout, "dry run: nothing was changed")
		return nil
	}
	if !*sf.yes {
		if err := confirmRestore(stdout, plan); err != nil {
			return err
		}
	}
	res, err := plan.Execute(ctx)
	printRestoreSummary(stdout, plan, res, err)
	if err != nil {
		return classifyRestoreError(err)
	}
	return nil
}

// openRestoreTargets opens the policy's targets with --from first. A dir target whose directory
// does not exist (an unmounted backup disk) is left out with a warning, since it would otherwise
// look like a target without sets; when nothing is left, that is the error.
func openRestoreTargets(cfg *config.Config, p *config.Policy, from string, log *slog.Logger) ([]backupset.Dest, []string, error) {
	dests, err := cfg.OpenTargets(p, targets.Options{Logger: log, Retry: restoreTargetRetry})
	if err != nil {
		return nil, nil, err
	}
	if from != "" {
		i := -1
		for j, d := range dests {
			if d.Name == from {
				i = j
			}
		}
		if i < 0 {
			return nil, nil, usageErrorf("--from %q is not a target of policy %s (it has %s)", from, p.Name, strings.Join(p.Targets, ", "))
		}
		dests = append([]backupset.Dest{dests[i]}, append(dests[:i:i], dests[i+1:]...)...)
	}
	var kept []backupset.Dest
	var warns, missing []string
	for _, d := range dests {
		if tc := cfg.Targets[d.Name]; tc != nil && tc.Type == config.TargetDir {
			if st, err := os.Stat(tc.Path); err != nil || !st.IsDir() {
				msg := fmt.Sprintf("target %s: directory %s does not exist or cannot be read (is the backup disk mounted?)", d.Name, tc.Path)
				missing = append(missing, msg)
				warns = append(warns, msg+"; restoring from the other targets")
				continue
			}
		}
		kept = append(kept, d)
	}
	if len(kept) == 0 {
		return nil, nil, &unreachableError{fmt.Errorf("no target of policy %s can be read: %s", p.Name, strings.Join(missing, "; "))}
	}
	return kept, warns, nil
}

// classifyRestoreError maps the restore's error kinds onto main's exit codes.
func classifyRestoreError(err error) error {
	err = humanize.OneLine(err)
	switch {
	case errors.Is(err, context.Canceled):
		return err
	case errors.Is(err, restore.ErrUnreachable):
		return &unreachableError{err}
	case errors.Is(err, restore.ErrNoSet), errors.Is(err, restore.ErrWrongIdentity), errors.Is(err, restore.ErrExists),
		errors.Is(err, restore.ErrDestination), errors.Is(err, restore.ErrSelection):
		return &operatorError{err}
	}
	return err
}

// confirmRestore asks on the terminal.
func confirmRestore(w io.Writer, plan *restore.Plan) error {
	if len(plan.Drops) > 0 {
		fmt.Fprintf(w, "\nThis first DROPS the %d object(s) listed above.\n", len(plan.Drops))
	}
	fmt.Fprint(w, "Type yes to restore: ")
	line, err := bufio.NewReader(restoreStdin).ReadString('\n')
	if err != nil && line == "" {
		return &operatorError{errors.New("no answer: nothing was changed")}
	}
	if strings.TrimSpace(strings.ToLower(line)) != "yes" {
		return &operatorError{errors.New("not confirmed: nothing was changed")}
	}
	return nil
}

// setFlags are the options every restore has, databases or storage: which set, from where,
// with which key, and whether to ask first.
type setFlags struct {
	setID, before, from, identity *string
	dryRun, yes, verbose          *bool
	allowUnsigned                 *bool
}

func addSetFlags(fs *flag.FlagSet) setFlags {
	return setFlags{
		setID:         fs.String("set", "", "set ID to restore (default: the newest committed set)"),
		before:        fs.String("before", "", "restore the newest set finished before TIME: 2026-11-27T03:00:00Z, '2026-11-27 03:00' (local time), 2026-11-27, or a duration ago such as 2h"),
		from:          fs.String("from", "", "read from this target first (default: the policy's order)"),
		identity:      fs.String("identity", "", "age identity file (default: encryption.identity_file)"),
		dryRun:        fs.Bool("dry-run", false, "check everything, print the plan and exit without changing anything"),
		yes:           fs.Bool("yes", false, "do not ask for confirmation"),
		verbose:       fs.Bool("verbose", false, "log debug detail"),
		allowUnsigned: addAllowUnsignedFlag(fs),
	}
}

func addAllowUnsignedFlag(fs *flag.FlagSet) *bool {
	return fs.Bool("allow-unsigned", false, "also accept a set that is not signed at all (written before backupd signed its sets); "+
		"a badly signed set, or one signed by a key not in signing.trusted_keys, is still refused")
}

// trustFor is the trust a reading command judges sets with: the config's trusted keys, and
// with --allow-unsigned also sets without any signature.
func trustFor(cfg *config.Config, allowUnsigned bool) (backupset.Trust, error) {
	v, _, err := keys.Verifier(cfg)
	if err != nil {
		return nil, err
	}
	if allowUnsigned {
		return backupset.AllowUnsigned(v), nil
	}
	return v, nil
}

// query is the set that --set or --before chooses.
func (f setFlags) query() (backupset.Query, error) {
	if *f.setID != "" && *f.before != "" {
		return backupset.Query{}, usageErrorf("--set and --before both choose the set: give one of them")
	}
	q := backupset.Query{ID: *f.setID}
	if *f.before != "" {
		t, err := parseBefore(*f.before, restoreNow())
		if err != nil {
			return backupset.Query{}, usageErrorf("--before: %v", err)
		}
		q.Before = t
	}
	return q, nil
}

// confirmable refuses, before anything is read, a restore that could be neither shown nor
// confirmed: without a terminal to ask on, --yes or --dry-run must say what to do.
func (f setFlags) confirmable(interactive bool) error {
	if !*f.dryRun && !*f.yes && !interactive {
		return &operatorError{errRestoreNeedsConfirmation}
	}
	return nil
}

// parseBefore reads --before: an RFC 3339 time, a local date and time, a local date, or a
// duration meaning that long ago.
func parseBefore(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if d, err := time.ParseDuration(s); err == nil {
		if d <= 0 {
			return time.Time{}, fmt.Errorf("%q: a duration must be positive (it means that long ago)", s)
		}
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02 15:04:05", "2006-01-02T15:04:05", "2006-01-02 15:04", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a time: use 2026-11-27T03:00:00Z, '2026-11-27 03:00' (local time), 2026-11-27 or a duration such as 90m", s)
}

// progressPrinter prints one plain line per report on a terminal.
func progressPrinter(w io.Writer) func(restore.Progress) {
	return func(p restore.Progress) {
		if p.Phase == restore.PhaseDone {
			return
		}
		pct := 0.0
		if p.TotalBytes > 0 {
			pct = 100 * float64(p.Bytes) / float64(p.TotalBytes)
		}
		rate := 0.0
		if s := p.Elapsed.Seconds(); s > 0 {
			rate = float64(p.Bytes) / s
		}
		eta := "-"
		if p.ETA > 0 {
			eta = p.ETA.String()
		}
		fmt.Fprintf(w, "restore: %-6s %s of %s (%.0f%%), tables %d/%d loaded, %d verified, %s/s, elapsed %s, ETA %s\n",
			p.Phase, humanize.Bytes(p.Bytes), humanize.Bytes(p.TotalBytes), pct, p.TablesLoaded, p.Tables, p.TablesVerified,
			humanize.Bytes(int64(rate)), p.Elapsed.Round(time.Second), eta)
	}
}

// progressLogger logs progress as JSON when there is no terminal.
func progressLogger(log *slog.Logger) func(restore.Progress) {
	return func(p restore.Progress) {
		if p.Phase == restore.PhaseDone {
			return
		}
		log.Info("restore progress", "phase", p.Phase, "bytes", p.Bytes, "total_bytes", p.TotalBytes,
			"tables_loaded", p.TablesLoaded, "tables_verified", p.TablesVerified, "tables", p.Tables,
			"elapsed", p.Elapsed.Round(time.Second), "eta", p.ETA.Round(time.Second))
	}
}

func printRestoreSummary(w io.Writer, plan *restore.Plan, res *restore.Result, err error) {
	if res == nil {
		return
	}
	var dbs []string
	for _, dp := range plan.Databases {
		dbs = append(dbs, "`"+dp.Dest+"`")
	}
	status := "restored"
	if err != nil {
		status = "FAILED restoring"
	}
	fmt.Fprintf(w, "%s set %s into %s in %s: %d tables, %d rows, %s of SQL at %s/s (downloaded %s)\n",
		status, res.SetID, strings.Join(dbs, ", "), res.Duration.Round(time.Millisecond), res.Tables, res.Rows,
		humanize.Bytes(res.Bytes), humanize.Bytes(int64(res.Throughput())), humanize.Bytes(res.Downloaded))
	switch {
	case !plan.Verify:
		fmt.Fprintln(w, "  NOT verified (--no-verify)")
	case err == nil:
		fmt.Fprintf(w, "  verified: %d tables match the backup's row counts and checksums\n", res.Verified)
	}
	if res.Rows > 0 {
		fmt.Fprintf(w, "  rows sent with LOAD DATA LOCAL INFILE: %d of %d (the others as the backup's INSERT statements)\n", res.RowsLoadData, res.Rows)
	}
	for _, m := range res.Mismatches {
		fmt.Fprintf(w, "  MISMATCH: %s\n", m)
	}
	for _, f := range res.Fallbacks {
		fmt.Fprintf(w, "  read from a fallback target: %s\n", f)
	}
	if len(res.Incomplete) > 0 {
		fmt.Fprintf(w, "  left marked incomplete (table %s): %s\n", restore.MarkerTable, strings.Join(res.Incomplete, ", "))
	}
}
