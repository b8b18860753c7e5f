package daemon

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/backupd/backupd/internal/config"
	"github.com/backupd/backupd/internal/notify"
	"github.com/backupd/backupd/internal/schedule"
)

// ErrSkipped is wrapped by a Job's Run when the tick is not this host's to run (another host
// has it, or is still running the previous one). Such a tick counts as skipped, not as a run.
var ErrSkipped = errors.New("tick skipped")

// Job kinds.
const (
	KindBackup = "backup"
	// KindDrill is a policy's scheduled restoration drill (drilljob.go).
	KindDrill = "drill"
)

// Job is one kind of scheduled work of one policy.
type Job struct {
	Policy   string
	Kind     string // KindBackup; drills add KindDrill
	Schedule schedule.Schedule
	Jitter   time.Duration
	CatchUp  bool
	// Run does the run for tick. It records its own outcome (metrics beyond the scheduler's,
	// alerts) and returns an error wrapping ErrSkipped when the tick is another host's.
	Run func(ctx context.Context, tick time.Time) error
	// LastRun returns the start of the newest completed run as the targets show it (zero
	// when there is none): catch-up compares it with the last tick. Nil: no catch-up.
	LastRun func(ctx context.Context) (time.Time, error)
}

// Name identifies the job in logs, state and leases: "<policy>/<kind>".
func (j *Job) Name() string { return j.Policy + "/" + j.Kind }

// jobsFor builds the jobs of a configuration. Each closure keeps the configuration it was
// built from, so a run started before a reload finishes with the settings it started with.
func (d *Daemon) jobsFor(cfg *config.Config) ([]*Job, error) {
	var jobs []*Job
	for _, name := range slices.Sorted(maps.Keys(cfg.Policies)) {
		p := cfg.Policies[name]
		sched, err := schedule.Parse(p.Schedule)
		if err != nil {
			return nil, fmt.Errorf("policy %s: %w", p.Name, err)
		}
		jobs = append(jobs, &Job{
			Policy:   p.Name,
			Kind:     KindBackup,
			Schedule: sched,
			Jitter:   p.Jitter,
			CatchUp:  p.CatchUp,
			Run: func(ctx context.Context, tick time.Time) error {
				return d.runBackup(ctx, cfg, p, tick)
			},
			LastRun: func(ctx context.Context) (time.Time, error) {
				n, err := d.newestFor(ctx, cfg, p)
				return n.Time, err
			},
		})
		if p.Drill == nil || p.Drill.Schedule == "" {
			continue
		}
		if d.opts.Driller == nil {
			d.log.Warn("the policy has a drill schedule, but this daemon cannot run drills; drills are not scheduled", "policy", p.Name)
			continue
		}
		dsched, err := schedule.Parse(p.Drill.Schedule)
		if err != nil {
			return nil, fmt.Errorf("policy %s: drill: %w", p.Name, err)
		}
		jobs = append(jobs, &Job{
			Policy:   p.Name,
			Kind:     KindDrill,
			Schedule: dsched,
			Jitter:   p.Jitter,
			CatchUp:  p.CatchUp,
			Run: func(ctx context.Context, tick time.Time) error {
				return d.runDrill(ctx, cfg, p, tick)
			},
			LastRun: func(ctx context.Context) (time.Time, error) {
				return d.opts.Driller.LastDrill(ctx, cfg, p)
			},
		})
	}
	return jobs, nil
}

// Driller runs restoration drills (package drill, wired in by cmd/backupd, so that the
// daemon does not depend on everything a drill needs).
type Driller interface {
	// Drill runs one drill of p. The outcome holds the verdict; the error says what else
	// went wrong (the drill could not run, or its report was not delivered).
	Drill(ctx context.Context, cfg *config.Config, p *config.Policy) (DrillOutcome, error)
	// LastDrill returns when the newest drill of p on its targets started; zero when none.
	LastDrill(ctx context.Context, cfg *config.Config, p *config.Policy) (time.Time, error)
}

// DrillOutcome is what a drill job reports when it ends.
type DrillOutcome struct {
	SetID    string
	OK       bool
	Err      error         // why it failed: the first failed check, or the error that stopped it
	RTO, RPO time.Duration // restore time; age of the data restored
	Summary  string        // a few lines for the alert: what failed, where the report is
}

// drillFinished records a drill's outcome: the drill metrics, and the drill_failed incident
// (one alert when drills start failing, one notice when one passes again).
func (d *Daemon) drillFinished(ctx context.Context, cfg *config.Config, p *config.Policy, o DrillOutcome) {
	d.metrics.Drill(p.Name, o.OK, o.RTO, o.RPO)
	obs := observation{
		event: notify.EventDrillFailed, severity: notify.SeverityCritical,
		title:    "restoration drill failed",
		recovery: "restoration drills pass again",
		text:     fmt.Sprintf("The restoration drill of policy %s passed again on set %s (RTO %s, RPO %s).", p.Name, o.SetID, o.RTO.Round(time.Second), o.RPO.Round(time.Second)),
		fields:   map[string]string{"set": o.SetID},
	}
	if !o.OK {
		detail := "the drill failed"
		if o.Err != nil {
			detail = o.Err.Error()
		}
		obs.failing, obs.detail = true, detail
		obs.text = fmt.Sprintf("The restoration drill of policy %s on set %s failed: %s\n\n%s\n\n"+
			"Until a drill passes there is no proof that this policy's backups restore.", p.Name, o.SetID, detail, o.Summary)
		obs.fields["error"] = detail
	}
	d.alerts.observe(ctx, cfg, p, obs)
}
