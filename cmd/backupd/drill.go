package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/backupd/backupd/internal/backupset"
	"github.com/backupd/backupd/internal/drill"
	"github.com/backupd/backupd/internal/humanize"
	"github.com/backupd/backupd/internal/keys"
	"github.com/backupd/backupd/internal/targets"
)

func init() {
	register(&command{name: "drill", summary: "restore a set into a scratch server, prove every table equal, report RTO and RPO ('drill history' lists past drills)", run: runDrill})
}

const drillUsage = `[--config FILE] [--policy NAME] [--set ID] [--json] [--identity FILE] [--threads N] [--no-mail] [--allow-unsigned]
       backupd drill history [--config FILE] [--policy NAME] [--json]

Restores the newest committed set of the policy (or --set) from one target — drill.from, or
the next target in rotation — into a scratch server (drill.scratch: a throwaway server started
from the local mariadbd/mysqld, or unique databases on drill.scratch.dsn), compares every
table's row count and checksum with the backup, runs drill.checks, restores the storage
snapshots into a temporary directory verifying every file, and measures RTO and RPO against
max_rto and max_rpo. Everything it created is removed afterwards, also when interrupted.

The report (text, or JSON with --json) goes to stdout, is stored on every target of the policy
under <policy>/drills/, and is mailed to drill.notify. Exit status: 0 PASS, 1 FAIL (or the
report could not be delivered), 2 usage or configuration error, 130 interrupted.`

func runDrill(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "history" {
		return runDrillHistory(ctx, args[1:], stdout, stderr)
	}
	fs := newFlagSet("drill", drillUsage, stdout)
	pf := addPolicyFlags(fs)
	setID := fs.String("set", "", "set ID to drill (default: the newest committed set on the target drilled)")
	asJSON := fs.Bool("json", false, "print the report as JSON instead of text")
	identity := fs.String("identity", "", "age identity file (default: encryption.identity_file)")
	threads := fs.Int("threads", runtime.NumCPU(), "loader connections (and downloads ahead)")
	noMail := fs.Bool("no-mail", false, "do not mail the report to drill.notify")
	verbose := fs.Bool("verbose", false, "log debug detail")
	allowUnsigned := addAllowUnsignedFlag(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *threads < 1 {
		return usageErrorf("--threads must be at least 1")
	}
	if *setID != "" && !backupset.ValidID(*setID) {
		return usageErrorf("--set %q is not a set ID (they look like 20261127T030000Z-3f9a): run 'backupd list' to see the sets", *setID)
	}
	cfg, p, err := pf.load()
	if err != nil {
		return err
	}
	ids, err := keys.Identities(cfg, *identity)
	if err != nil {
		return &operatorError{fmt.Errorf("cannot load the private key a drill decrypts the set with: %w", err)}
	}
	log := newLogger(ctx, stderr, *verbose)
	rep, err := drill.Run(ctx, drill.Options{
		Config: cfg, Policy: p, SetID: *setID, Identities: ids, Threads: *threads,
		Logger: log, Tool: "backupd " + buildVersion(), NoMail: *noMail, AllowUnsigned: *allowUnsigned,
		TargetOptions: targets.Options{Logger: log, Retry: restoreTargetRetry},
	})
	if ctx.Err() != nil {
		return fmt.Errorf("the drill was stopped before its verdict; everything it created was removed: %w", ctx.Err())
	}
	if rep == nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if jerr := enc.Encode(rep); jerr != nil {
			return jerr
		}
	} else {
		rep.WriteText(stdout)
	}
	var de *drill.DeliveryError
	if errors.As(err, &de) {
		return fmt.Errorf("the drill %s, but %w", map[bool]string{true: "PASSED", false: "FAILED"}[rep.Passed()], err)
	}
	if err != nil {
		return err
	}
	if !rep.Passed() {
		first := rep.Reasons[0]
		more := ""
		if len(rep.Reasons) > 1 {
			more = fmt.Sprintf(" (and %d more problem(s), listed above)", len(rep.Reasons)-1)
		}
		return fmt.Errorf("drill FAILED: %s%s", first, more)
	}
	return nil
}

func runDrillHistory(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("drill history", "[--config FILE] [--policy NAME] [--json]\n\nLists the policy's past drills, read from its targets.", stdout)
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
	dests, err := cfg.OpenTargets(p, targets.Options{Logger: log, Retry: restoreTargetRetry})
	if err != nil {
		return err
	}
	v, _, err := keys.Verifier(cfg) // only signed reports count
	if err != nil {
		return err
	}
	hist, err := drill.History(ctx, dests, p.Name, 0, v)
	if err != nil {
		if len(hist) == 0 {
			return &unreachableError{fmt.Errorf("the drill history cannot be read: %w", humanize.OneLine(err))}
		}
		fmt.Fprintf(stderr, "backupd drill history: warning: %v\n", humanize.OneLine(err))
	}
	if *asJSON {
		if hist == nil {
			hist = []drill.Summary{}
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(hist)
	}
	if len(hist) == 0 {
		fmt.Fprintf(stdout, "no drills of policy %s on %s yet; run 'backupd drill --policy %s'\n", p.Name, strings.Join(p.Targets, ", "), p.Name)
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STARTED (UTC)\tRESULT\tTARGET\tSET\tRTO\tRPO\tSIZE\tPROBLEM")
	for _, s := range hist {
		set, problem := s.SetID, ""
		if set == "" {
			set = "-"
		}
		if len(s.Reasons) > 0 {
			problem = s.Reasons[0]
			if r := []rune(problem); len(r) > 140 {
				problem = string(r[:137]) + "..."
			}
			if len(s.Reasons) > 1 {
				problem += fmt.Sprintf(" (+%d)", len(s.Reasons)-1)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.StartedAt.UTC().Format("2006-01-02 15:04:05"), s.Result, s.Target, set,
			shortDuration(s.RTOSeconds), shortDuration(s.RPOSeconds), humanize.Bytes(s.Bytes), problem)
	}
	return tw.Flush()
}

func shortDuration(seconds float64) string {
	d := time.Duration(seconds * float64(time.Second))
	if d >= time.Minute {
		return d.Round(time.Second).String()
	}
	return d.Round(100 * time.Millisecond).String()
}
