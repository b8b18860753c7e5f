// Package prune applies a policy's retention to its targets: which sets to keep (package
// retention decides, as a pure function), deleting the rest, collecting sets that never
// committed, and then the storage blobs no set references. The daemon runs it after each
// backup, and `backupd prune` on demand.
package prune

import (
	"context"
	"errors"
	"fmt"
	"github.com/backupd/backupd/internal/keys"
	"github.com/backupd/backupd/internal/signing"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/backupd/backupd/internal/backupset"
	"github.com/backupd/backupd/internal/config"
	"github.com/backupd/backupd/internal/drill"
	"github.com/backupd/backupd/internal/retention"
	"github.com/backupd/backupd/internal/schedule"
	"github.com/backupd/backupd/internal/targets"
)

// StorageGC collects the storage-snapshot blobs of a policy (<policy>/blobs/) that no
// committed set references any more. Run calls it on each target after deleting sets.
// The CLI and the daemon pass one that runs storage.GC; without one, Run reports that it
// skipped the step.
// trust is what decides which sets are committed (backupset.Committed).
type StorageGC func(ctx context.Context, target string, t backupset.Target, policy string, trust backupset.Trust, dryRun bool) (summary string, err error)

// Options tune one retention run.
type Options struct {
	DryRun  bool             // decide and report, delete nothing
	Now     func() time.Time // injected clock; time.Now when nil
	Logger  *slog.Logger
	Metrics *targets.Metrics
	// SkipTargets names targets not to apply retention to, with the reason: the daemon passes
	// those where the backup that just ran failed.
	SkipTargets map[string]string
	// Protected keeps sets this process is using (a running drill), by ID, with the reason.
	// Sets used by other processes and hosts are protected by markers on the targets.
	Protected map[string]string
	StorageGC StorageGC // nil: storage snapshots are not collected
	// Trust verifies the drill reports that prove sets restorable; nil loads the config's
	// trusted keys.
	Trust *signing.Verifier
}

// Report is what one retention run decided and did, target by target.
type Report struct {
	Policy    string
	Retention string // the retention policy, as people read it; empty when none is configured
	DryRun    bool
	Targets   []*TargetReport
}

// TargetReport is the retention run on one target.
type TargetReport struct {
	Target string
	// Skipped says why retention was not applied here (nothing was deleted by it); garbage
	// collection of uncommitted sets may still have run.
	Skipped   string
	Decisions []retention.Decision // newest first; empty when skipped
	Deleted   []string             // sets deleted (dry run: that would be), oldest first
	Collected []string             // uncommitted sets removed by garbage collection
	GCNotes   []string             // one line per uncommitted set collected or left
	Storage   string               // the storage GC's summary, or why it did not run
	Committed int                  // committed sets left on the target
	Errs      []error
}

// protectMarkerGrace: expired protection markers are deleted once this much past expiry.
const protectMarkerGrace = time.Hour

// Run applies a policy's retention on every one of its targets: the grandfather-father-son
// selection of package retention, never deleting the newest committed set, the newest set
// that passed a restoration drill, a set protected by a running restore or drill, or a set
// still under object lock; never applying retention on a target that lacks the newest committed set (its latest backup failed there) or that the
// caller names in SkipTargets. It also garbage-collects uncommitted sets older than the
// policy's uncommitted_grace, and then storage blobs through StorageGC. The error joins every
// target's failures; the report is complete either way.
func Run(ctx context.Context, cfg *config.Config, p *config.Policy, opts Options) (*Report, error) {
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("policy", p.Name)
	sched, err := schedule.Parse(p.Schedule)
	if err != nil {
		return nil, err
	}
	rpol := retention.Policy{
		KeepLast: p.Retention.KeepLast, Hourly: p.Retention.Hourly, Daily: p.Retention.Daily,
		Weekly: p.Retention.Weekly, Monthly: p.Retention.Monthly, Yearly: p.Retention.Yearly,
		Location: sched.Location,
	}
	rep := &Report{Policy: p.Name, DryRun: opts.DryRun}
	if !p.Retention.IsZero() {
		rep.Retention = rpol.String()
	}
	dests, err := cfg.OpenTargets(p, targets.Options{Logger: log, Metrics: opts.Metrics})
	if err != nil {
		return rep, err
	}
	// The trusted keys decide which sets are committed (backupset.Committed) and which drill
	// reports prove a set restorable.
	trust := opts.Trust
	if trust == nil {
		if trust, _, err = keys.Verifier(cfg); err != nil {
			return rep, err
		}
	}
	proven := provenSets(ctx, dests, p.Name, trust, log)

	// List every target first: retention on one target depends on what the others hold.
	listings := make([][]backupset.SetEntry, len(dests))
	unsignedSets := make([][]backupset.SetEntry, len(dests))
	newest := ""
	for i, d := range dests {
		tp := &TargetReport{Target: d.Name}
		rep.Targets = append(rep.Targets, tp)
		entries, err := backupset.SetKeysOnly(ctx, d.Target, p.Name)
		if err != nil {
			tp.Errs = append(tp.Errs, err)
			tp.Skipped = "the target could not be listed"
			continue
		}
		// Only trusted manifests commit a set (backupset.Committed): an untrusted set is neither
		// kept as newest nor collected as uncommitted; it is left alone and reported.
		untrusted, err := backupset.Scan(ctx, d.Target, p.Name, entries, now(), trust, func(*backupset.Manifest) bool { return true })
		if err != nil {
			tp.Errs = append(tp.Errs, err)
			tp.Skipped = "the manifests of its sets could not be read"
			continue
		}
		reasons := map[string]string{}
		unsigned := map[string]bool{}
		for _, u := range untrusted {
			reasons[u.ID] = u.Reason
			unsigned[u.ID] = u.Unsigned
		}
		kept := entries[:0]
		for _, e := range entries {
			if unsigned[e.ID] {
				unsignedSets[i] = append(unsignedSets[i], e)
				continue
			}
			if r, ok := reasons[e.ID]; ok {
				tp.GCNotes = append(tp.GCNotes, fmt.Sprintf("leave   %s  untrusted: %s", e.ID, r))
				continue
			}
			kept = append(kept, e)
		}
		entries = kept
		listings[i] = entries
		for _, e := range entries {
			if e.Committed && e.ID > newest {
				newest = e.ID
			}
		}
	}

	var errs []error
	for i, d := range dests {
		tp := rep.Targets[i]
		if tp.Skipped == "" {
			pruneTarget(ctx, p, d, listings[i], unsignedSets[i], newest, proven, rpol, now(), trust, opts, tp, log)
		}
		for _, e := range tp.Errs {
			errs = append(errs, fmt.Errorf("target %s: %w", d.Name, e))
		}
	}
	return rep, errors.Join(errs...)
}

func pruneTarget(ctx context.Context, p *config.Policy, d backupset.Dest, entries, unsigned []backupset.SetEntry, newest string,
	proven map[string]bool, rpol retention.Policy, now time.Time, trust backupset.Trust, opts Options, tp *TargetReport, log *slog.Logger) {
	log = log.With("target", d.Name)
	sets := make([]retention.Set, 0, len(entries))
	holds := false
	for _, e := range entries {
		t, err := backupset.IDTime(e.ID)
		if err != nil {
			continue
		}
		sets = append(sets, retention.Set{ID: e.ID, Time: t, Committed: e.Committed, Proven: proven[e.ID]})
		if e.ID == newest && e.Committed {
			holds = true
		}
	}

	switch reason, skip := opts.SkipTargets[d.Name]; {
	case skip:
		tp.Skipped = reason
	case newest != "" && !holds:
		tp.Skipped = fmt.Sprintf("the target does not hold the newest committed set %s: its latest backup failed there "+
			"(or it joined the policy since); retention waits for a backup that succeeds on it", newest)
	case p.Retention.IsZero():
		tp.Skipped = "no retention is configured for the policy (retention: is empty): every set is kept"
	}
	if tp.Skipped == "" {
		tp.Decisions = append(retention.Select(sets, now, rpol), unsignedDecisions(sets, unsigned, newest, now, rpol)...)
		slices.SortStableFunc(tp.Decisions, func(a, b retention.Decision) int { return strings.Compare(b.ID, a.ID) })
		if err := protect(ctx, p.Name, d, tp.Decisions, now, opts, tp, log); err != nil {
			tp.Errs = append(tp.Errs, err)
			tp.Skipped = "the protections of sets in use could not be read: nothing is deleted while they are unknown"
			tp.Decisions = nil
		}
	}
	for _, id := range retention.Prunable(tp.Decisions) {
		if opts.DryRun {
			tp.Deleted = append(tp.Deleted, id)
			continue
		}
		n, size, err := backupset.DeleteSet(ctx, d.Target, p.Name, id)
		if err != nil {
			tp.Errs = append(tp.Errs, err)
			continue
		}
		tp.Deleted = append(tp.Deleted, id)
		log.Info("set deleted by retention", "set", id, "objects", n, "bytes", size)
	}
	for _, s := range sets {
		if s.Committed && !slices.Contains(tp.Deleted, s.ID) {
			tp.Committed++
		}
	}

	collectUncommitted(ctx, p, d, entries, now, opts, tp, log)

	switch {
	case opts.StorageGC == nil:
		tp.Storage = "not collected: no storage garbage collector was configured"
	case tp.Skipped != "" && len(tp.Errs) > 0:
		tp.Storage = "not collected: " + tp.Skipped
	default:
		summary, err := opts.StorageGC(ctx, d.Name, d.Target, p.Name, trust, opts.DryRun)
		if err != nil {
			tp.Errs = append(tp.Errs, fmt.Errorf("collect storage blobs: %w", err))
		}
		tp.Storage = summary
	}
}

// provenHistory is how many of the newest drill reports of each target are read to find the
// sets proven restorable: enough to reach back past a run of failed drills, few enough that
// a retention run stays a handful of reads.
const provenHistory = 32

// provenSets returns the sets that passed a restoration drill, by the drill reports on the
// targets (drill.History trusts only signed ones). A target whose reports cannot be read
// costs only its proofs: the reports are written to every target, and retention without a
// proof falls back to its rules and the newest committed set.
func provenSets(ctx context.Context, dests []backupset.Dest, policy string, trust *signing.Verifier, log *slog.Logger) map[string]bool {
	hist, err := drill.History(ctx, dests, policy, provenHistory, trust)
	if err != nil {
		log.Warn("could not read the drill reports of every target; sets proven by them only are not known to be proven", "error", err)
	}
	proven := map[string]bool{}
	for _, s := range hist {
		if s.Result == drill.Pass && s.SetID != "" {
			proven[s.SetID] = true
		}
	}
	return proven
}

// protect keeps the sets in use (markers on the target, and the caller's own) and the sets
// still under object lock.
func protect(ctx context.Context, policy string, d backupset.Dest, ds []retention.Decision, now time.Time,
	opts Options, tp *TargetReport, log *slog.Logger) error {
	for id, reason := range opts.Protected {
		retention.Keep(ds, reason, id)
	}
	active, expired, err := backupset.Protections(ctx, d.Target, policy, now)
	if err != nil {
		return err
	}
	for id, ps := range active {
		for _, pr := range ps {
			retention.Keep(ds, pr.Reason(), id)
		}
	}
	if !opts.DryRun {
		for _, pr := range expired {
			if now.Sub(pr.Expires) > protectMarkerGrace {
				if err := d.Target.Delete(ctx, pr.Key); err != nil {
					log.Debug("could not delete an expired protection marker", "key", pr.Key, "error", err)
				}
			}
		}
	}
	// Object lock: the manifest is written last, so its retention ends last.
	for _, id := range retention.Prunable(ds) {
		until, err := targets.RetainedUntil(ctx, d.Target, backupset.ManifestKey(policy, id))
		switch {
		case err != nil:
			retention.Keep(ds, "object lock state unknown ("+err.Error()+"): kept", id)
		case until.After(now):
			retention.Keep(ds, "under object lock until "+until.UTC().Format(time.RFC3339), id)
		}
	}
	return nil
}

// collectUncommitted removes sets that never committed (their writer died) once they are
// older than the policy's grace, judged by their newest object so that a long backup still
// writing is never taken for dead.
func collectUncommitted(ctx context.Context, p *config.Policy, d backupset.Dest, entries []backupset.SetEntry, now time.Time,
	opts Options, tp *TargetReport, log *slog.Logger) {
	var sets []retention.Set
	last := map[string]time.Time{}
	for _, e := range entries {
		t, err := backupset.IDTime(e.ID)
		if err != nil {
			continue
		}
		if e.LastModified.After(t) {
			t = e.LastModified
		}
		last[e.ID] = t
		sets = append(sets, retention.Set{ID: e.ID, Time: t, Committed: e.Committed})
	}
	stale := retention.StaleUncommitted(sets, now, p.UncommittedGrace)
	for _, e := range entries {
		if !e.Committed && !slices.Contains(stale, e.ID) {
			tp.GCNotes = append(tp.GCNotes, fmt.Sprintf("leave   %s  uncommitted, last written %s: younger than uncommitted_grace %s (it may still be being written)",
				e.ID, last[e.ID].UTC().Format(time.RFC3339), p.UncommittedGrace))
		}
	}
	for _, id := range stale {
		what := fmt.Sprintf("uncommitted, last written %s: older than uncommitted_grace %s", last[id].UTC().Format(time.RFC3339), p.UncommittedGrace)
		if opts.DryRun {
			tp.Collected = append(tp.Collected, id)
			tp.GCNotes = append(tp.GCNotes, "collect "+id+"  "+what)
			continue
		}
		n, size, err := backupset.DeleteSet(ctx, d.Target, p.Name, id)
		if errors.Is(err, targets.ErrLocked) {
			tp.GCNotes = append(tp.GCNotes, "leave   "+id+"  "+what+"; its objects are still under object lock")
			continue
		}
		if err != nil {
			tp.Errs = append(tp.Errs, fmt.Errorf("collect uncommitted set: %w", err))
			continue
		}
		tp.Collected = append(tp.Collected, id)
		tp.GCNotes = append(tp.GCNotes, "collect "+id+"  "+what)
		log.Info("uncommitted set collected", "set", id, "objects", n, "bytes", size)
	}
}

// Write prints the report for people: every set with keep or delete and the reasons.
func (r *Report) Write(w io.Writer) {
	mode := ""
	if r.DryRun {
		mode = " (dry run: nothing is deleted)"
	}
	ret := r.Retention
	if ret == "" {
		ret = "none configured"
	}
	fmt.Fprintf(w, "policy %s, retention: %s%s\n", r.Policy, ret, mode)
	for _, tp := range r.Targets {
		fmt.Fprintf(w, "\ntarget %s:\n", tp.Target)
		if tp.Skipped != "" {
			fmt.Fprintf(w, "  retention skipped: %s\n", tp.Skipped)
		}
		if len(tp.Decisions) > 0 {
			for _, line := range strings.Split(strings.TrimRight(retention.Summary(tp.Decisions), "\n"), "\n") {
				fmt.Fprintf(w, "  %s\n", line)
			}
		}
		for _, n := range tp.GCNotes {
			fmt.Fprintf(w, "  %s\n", n)
		}
		if tp.Storage != "" {
			fmt.Fprintf(w, "  storage blobs: %s\n", tp.Storage)
		}
		verb := "deleted"
		if r.DryRun {
			verb = "would delete"
		}
		fmt.Fprintf(w, "  %s %d set(s) and %d uncommitted set(s); %d committed set(s) remain\n", verb, len(tp.Deleted), len(tp.Collected), tp.Committed)
		for _, err := range tp.Errs {
			fmt.Fprintf(w, "  ERROR: %v\n", err)
		}
	}
}

// unsignedDecisions decides the sets whose manifest has no signature at all: sets written
// before backupd signed its sets (or planted). They must not pile up forever after an upgrade,
// nor take the place of a signed set: they are judged by the same rules among the signed sets,
// so that one the rules would keep (say, the monthly of a month without a signed set) stays
// until the rules let it go, but the signed sets' own decisions are made without them (a
// planted unsigned set never pushes a signed one out of keep_last). One newer than the newest
// signed set is left alone: it is never counted as newest, and deleting what may be a planted
// decoy gains nothing.
func unsignedDecisions(signed []retention.Set, unsigned []backupset.SetEntry, newest string, now time.Time, rpol retention.Policy) []retention.Decision {
	if len(unsigned) == 0 {
		return nil
	}
	all := append([]retention.Set(nil), signed...)
	ids := map[string]bool{}
	for _, e := range unsigned {
		t, err := backupset.IDTime(e.ID)
		if err != nil {
			continue
		}
		all = append(all, retention.Set{ID: e.ID, Time: t, Committed: true})
		ids[e.ID] = true
	}
	var out []retention.Decision
	for _, d := range retention.Select(all, now, rpol) {
		if !ids[d.ID] {
			continue
		}
		if newest == "" || d.ID > newest {
			d.Keep, d.Reasons = true, []string{"unsigned and newer than the newest signed set: left alone, never counted"}
		} else {
			d.Reasons = append([]string{"unsigned (written before sets were signed, or planted)"}, d.Reasons...)
		}
		out = append(out, d)
	}
	return out
}
