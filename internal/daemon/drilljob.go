package daemon

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/backupd/backupd/internal/config"
	"github.com/backupd/backupd/internal/schedule"
	"github.com/backupd/backupd/internal/targets"
)

// runDrill is one scheduled restoration drill: take the tick's lease (one host drills per
// tick), run the drill, and report its verdict through drillFinished. The drill itself marks
// the set it reads as in use, so that retention on every host keeps it meanwhile.
func (d *Daemon) runDrill(ctx context.Context, cfg *config.Config, p *config.Policy, tick time.Time) error {
	log := d.log.With("policy", p.Name, "job", KindDrill, "tick", tick.UTC().Format(time.RFC3339))
	dests, err := cfg.OpenTargets(p, targets.Options{Logger: d.log, Metrics: d.tmetrics})
	if err != nil {
		d.drillFinished(ctx, cfg, p, DrillOutcome{Err: err})
		return err
	}
	dsn := ""
	if p.MySQL != nil {
		dsn = p.MySQL.DSN
	}
	period := maxClaimPeriod
	if sched, err := schedule.Parse(p.Drill.Schedule); err == nil {
		period = claimPeriod(sched, tick)
	}
	done := func(ctx context.Context) (string, bool) {
		last, err := d.opts.Driller.LastDrill(ctx, cfg, p)
		if err != nil || last.Before(tick) || last.After(tick.Add(period)) {
			return "", false
		}
		return "a drill started at " + last.UTC().Format(time.RFC3339) + ", after the tick", true
	}
	l, err := d.leases.acquire(ctx, p.Name, KindDrill, dsn, dests, tick, period, done)
	if errors.Is(err, errTaken) || errors.Is(err, errBusy) {
		log.Info("tick left to another host", "reason", err.Error())
		return fmt.Errorf("%w: %w", ErrSkipped, err)
	}
	if err != nil {
		d.metrics.error(p.Name, errKindLease)
		d.drillFinished(ctx, cfg, p, DrillOutcome{Err: err})
		return err
	}
	result := "failed"
	defer func() { l.release(result) }()

	log.Info("drill starting")
	out, err := d.opts.Driller.Drill(ctx, cfg, p)
	if ctx.Err() != nil {
		result = "cancelled"
		log.Warn("drill cancelled by shutdown", "error", err)
		return fmt.Errorf("cancelled by shutdown: %w", err)
	}
	if !out.OK && out.Err == nil {
		out.Err = err
	}
	if err != nil && out.OK {
		// The verdict stands; what failed is its delivery (mail, storing the report).
		log.Warn("the drill passed, but its report was not delivered", "error", err)
	}
	d.drillFinished(ctx, cfg, p, out)
	if !out.OK {
		log.Error("drill failed", "set", out.SetID, "error", out.Err)
		return fmt.Errorf("drill failed: %v", out.Err)
	}
	result = "passed " + out.SetID
	log.Info("drill passed", "set", out.SetID, "rto", out.RTO.Round(time.Millisecond), "rpo", out.RPO.Round(time.Second))
	return nil
}
