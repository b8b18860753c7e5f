package daemon

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/backupd/backupd/internal/config"
)

// ErrSkipped is wrapped by a Job's Run when the tick is not this host's to run (another host
// has it, or is still running the previous one). Such a tick counts as skipped, not as a run.
var ErrSkipped = errors.New("tick skipped")

// Job kinds.
const (
	KindBackup = "backup"
	// KindDrill is the restoration drill of issue 6; no job of this kind is built yet.
	KindDrill = "drill"
)

// Job is one kind of scheduled work of one policy.
type Job struct {
	Policy   string
	Kind     string // KindBackup; drills add KindDrill
	Schedule Schedule
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
		sched, err := ParseSchedule(p.Schedule)
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
		// Issue 6: the policy's drill job goes here (Kind: KindDrill, the drill's schedule,
		// Run: the drill, alerting notify.EventDrillFailed and calling Metrics.Drill).
	}
	return jobs, nil
}
