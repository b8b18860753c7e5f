// Package backup runs one backup job of a policy: it dumps the policy's sources into a new set,
// sealed and uploaded to every target at once, and commits the set where every object arrived.
// The CLI's `backup` command and the daemon's scheduler both call Run.
package backup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"filippo.io/age"

	"github.com/backupd/backupd/internal/backupset"
	"github.com/backupd/backupd/internal/config"
	"github.com/backupd/backupd/internal/dump"
	"github.com/backupd/backupd/internal/fileperm"
	"github.com/backupd/backupd/internal/humanize"
	"github.com/backupd/backupd/internal/keys"
	"github.com/backupd/backupd/internal/seal"
	"github.com/backupd/backupd/internal/storage"
	"github.com/backupd/backupd/internal/targets"
)

// Options are the process-wide parts of a job.
type Options struct {
	Version string // the tool version recorded in the manifest; "dev" when empty
	Logger  *slog.Logger
	Now     func() time.Time // injected clock; time.Now when nil
	Metrics *targets.Metrics // nil: no target metrics
	// Signer signs the set's manifest (required): keys.Signer builds it from the config's
	// signing section. An unsigned set would be committed for no reader.
	Signer backupset.Signer
	// Progress, when set, receives a one-line status every ProgressEvery (default 1s) while the
	// job runs: the CLI passes the terminal, the daemon nothing.
	Progress      io.Writer
	ProgressEvery time.Duration
}

// Result describes a finished (or failed) job.
type Result struct {
	SetID     string
	Policy    string
	Manifest  *backupset.Manifest // nil when the job failed before committing
	Dump      *dump.Result
	Storage   []*storage.SnapshotResult
	Targets   []backupset.TargetResult
	Committed int // targets that hold the committed set
	Needed    int // min_targets
	Duration  time.Duration
}

// Run makes one set of policy p. It returns an error unless the set is committed on at least
// min_targets targets; Result is filled as far as the job got either way.
func Run(ctx context.Context, cfg *config.Config, p *config.Policy, opts Options) (*Result, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	start := now()
	res := &Result{Policy: p.Name, SetID: backupset.NewID(start)}
	log = log.With("policy", p.Name, "set", res.SetID)
	defer func() { res.Duration = now().Sub(start) }()

	if p.MySQL == nil && len(p.Storage) == 0 {
		return res, fmt.Errorf("policy %s has neither a mysql source nor storage: nothing to back up", p.Name)
	}
	if opts.Signer == nil {
		return res, errors.New("no signing key given: every set is signed (keys.Signer builds the key from signing.key_file)")
	}
	recipients, recipientStrs, err := keys.Recipients(cfg, log)
	if err != nil {
		return res, err
	}
	dests, err := cfg.OpenTargets(p, targets.Options{Logger: log, Metrics: opts.Metrics})
	if err != nil {
		return res, err
	}
	spoolDir := filepath.Join(cfg.StateDir, "spool")
	if err := fileperm.PrivateDir(cfg.StateDir); err != nil {
		return res, fmt.Errorf("create the state directory (state_dir): %w", err)
	}
	if err := os.MkdirAll(spoolDir, 0o700); err != nil {
		return res, fmt.Errorf("create spool directory: %w", err)
	}
	min := p.MinTargets
	if min <= 0 {
		min = len(dests)
	}
	res.Needed = min
	var level seal.Level
	if p.MySQL != nil {
		level = seal.Level(p.MySQL.CompressionLevel)
	}
	var snaps []*storage.SnapshotResult // set before Commit; BeforeCommit rechecks their packs
	w, err := backupset.NewWriter(ctx, p.Name, res.SetID, dests, backupset.WriterOptions{
		Recipients: recipients,
		Signer:     opts.Signer,
		Level:      level,
		MinTargets: min,
		SpoolDir:   spoolDir,
		Logger:     log,
		BeforeCommit: func(ctx context.Context) error {
			if testHookBeforeCommit != nil {
				testHookBeforeCommit(ctx, dests)
			}
			return storage.CheckPacks(ctx, dests, snaps...)
		},
	})
	if err != nil {
		return res, err
	}
	log.Info("backup started", "targets", p.Targets)
	if opts.Progress != nil {
		stop := showProgress(opts.Progress, opts.ProgressEvery, w, start, now)
		defer stop()
	}
	abort := func(cause error) (*Result, error) {
		// A cancelled job must not leave objects behind on a live context; use a fresh one.
		cleanup, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		w.Abort(cleanup)
		return res, cause
	}
	var mysqlJSON, filesJSON []byte
	if p.MySQL != nil {
		dr, err := dump.Run(ctx, dump.Options{
			DSN:             p.MySQL.DSN,
			Databases:       p.MySQL.Databases,
			ExcludeTables:   p.MySQL.ExcludeTables,
			Threads:         p.MySQL.Threads,
			ChunkBytes:      p.MySQL.ChunkSize,
			LockWaitTimeout: p.MySQL.LockWaitTimeout,
			IncludeUsers:    p.MySQL.IncludeUsers,
			Logger:          log,
		}, w)
		res.Dump = dr
		if err == nil && dr != nil && len(dr.Databases) == 0 {
			err = errors.New("the dump found no database to back up (check mysql.databases and the account's privileges)")
		}
		if err != nil {
			return abort(err) // dump errors already say "dump: …"
		}
		if mysqlJSON, err = json.Marshal(dr); err != nil {
			return abort(fmt.Errorf("encode dump description: %w", err))
		}
	}
	if len(p.Storage) > 0 {
		var keeper *storage.MarkerKeeper
		snaps, keeper, err = snapshotStorage(ctx, cfg, p, res.SetID, w, dests, recipients, log)
		// The markers stay fresh until Commit below has written the manifest (or the job
		// failed): another host's garbage collection must not take them for stale meanwhile.
		defer keeper.Stop()
		res.Storage = snaps
		if err != nil {
			return abort(err)
		}
		if filesJSON, err = storage.Describe(snaps...); err != nil {
			return abort(fmt.Errorf("describe storage snapshots: %w", err))
		}
	}
	host, _ := os.Hostname()
	version := opts.Version
	if version == "" {
		version = "dev"
	}
	m := &backupset.Manifest{
		Tool:       "backupd " + version,
		StartedAt:  start.UTC(),
		FinishedAt: now().UTC(),
		Host:       host,
		Recipients: recipientStrs,
		MySQL:      mysqlJSON,
		Files:      filesJSON,
	}
	res.Targets = w.Commit(ctx, m)
	var errs []error
	for _, tr := range res.Targets {
		if tr.Err != nil {
			log.Error("set not committed on target", "target", tr.Name, "error", tr.Err)
			errs = append(errs, fmt.Errorf("target %s: %w", tr.Name, tr.Err))
			continue
		}
		res.Committed++
	}
	if res.Committed < min {
		return res, fmt.Errorf("set %s committed on %d of %d targets, min_targets is %d: %w", res.SetID, res.Committed, len(res.Targets), min, errors.Join(errs...))
	}
	res.Manifest = m
	log.Info("backup committed", "committed_targets", res.Committed, "bytes", m.Bytes())
	return res, nil
}

// testHookBeforeCommit, when set by a test, runs after every upload and before the packs are
// rechecked for the commit.
var testHookBeforeCommit func(ctx context.Context, dests []backupset.Dest)

// snapshotStorage snapshots every storage source of the policy into the set being written,
// one after the other: each already reads and uploads in parallel, and media is I/O-bound.
func snapshotStorage(ctx context.Context, cfg *config.Config, p *config.Policy, setID string, w *backupset.Writer, dests []backupset.Dest, recipients []age.Recipient, log *slog.Logger) ([]*storage.SnapshotResult, *storage.MarkerKeeper, error) {
	nameKey, err := keys.DedupKey(cfg, log)
	if err != nil {
		return nil, nil, err
	}
	// Packs are reused only from a set this host trusts: a planted manifest must not make a
	// snapshot reference packs nobody vouches for.
	trust, _, err := keys.Verifier(cfg)
	if err != nil {
		return nil, nil, err
	}
	keeper, err := storage.KeepMarkers(ctx, p.Name, setID, dests, nameKey, storage.KeepOptions{Logger: log})
	if err != nil {
		return nil, nil, err
	}
	var out []*storage.SnapshotResult
	for _, src := range p.Storage {
		r, err := storage.Snapshot(ctx, src.Spec(), w, dests, storage.SnapshotOptions{
			Policy:     p.Name,
			SetID:      setID,
			Recipients: recipients,
			NameKey:    nameKey,
			Trust:      trust,
			SpoolDir:   filepath.Join(cfg.StateDir, "spool"),
			Logger:     log.With("storage", src.Name),
			Markers:    keeper,
		})
		if err != nil {
			return out, keeper, fmt.Errorf("storage %s: %w", src.Name, err)
		}
		for _, warning := range r.Warnings {
			log.Warn("storage snapshot", "storage", src.Name, "warning", warning)
		}
		log.Info("storage snapshot done", "storage", src.Name, "files", r.Files, "bytes", r.Bytes, "new_bytes", r.NewBytes)
		out = append(out, r)
	}
	return out, keeper, nil
}

// showProgress prints the writer's progress on one terminal line until stop is called.
func showProgress(out io.Writer, every time.Duration, w *backupset.Writer, start time.Time, now func() time.Time) (stop func()) {
	if every <= 0 {
		every = time.Second
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				fmt.Fprint(out, "\r\033[K")
				return
			case <-t.C:
				p := w.Progress()
				elapsed := now().Sub(start)
				rate := float64(p.PlainBytes) / elapsed.Seconds() / (1 << 20)
				fmt.Fprintf(out, "\r\033[K  %s read, %s written, %d objects, %.0f MiB/s, %s",
					humanize.Bytes(p.PlainBytes), humanize.Bytes(p.SealedBytes), p.Objects, rate, elapsed.Round(time.Second))
			}
		}
	})
	return func() { close(done); wg.Wait() }
}
