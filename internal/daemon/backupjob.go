package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/backupd/backupd/internal/backup"
	"github.com/backupd/backupd/internal/backupset"
	"github.com/backupd/backupd/internal/config"
	"github.com/backupd/backupd/internal/keys"
	"github.com/backupd/backupd/internal/notify"
	"github.com/backupd/backupd/internal/prune"
	"github.com/backupd/backupd/internal/schedule"
	"github.com/backupd/backupd/internal/targets"
)

// runBackup is one scheduled backup: take the tick's lease, make the set, tell people what
// they need to know, apply retention, and check staleness with the new state of the targets.
func (d *Daemon) runBackup(ctx context.Context, cfg *config.Config, p *config.Policy, tick time.Time) error {
	log := d.log.With("policy", p.Name, "job", KindBackup, "tick", tick.UTC().Format(time.RFC3339))
	dests, err := cfg.OpenTargets(p, targets.Options{Logger: d.log, Metrics: d.tmetrics})
	if err != nil {
		d.backupFailed(ctx, cfg, p, nil, err, log)
		return err
	}
	dsn := ""
	if p.MySQL != nil {
		dsn = p.MySQL.DSN
	}
	period := maxClaimPeriod
	if sched, err := schedule.Parse(p.Schedule); err == nil {
		period = claimPeriod(sched, tick)
	}
	l, err := d.leases.acquire(ctx, p.Name, KindBackup, dsn, dests, tick, period, setMadeSince(p.Name, dests, tick, period))
	if errors.Is(err, errTaken) || errors.Is(err, errBusy) {
		d.backupSkipped(ctx, cfg, p, err, log)
		return fmt.Errorf("%w: %w", ErrSkipped, err)
	}
	d.noteRun(p.Name)
	if err != nil {
		d.metrics.error(p.Name, errKindLease)
		d.backupFailed(ctx, cfg, p, nil, err, log)
		return err
	}
	log.Debug("lease taken", "lease", l.how)
	result := "failed"
	defer func() { l.release(result) }()

	// Loaded for each job, as the config may have been reloaded; generated on first use.
	signer, err := keys.Signer(cfg, d.log)
	if err != nil {
		d.backupFailed(ctx, cfg, p, nil, err, log)
		return err
	}
	res, err := backup.Run(ctx, cfg, p, backup.Options{Logger: d.log, Metrics: d.tmetrics, Version: d.opts.Version, Signer: signer})
	d.metrics.backup(res, d.now())
	if err != nil {
		if ctx.Err() != nil {
			result = "cancelled"
			log.Warn("backup cancelled by shutdown; its set was not committed", "error", err)
			return fmt.Errorf("cancelled by shutdown: %w", err)
		}
		d.backupFailed(ctx, cfg, p, res, err, log)
		return err
	}
	result = "committed " + res.SetID
	d.backupSucceeded(ctx, cfg, p, dests, res, log)
	return nil
}

// backupSkipped logs a tick left to another host, Info the first time and Warn once ticks are
// skipped in a row, counts it, and checks staleness: skipped ticks with no new committed set
// mean nobody is backing up, whatever the stale threshold says.
func (d *Daemon) backupSkipped(ctx context.Context, cfg *config.Config, p *config.Policy, why error, log *slog.Logger) {
	n, err := d.newestFor(ctx, cfg, p)
	newest := n.ID
	if err != nil {
		d.mu.Lock()
		newest = d.newest[p.Name].ID // the last one seen
		d.mu.Unlock()
	}
	count := d.noteSkip(p.Name, newest)
	if count > 1 {
		log.Warn("tick left to another host again, and no new committed set appeared since the first skipped tick",
			"reason", why.Error(), "skipped_ticks", count)
	} else {
		log.Info("tick left to another host", "reason", why.Error())
	}
	d.checkStale(ctx, cfg, p)
}

// backupFailed alerts (once per incident) about a failed backup.
func (d *Daemon) backupFailed(ctx context.Context, cfg *config.Config, p *config.Policy, res *backup.Result, err error, log *slog.Logger) {
	d.metrics.error(p.Name, errKindBackup)
	log.Error("backup failed", "error", err)
	var b strings.Builder
	fmt.Fprintf(&b, "The scheduled backup of policy %s failed:\n\n%v\n\n", p.Name, err)
	d.mu.Lock()
	n := d.newest[p.Name]
	d.mu.Unlock()
	if n.ID != "" {
		fmt.Fprintf(&b, "No new set was committed. The newest committed set is %s (started %s).", n.ID, n.Time.UTC().Format(time.RFC3339))
	} else {
		b.WriteString("No new set was committed.")
	}
	b.WriteString(" backupd tries again at the next scheduled run; this alert is not repeated while the backups keep failing, " +
		"and a notice follows when one succeeds.")
	fields := map[string]string{"error": err.Error()}
	if res != nil && res.SetID != "" {
		fields["set"] = res.SetID + " (not committed)"
	}
	d.alerts.observe(ctx, cfg, p, observation{
		event: notify.EventBackupFailed, failing: true, severity: notify.SeverityCritical,
		title: "backup failed", text: b.String(), detail: err.Error(), fields: fields,
	})
}

// backupSucceeded clears the failure incidents, reports targets that failed while others
// succeeded and sets that shrank, and applies retention.
func (d *Daemon) backupSucceeded(ctx context.Context, cfg *config.Config, p *config.Policy, dests []backupset.Dest, res *backup.Result, log *slog.Logger) {
	tables, rows := res.Manifest.Counts()
	log.Info("backup committed", "set", res.SetID, "committed_targets", res.Committed, "tables", tables, "rows", rows,
		"bytes", res.Manifest.Bytes(), "duration", res.Duration.Round(time.Millisecond))
	d.mu.Lock()
	if start, err := backupset.IDTime(res.SetID); err == nil && res.SetID > d.newest[p.Name].ID {
		d.newest[p.Name] = newestSet{ID: res.SetID, Time: start}
	}
	d.mu.Unlock()

	d.alerts.observe(ctx, cfg, p, observation{
		event: notify.EventBackupFailed, severity: notify.SeverityCritical,
		title: "backup failed", recovery: "backups succeed again",
		text:   fmt.Sprintf("The backup of policy %s succeeded again: set %s is committed on %d of %d targets.", p.Name, res.SetID, res.Committed, len(res.Targets)),
		fields: map[string]string{"set": res.SetID},
	})
	failed := map[string]string{}
	for _, tr := range res.Targets {
		o := observation{
			event: notify.EventTargetFailed, sub: tr.Name, severity: notify.SeverityWarning,
			title:    "target " + tr.Name + " failed",
			recovery: "target " + tr.Name + " works again",
			text:     fmt.Sprintf("Set %s of policy %s is committed on target %s again.", res.SetID, p.Name, tr.Name),
			fields:   map[string]string{"target": tr.Name, "set": res.SetID},
		}
		if tr.Err != nil {
			failed[tr.Name] = fmt.Sprintf("the latest backup (set %s) failed on this target: %v", res.SetID, tr.Err)
			d.metrics.error(p.Name, errKindTarget)
			o.failing, o.detail = true, tr.Err.Error()
			o.text = fmt.Sprintf("Set %s of policy %s was committed on %d of %d targets, but not on target %s:\n\n%v\n\n"+
				"The backup counts as a success (min_targets is %d), but the set is missing from %s; retention does not run there "+
				"until a backup succeeds on it again.", res.SetID, p.Name, res.Committed, len(res.Targets), tr.Name, tr.Err, res.Needed, tr.Name)
			o.fields["error"] = tr.Err.Error()
		}
		d.alerts.observe(ctx, cfg, p, o)
	}

	d.checkShrink(ctx, cfg, p, dests, res, log)

	rep, err := prune.Run(ctx, cfg, p, prune.Options{Now: d.now, Logger: d.log, Metrics: d.tmetrics, SkipTargets: failed, StorageGC: d.opts.StorageGC})
	if err != nil {
		d.metrics.error(p.Name, errKindRetention)
		log.Error("retention failed on some targets; it is tried again after the next backup", "error", err)
	}
	if rep != nil {
		for _, tp := range rep.Targets {
			if tp.Skipped == "" || len(tp.Decisions) > 0 {
				d.metrics.sets.WithLabelValues(p.Name, tp.Target).Set(float64(tp.Committed))
			}
			d.metrics.pruned.WithLabelValues(p.Name, tp.Target).Add(float64(len(tp.Deleted)))
			d.metrics.collected.WithLabelValues(p.Name, tp.Target).Add(float64(len(tp.Collected)))
			if tp.Skipped != "" && !p.Retention.IsZero() {
				log.Info("retention skipped on a target", "target", tp.Target, "reason", tp.Skipped)
			}
		}
	}
	d.checkStale(ctx, cfg, p)
}

// checkShrink compares the new set with the previous one.
func (d *Daemon) checkShrink(ctx context.Context, cfg *config.Config, p *config.Policy, dests []backupset.Dest, res *backup.Result, log *slog.Logger) {
	if p.Alerts.ShrinkAlert <= 0 {
		return
	}
	var committed []backupset.Dest
	for i, tr := range res.Targets {
		if tr.Err == nil && i < len(dests) {
			committed = append(committed, dests[i])
		}
	}
	trust, _, err := keys.Verifier(cfg)
	if err != nil {
		log.Warn("cannot read the trusted signing keys to compare sizes", "error", err)
		return
	}
	prev, err := previousManifest(ctx, committed, p.Name, res.SetID, d.now(), trust)
	if err != nil {
		d.metrics.error(p.Name, errKindShrink)
		log.Warn("cannot read the previous set to compare sizes", "error", err)
		return
	}
	if prev == nil {
		return // the first set: nothing to compare with
	}
	found := shrinkage(dumpOf(prev), dumpOf(res.Manifest), p.Alerts.ShrinkAlert)
	pct := fmt.Sprintf("%.0f%%", p.Alerts.ShrinkAlert*100)
	o := observation{
		event: notify.EventShrunk, severity: notify.SeverityWarning,
		title:    "backup shrank by more than " + pct,
		recovery: "set sizes are steady again",
		text:     fmt.Sprintf("Set %s of policy %s did not shrink by more than %s against the previous set %s.", res.SetID, p.Name, pct, prev.SetID),
		fields:   map[string]string{"set": res.SetID, "previous set": prev.SetID},
	}
	if len(found) > 0 {
		o.failing = true
		o.detail = strings.Join(found, "; ")
		o.text = fmt.Sprintf("Set %s of policy %s holds much less than the previous set %s (shrink_alert is %s):\n\n  %s\n\n"+
			"If data was deleted on purpose, nothing needs doing. If not, the previous sets still hold it: "+
			"restore from %s or older, and check that retention does not prune them away.",
			res.SetID, p.Name, prev.SetID, pct, strings.Join(found, "\n  "), prev.SetID)
		log.Warn("the set shrank against the previous one", "set", res.SetID, "previous", prev.SetID, "what", o.detail)
	}
	d.alerts.observe(ctx, cfg, p, o)
}

// newestFor lists a policy's targets for its newest committed set and remembers it.
func (d *Daemon) newestFor(ctx context.Context, cfg *config.Config, p *config.Policy) (newestSet, error) {
	dests, err := cfg.OpenTargets(p, targets.Options{Logger: d.log, Metrics: d.tmetrics})
	if err != nil {
		return newestSet{}, err
	}
	trust, _, err := keys.Verifier(cfg)
	if err != nil {
		return newestSet{}, err
	}
	n, untrusted, err := newestCommitted(ctx, dests, p.Name, d.now(), trust)
	if err != nil {
		return n, err
	}
	d.untrustedSeen(ctx, cfg, p, untrusted)
	d.mu.Lock()
	d.newest[p.Name] = n
	d.mu.Unlock()
	if n.ID != "" {
		d.metrics.newestSet.WithLabelValues(p.Name).Set(float64(n.Time.Unix()))
	}
	return n, nil
}

// checkStale alerts when a policy has had no committed set for longer than stale_after,
// judged from the targets (another host may be making the sets), whether or not anything
// ran here.
func (d *Daemon) checkStale(ctx context.Context, cfg *config.Config, p *config.Policy) {
	if p.Alerts.StaleAfter == config.StaleOff {
		return
	}
	sched, err := schedule.Parse(p.Schedule)
	if err != nil {
		return
	}
	n, err := d.newestFor(ctx, cfg, p)
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		d.metrics.error(p.Name, errKindStaleCheck)
		d.log.Warn("cannot list the targets to check that backups are recent", "policy", p.Name, "error", err)
		return
	}
	ref, what := n.Time, "the newest committed set "+n.ID+" started "+n.Time.UTC().Format(time.RFC3339)
	if n.ID == "" {
		ref, what = d.started, "no committed set exists; backupd started watching at "+d.started.UTC().Format(time.RFC3339)
	}
	deadline := schedule.StaleDeadline(sched, p.Alerts.StaleAfter, ref)
	now := d.now()
	threshold := "derived from the schedule"
	if p.Alerts.StaleAfter > 0 {
		threshold = p.Alerts.StaleAfter.String()
	}
	o := observation{
		event: notify.EventStale, severity: notify.SeverityCritical,
		title:    "no recent backup",
		recovery: "backups are recent again",
		text:     fmt.Sprintf("Policy %s has a recent committed set again: %s.", p.Name, n.ID),
		fields:   map[string]string{"stale_after": threshold},
	}
	skipped := d.skippedSince(p.Name, n.ID)
	switch {
	case now.After(deadline):
		o.failing = true
		o.detail = what
		o.text = fmt.Sprintf("Policy %s has no committed backup newer than expected: %s, and by the schedule (%s) and stale_after (%s) "+
			"a newer one was due by %s.\n\nCheck that backupd runs on at least one host (backupd_next_run_timestamp_seconds, the status page) "+
			"and why its backups fail or do not start.", p.Name, what, p.Schedule, threshold, deadline.UTC().Format(time.RFC3339))
		o.fields["newest set"] = n.ID
	case skipped >= staleSkippedTicks:
		o.failing = true
		o.detail = fmt.Sprintf("%d backup ticks in a row were left to another host here and no new committed set appeared; %s", skipped, what)
		o.text = fmt.Sprintf("Policy %s: %s.\n\nAnother host claims the ticks (or is still running) but no set commits. Check the "+
			"other hosts' logs and the objects under %s on the first target: a claim planted there stops backups.",
			p.Name, o.detail, claimPrefix(p.Name, KindBackup))
		o.fields["newest set"] = n.ID
	}
	d.alerts.observe(ctx, cfg, p, o)
}

// untrustedSeen alerts once per set whose manifest is present but does not commit it, among
// those newer than the newest committed set (the ones a planted set would be), exports how many
// there are, and clears the alert of a set no longer among them (deleted, or overtaken by a
// newer committed set; it is still never restored or counted).
func (d *Daemon) untrustedSeen(ctx context.Context, cfg *config.Config, p *config.Policy, untrusted []backupset.Untrusted) {
	d.metrics.untrustedSets.WithLabelValues(p.Name).Set(float64(len(untrusted)))
	now := map[string]bool{}
	for _, u := range untrusted {
		now[u.ID] = true
		d.log.Warn("a set on the targets is not trusted: it is never restored, drilled or counted", "policy", p.Name, "set", u.ID, "error", u.Reason)
		d.alerts.observe(ctx, cfg, p, observation{
			event: notify.EventUntrustedSet, sub: u.ID, failing: true, severity: notify.SeverityWarning,
			title:    "untrusted set " + u.ID + " on the targets",
			recovery: "set " + u.ID + " is no longer newer than the newest committed set",
			text: fmt.Sprintf("Set %s of policy %s is on the targets but is not trusted: %s\n\n"+
				"It is never restored, drilled, verified or counted as newest. If it is a set of yours, follow the reason above; "+
				"if nobody knows it, someone with write access to the bucket wrote it: check the bucket's credentials and delete the set. "+
				"`backupd list --policy %s` shows every untrusted set.", u.ID, p.Name, u.Reason, p.Name),
			detail: u.Reason,
			fields: map[string]string{"set": u.ID},
		})
	}
	prefix := p.Name + "/" + notify.EventUntrustedSet + "/"
	for _, inc := range d.alerts.open() {
		id, ok := strings.CutPrefix(inc.Key, prefix)
		if !ok || now[id] {
			continue
		}
		d.alerts.observe(ctx, cfg, p, observation{
			event: notify.EventUntrustedSet, sub: id, failing: false,
			recovery: "set " + id + " is no longer newer than the newest committed set",
			text:     fmt.Sprintf("Set %s of policy %s is gone from the targets, or a newer committed set exists. If it is still there, it is still never restored or counted; `backupd list --policy %s` shows it.", id, p.Name, p.Name),
			fields:   map[string]string{"set": id},
		})
	}
}
