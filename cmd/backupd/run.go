package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/backupd/backupd/internal/backupset"
	"github.com/backupd/backupd/internal/config"
	"github.com/backupd/backupd/internal/daemon"
	"github.com/backupd/backupd/internal/drill"
	"github.com/backupd/backupd/internal/humanize"
	"github.com/backupd/backupd/internal/keys"
	"github.com/backupd/backupd/internal/prune"
	"github.com/backupd/backupd/internal/storage"
	"github.com/backupd/backupd/internal/targets"
)

func init() {
	register(&command{name: "run", summary: "run the daemon: schedules, retention, alerts, metrics, status page", run: runDaemon})
}

// runDaemon runs until SIGTERM or SIGINT (main cancels ctx), then lets running jobs finish
// for up to shutdown_timeout and exits 0; a second signal cancels them at once. SIGHUP reloads
// the config file; an invalid one is refused and the daemon keeps the config it has.
func runDaemon(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("run", "[--config FILE] [--verbose]", stdout)
	cfgPath := fs.String("config", "", "config file (default: the embedded default config: local MariaDB to ./backups); SIGHUP rereads it")
	verbose := fs.Bool("verbose", false, "log debug detail")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	// Catch SIGHUP before anything else: its default action would end the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	log := newLogger(ctx, stderr, *verbose)
	d, err := daemon.New(cfg, daemon.Options{Logger: log, Version: buildVersion(), Driller: daemonDriller{log: log}, StorageGC: storageGC(log)})
	if err != nil {
		return err
	}

	var wg sync.WaitGroup
	done := make(chan struct{})
	defer func() {
		close(done)
		wg.Wait()
	}()
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			case <-hup:
				log.Info("SIGHUP: reloading the config", "file", cfg.File)
				ncfg, err := loadConfig(*cfgPath)
				if err != nil {
					d.ReloadFailed(err)
					continue
				}
				d.Reload(ncfg)
			}
		}
	})
	wg.Go(func() {
		select {
		case <-done:
			return
		case <-ctx.Done():
		}
		// main's handler has taken the first signal; a second one means "now".
		again := make(chan os.Signal, 1)
		signal.Notify(again, syscall.SIGINT, syscall.SIGTERM)
		defer signal.Stop(again)
		select {
		case <-done:
		case <-again:
			d.CancelJobs()
		}
	})
	return d.Run(ctx)
}

// daemonDriller runs the scheduled drills with package drill, as `backupd drill` does.
type daemonDriller struct{ log *slog.Logger }

var _ daemon.Driller = daemonDriller{}

func (dr daemonDriller) Drill(ctx context.Context, cfg *config.Config, p *config.Policy) (daemon.DrillOutcome, error) {
	ids, err := keys.Identities(cfg, "")
	if err != nil {
		return daemon.DrillOutcome{Err: err}, err
	}
	rep, err := drill.Run(ctx, drill.Options{Config: cfg, Policy: p, Identities: ids, Logger: dr.log, Tool: "backupd " + buildVersion()})
	if rep == nil {
		return daemon.DrillOutcome{Err: err}, err
	}
	out := daemon.DrillOutcome{
		OK:  rep.Passed(),
		RTO: time.Duration(rep.RTOSeconds * float64(time.Second)),
		RPO: time.Duration(rep.RPOSeconds * float64(time.Second)),
	}
	if rep.Set != nil {
		out.SetID = rep.Set.ID
	}
	if !out.OK {
		out.Err = rep.Problem()
		out.Summary = fmt.Sprintf("The full report (drill %s, target %s) is stored under %s on the policy's targets; "+
			"`backupd drill history --policy %s` lists the recent drills.", rep.ID, rep.Target, drill.DrillsPrefix(p.Name), p.Name)
	}
	return out, err
}

func (dr daemonDriller) LastDrill(ctx context.Context, cfg *config.Config, p *config.Policy) (time.Time, error) {
	dests, err := cfg.OpenTargets(p, targets.Options{Logger: dr.log})
	if err != nil {
		return time.Time{}, err
	}
	v, _, err := keys.Verifier(cfg) // only signed reports count
	if err != nil {
		return time.Time{}, err
	}
	hist, err := drill.History(ctx, dests, p.Name, 1, v)
	if len(hist) == 0 {
		return time.Time{}, err
	}
	return hist[len(hist)-1].StartedAt, nil
}

// storageGC collects the storage blobs that no committed set references any more, after
// retention (package storage; its mark and sweep is safe while snapshots run).
func storageGC(log *slog.Logger) prune.StorageGC {
	return func(ctx context.Context, target string, t backupset.Target, policy string, trust backupset.Trust, dryRun bool) (string, error) {
		res, err := storage.GC(ctx, t, policy, storage.GCOptions{DryRun: dryRun, Trust: trust, Logger: log.With("target", target)})
		if res == nil {
			return "", err
		}
		if res.Packs == 0 && len(res.Deleted) == 0 {
			return "none stored", err
		}
		verb := "deleted"
		if dryRun {
			verb = "would delete"
		}
		s := fmt.Sprintf("%d pack(s), %d referenced by %d set(s); %s %d object(s) (%s)", res.Packs, res.Referenced, len(res.Sets),
			verb, len(res.Deleted), humanize.Bytes(res.DeletedBytes))
		if n := len(res.KeptYoung); n > 0 {
			s += fmt.Sprintf("; %d unreferenced kept while young", n)
		}
		if n := len(res.Deferred); n > 0 {
			s += fmt.Sprintf("; deletion deferred by %d snapshot(s) in progress", n)
		}
		return s, err
	}
}
