package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/backupd/backupd/internal/backup"
	"github.com/backupd/backupd/internal/daemon"
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
	log := newLogger(stderr, *verbose)
	backup.Version = version
	d, err := daemon.New(cfg, daemon.Options{Logger: log, Version: version})
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
