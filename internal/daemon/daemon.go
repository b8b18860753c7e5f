// Package daemon is backupd's unattended mode, `backupd run`: it schedules every policy's jobs
// (package schedule: robfig/cron/v3 schedules aligned across hosts; jitter, a global limit on
// concurrent jobs, never a job overlapping itself, catch-up of a missed run noticed from the
// targets), makes sure that one host runs each tick however many daemons share a policy
// (leases on the target, GET_LOCK on the source), applies retention after each successful
// backup (package prune, also behind `backupd prune`), alerts people once per incident and once when it clears, and serves Prometheus
// metrics, health and readiness probes and a status page.
//
// A policy has up to two jobs: its backup, and its restoration drill when the policy's drill:
// has a schedule. Each is a Job with its own schedule and run function, built in jobsFor; the
// scheduler, leases, metrics, alerts and status page take any kind.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/backupd/backupd/internal/config"
	"github.com/backupd/backupd/internal/fileperm"
	"github.com/backupd/backupd/internal/keys"
	"github.com/backupd/backupd/internal/notify"
	"github.com/backupd/backupd/internal/prune"
	"github.com/backupd/backupd/internal/schedule"
	"github.com/backupd/backupd/internal/targets"
)

// DefaultCheckInterval is how often the daemon checks staleness and target reachability when
// nothing else happens.
const DefaultCheckInterval = time.Minute

// Options are the process-wide parts of a daemon; zero values are sensible.
type Options struct {
	Logger  *slog.Logger
	Version string
	Now     func() time.Time // injected clock for schedule decisions; time.Now when nil
	// StorageGC collects unreferenced storage blobs after retention; nil: they are not
	// collected (cmd/backupd wires package storage in).
	StorageGC     prune.StorageGC
	CheckInterval time.Duration // staleness and readiness checks; DefaultCheckInterval when 0
	LeaseTTL      time.Duration // DefaultLeaseTTL when 0
	// Driller runs the restoration drills of policies with a drill schedule; cmd/backupd
	// wires package drill in. Nil: drills are not scheduled.
	Driller Driller
}

// Daemon runs the jobs of a configuration until its context ends.
type Daemon struct {
	opts     Options
	log      *slog.Logger
	now      func() time.Time
	reg      *prometheus.Registry
	metrics  *Metrics
	tmetrics *targets.Metrics
	alerts   *alerter
	leases   *leaser
	started  time.Time
	reloads  chan *config.Config

	mu       sync.Mutex
	slotFree *sync.Cond // a job slot was freed, the limit changed, or the daemon is stopping
	cfg      *config.Config
	jobs     []*Job
	state    map[string]*jobState // by Job.Name
	active   int                  // jobs holding a slot
	stopping bool
	ready    map[string]string // target -> "" when reachable, else why not; nil before the first check
	readyAt  time.Time
	newest   map[string]newestSet // policy -> newest committed set, as last seen
	skips    map[string]skipRun   // policy -> backup ticks skipped in a row

	jobsWG     sync.WaitGroup     // every job goroutine
	cancelJobs context.CancelFunc // set while Run runs
}

// jobState is what the status page shows about a job.
type jobState struct {
	next     time.Time
	running  bool
	runTick  time.Time
	runStart time.Time

	lastTick  time.Time
	lastStart time.Time
	lastEnd   time.Time
	lastOK    bool
	lastErr   string
	lastSkip  string // why the last tick did not run here
}

// skipRun counts a policy's backup ticks skipped in a row (another host has them, or the
// previous run is still going) while its newest committed set stayed the same.
type skipRun struct {
	count int
	setID string // the newest committed set when the run of skips began
}

// staleSkippedTicks is how many backup ticks in a row may be skipped without a new committed
// set appearing before the policy counts as stale, whatever its stale threshold: skipped ticks
// are exactly what planted claims produce, and the threshold derived from the schedule would
// otherwise trust whatever the targets show.
const staleSkippedTicks = 3

// noteSkip counts a skipped backup tick of policy, whose newest committed set is setID now,
// and returns how many ticks in a row were skipped with no new set.
func (d *Daemon) noteSkip(policy, setID string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	sk := d.skips[policy]
	if sk.count > 0 && sk.setID != setID {
		sk = skipRun{}
	}
	sk.count++
	sk.setID = setID
	d.skips[policy] = sk
	return sk.count
}

// noteRun ends a run of skipped ticks: this host runs the tick.
func (d *Daemon) noteRun(policy string) {
	d.mu.Lock()
	delete(d.skips, policy)
	d.mu.Unlock()
}

// skippedSince returns how many backup ticks of policy were skipped in a row with setID as
// the newest committed set; a newer set ends the run.
func (d *Daemon) skippedSince(policy, setID string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	sk := d.skips[policy]
	if sk.setID != setID {
		delete(d.skips, policy)
		return 0
	}
	return sk.count
}

// eventUntrustedClaim is the alert about a lease claim object that does not count: one per
// object, since each is a separate thing someone planted (or a host with an untrusted key).
const eventUntrustedClaim = "untrusted_claim"

// claimPlanted alerts about a claim object that is not a trusted claim.
func (d *Daemon) claimPlanted(policy, key, why string) {
	cfg := d.config()
	p := cfg.Policies[policy]
	if p == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), notifyTimeout)
	defer cancel()
	d.alerts.observe(ctx, cfg, p, observation{
		event: eventUntrustedClaim, sub: key, failing: true, severity: notify.SeverityCritical,
		title:  "untrusted lease claim ignored",
		detail: why,
		text: fmt.Sprintf("Policy %s: the lease claim %s on the policy's first target does not count (%s). It was not written "+
			"by a host with a trusted signing key, or it claims a tick too far ahead; someone with write access to the bucket "+
			"may have planted it to stop backups. Backups go on; check who can write to the bucket, then delete the object.",
			policy, key, why),
		fields: map[string]string{"object": key, "error": why},
	})
}

// claimsListed clears the alerts about claim objects under prefix that are gone (an operator
// deleted them): one recovery notice each.
func (d *Daemon) claimsListed(policy, prefix string, present map[string]bool) {
	want := policy + "/" + eventUntrustedClaim + "/"
	var gone []string
	for _, inc := range d.alerts.open() {
		obj, ok := strings.CutPrefix(inc.Key, want)
		if ok && strings.HasPrefix(obj, prefix) && !present[obj] {
			gone = append(gone, obj)
		}
	}
	if len(gone) == 0 {
		return
	}
	cfg := d.config()
	p := cfg.Policies[policy]
	if p == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), notifyTimeout)
	defer cancel()
	for _, obj := range gone {
		d.alerts.observe(ctx, cfg, p, observation{
			event: eventUntrustedClaim, sub: obj, severity: notify.SeverityCritical,
			recovery: "untrusted lease claim removed",
			text:     fmt.Sprintf("Policy %s: the untrusted lease claim %s is gone.", policy, obj),
			fields:   map[string]string{"object": obj},
		})
	}
}

// loadTrust gives the leases this host's signing key and the trusted keys of cfg. Without
// them no claim is written or trusted, and hosts coordinate through GET_LOCK only.
func (d *Daemon) loadTrust(cfg *config.Config) {
	s, err := keys.Signer(cfg, d.log)
	if err != nil {
		d.log.Error("cannot load this host's signing key; lease claims are not written, hosts coordinate through GET_LOCK only", "error", err)
		s = nil
	}
	v, _, err := keys.Verifier(cfg)
	if err != nil {
		d.log.Error("cannot load the trusted signing keys; no lease claim is trusted", "error", err)
		v = nil
	}
	d.leases.setTrust(s, v)
}

// New prepares a daemon for cfg: the state directory, metrics and the alert state. It starts
// nothing; Run does.
func New(cfg *config.Config, opts Options) (*Daemon, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.CheckInterval <= 0 {
		opts.CheckInterval = DefaultCheckInterval
	}
	if opts.Version == "" {
		opts.Version = "dev"
	}
	if err := fileperm.PrivateDir(cfg.StateDir); err != nil {
		return nil, fmt.Errorf("create the state directory (state_dir): %w", err)
	}
	reg, m, tm := newRegistry(opts.Version)
	d := &Daemon{
		opts:     opts,
		log:      opts.Logger,
		now:      opts.Now,
		reg:      reg,
		metrics:  m,
		tmetrics: tm,
		alerts:   newAlerter(cfg.StateDir, opts.Logger, m, opts.Now),
		leases:   newLeaser(opts.Logger, opts.Now, opts.LeaseTTL),
		started:  opts.Now(),
		reloads:  make(chan *config.Config, 1),
		cfg:      cfg,
		state:    map[string]*jobState{},
		newest:   map[string]newestSet{},
		skips:    map[string]skipRun{},
	}
	d.slotFree = sync.NewCond(&d.mu)
	d.leases.report = d.claimPlanted
	d.leases.listed = d.claimsListed
	d.loadTrust(cfg)
	jobs, err := d.jobsFor(cfg)
	if err != nil {
		return nil, err
	}
	d.jobs = jobs
	return d, nil
}

// Registry is the daemon's Prometheus registry (served on /metrics).
func (d *Daemon) Registry() *prometheus.Registry { return d.reg }

// Metrics are the daemon's series, for jobs built outside this package.
func (d *Daemon) Metrics() *Metrics { return d.metrics }

func (d *Daemon) config() *config.Config {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg
}

// Run serves HTTP on listen:, schedules the jobs and blocks until ctx ends. Then it stops
// scheduling, lets running jobs finish for up to shutdown_timeout, cancels those still
// running (their sets are not committed: a set commits only with its manifest, written last),
// and returns nil. It returns an error only when it cannot start.
func (d *Daemon) Run(ctx context.Context) error {
	cfg := d.config()
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s (listen: in the config): %w; is another backupd running?", cfg.Listen, err)
	}
	srv := &http.Server{Handler: d.Handler(), ReadHeaderTimeout: 10 * time.Second}
	var bg sync.WaitGroup
	bg.Go(func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error("the HTTP server stopped", "error", err)
		}
	})
	d.log.Info("backupd daemon started", "listen", ln.Addr().String(), "policies", slices.Sorted(maps.Keys(cfg.Policies)),
		"max_concurrent_jobs", cfg.MaxConcurrentJobs, "version", d.opts.Version)

	// Jobs outlive the signal that stops scheduling: they are cancelled only when
	// shutdown_timeout has passed.
	jobsCtx, cancelJobs := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelJobs()
	d.mu.Lock()
	d.cancelJobs = cancelJobs
	d.mu.Unlock()
	bg.Go(func() { d.checkLoop(ctx) })

	var loops sync.WaitGroup
	loopsCtx, stopLoops := context.WithCancel(ctx)
	d.startJobs(loopsCtx, jobsCtx, &loops, d.jobList(), nil)
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case ncfg := <-d.reloads:
			stopLoops()
			loops.Wait()
			added := d.apply(ncfg)
			loopsCtx, stopLoops = context.WithCancel(ctx)
			d.startJobs(loopsCtx, jobsCtx, &loops, d.jobList(), added)
		}
	}
	stopLoops()
	loops.Wait()
	d.drain(cancelJobs)

	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(shutCtx)
	bg.Wait()
	d.alerts.save()
	d.log.Info("backupd daemon stopped")
	return nil
}

// Reload replaces the configuration: jobs are rescheduled from it, runs in progress finish
// with the configuration they started with. The caller has validated cfg (an invalid file
// never gets here: the daemon keeps the configuration it has).
func (d *Daemon) Reload(cfg *config.Config) {
	for {
		select {
		case d.reloads <- cfg:
			return
		default:
			select { // a reload not yet applied is superseded
			case <-d.reloads:
			default:
			}
		}
	}
}

// CancelJobs cancels the running jobs now instead of waiting for shutdown_timeout, e.g. on
// a second SIGTERM. Their sets are not committed.
func (d *Daemon) CancelJobs() {
	d.mu.Lock()
	cancel := d.cancelJobs
	d.mu.Unlock()
	if cancel != nil {
		d.log.Warn("cancelling the running jobs now; the sets they were writing are not committed")
		cancel()
	}
}

// ReloadFailed records a reload refused because the new configuration is invalid.
func (d *Daemon) ReloadFailed(err error) {
	d.metrics.reloads.WithLabelValues("failure").Inc()
	d.metrics.error("", errKindReload)
	d.log.Error("config reload refused; the daemon keeps running with the configuration it has", "error", err)
}

// apply switches to a new configuration and returns the policies it adds (they get their
// catch-up check, as at start).
func (d *Daemon) apply(cfg *config.Config) map[string]bool {
	jobs, err := d.jobsFor(cfg)
	if err != nil {
		d.ReloadFailed(err)
		return map[string]bool{} // the same jobs again, and no catch-up for any of them
	}
	d.mu.Lock()
	old := d.cfg
	d.cfg, d.jobs = cfg, jobs
	d.slotFree.Broadcast() // max_concurrent_jobs may have grown
	live := map[string]bool{}
	for _, j := range jobs {
		live[j.Name()] = true
	}
	for name, st := range d.state {
		if !live[name] && !st.running {
			delete(d.state, name)
		}
	}
	d.mu.Unlock()

	added := map[string]bool{}
	for name := range cfg.Policies {
		if old.Policies[name] == nil {
			added[name] = true
		}
	}
	for name := range old.Policies {
		if cfg.Policies[name] == nil {
			d.metrics.forget(name)
			d.alerts.forgetPolicy(name)
			d.mu.Lock()
			delete(d.newest, name)
			delete(d.skips, name)
			d.mu.Unlock()
		}
	}
	if cfg.Listen != old.Listen {
		d.log.Warn("listen: changed; the HTTP server keeps its address until backupd restarts", "listen", old.Listen, "new_listen", cfg.Listen)
	}
	if cfg.StateDir != old.StateDir {
		d.log.Warn("state_dir: changed; the alert state stays where it is until backupd restarts", "state_dir", old.StateDir)
	}
	d.leases.forget()
	d.loadTrust(cfg)
	d.metrics.reloads.WithLabelValues("success").Inc()
	d.log.Info("config reloaded", "file", cfg.File, "policies", slices.Sorted(maps.Keys(cfg.Policies)))
	return added
}

func (d *Daemon) jobList() []*Job {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.jobs)
}

// startJobs starts a scheduling loop per job and, at start (catchUp nil: every policy) or
// for policies a reload added, the catch-up check of jobs that ask for it.
func (d *Daemon) startJobs(loopsCtx, jobsCtx context.Context, loops *sync.WaitGroup, jobs []*Job, catchUp map[string]bool) {
	for _, j := range jobs {
		loops.Go(func() { d.loop(loopsCtx, jobsCtx, j) })
		if j.CatchUp && j.LastRun != nil && (catchUp == nil || catchUp[j.Policy]) {
			loops.Go(func() { d.catchUp(loopsCtx, jobsCtx, j) })
		}
	}
}

// loop fires a job at each tick of its schedule (plus jitter) until ctx ends.
func (d *Daemon) loop(ctx, jobsCtx context.Context, j *Job) {
	var last time.Time
	for {
		now := d.now()
		from := now
		if from.Before(last) {
			from = last // never the same tick twice, whatever the clock does
		}
		tick := j.Schedule.Next(from)
		if tick.IsZero() {
			d.log.Warn("the schedule has no next run", "policy", j.Policy, "job", j.Kind, "schedule", j.Schedule.Spec)
			return
		}
		delay := schedule.JitterDelay(j.Jitter, j.Schedule.Interval(tick.Add(-time.Nanosecond)), rand.Float64())
		d.setNext(j, tick)
		t := time.NewTimer(tick.Add(delay).Sub(now))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		last = tick
		d.fire(jobsCtx, j, tick, "schedule")
	}
}

// catchUp runs a job once now when the targets show that its last tick was missed.
func (d *Daemon) catchUp(ctx, jobsCtx context.Context, j *Job) {
	newest, err := j.LastRun(ctx)
	if err != nil {
		if ctx.Err() == nil {
			d.log.Warn("catch-up check failed: cannot tell whether a run was missed", "policy", j.Policy, "job", j.Kind, "error", err)
		}
		return
	}
	tick, missed := schedule.MissedTick(j.Schedule, newest, d.now())
	if !missed {
		return
	}
	last := "none"
	if !newest.IsZero() {
		last = newest.UTC().Format(time.RFC3339)
	}
	d.log.Info("catch-up: the last scheduled run was missed; running it now", "policy", j.Policy, "job", j.Kind,
		"missed_tick", tick, "newest_run", last)
	d.fire(jobsCtx, j, tick, "catch-up")
}

func (d *Daemon) setNext(j *Job, tick time.Time) {
	d.mu.Lock()
	d.stateOf(j.Name()).next = tick
	d.mu.Unlock()
	d.metrics.nextRun.WithLabelValues(j.Policy, j.Kind).Set(float64(tick.Unix()))
}

// stateOf returns the state of a job; d.mu must be held.
func (d *Daemon) stateOf(name string) *jobState {
	st := d.state[name]
	if st == nil {
		st = &jobState{}
		d.state[name] = st
	}
	return st
}

// fire starts a run of j for tick, unless the previous run is still going: a job never
// overlaps itself, and the skipped tick is logged and counted.
func (d *Daemon) fire(ctx context.Context, j *Job, tick time.Time, why string) {
	name := j.Name()
	log := d.log.With("policy", j.Policy, "job", j.Kind, "tick", tick.UTC().Format(time.RFC3339))
	d.mu.Lock()
	if d.stopping {
		d.mu.Unlock()
		return
	}
	st := d.stateOf(name)
	if st.running {
		since := st.runStart
		st.lastSkip = fmt.Sprintf("tick %s skipped: the run of %s was still going", tick.UTC().Format(time.RFC3339), st.runTick.UTC().Format(time.RFC3339))
		d.mu.Unlock()
		log.Warn("tick skipped: the previous run of this job is still going", "running_since", since)
		d.metrics.skip(j, "overlap")
		if j.Kind == KindBackup {
			d.mu.Lock()
			newest := d.newest[j.Policy].ID // as last seen; the periodic check compares
			d.mu.Unlock()
			d.noteSkip(j.Policy, newest)
		}
		return
	}
	st.running, st.runTick, st.runStart = true, tick, d.now()
	d.jobsWG.Add(1)
	d.mu.Unlock()

	running := d.metrics.running.WithLabelValues(j.Policy, j.Kind)
	running.Inc()
	go func() {
		defer d.jobsWG.Done()
		defer running.Dec()
		var start, end time.Time
		var err error
		defer func() {
			d.mu.Lock()
			defer d.mu.Unlock()
			st := d.stateOf(name)
			st.running = false
			switch {
			case start.IsZero():
			case errors.Is(err, ErrSkipped):
				st.lastSkip = err.Error()
			default:
				st.lastTick, st.lastStart, st.lastEnd, st.lastOK = tick, start, end, err == nil
				st.lastErr = ""
				if err != nil {
					st.lastErr = err.Error()
				}
			}
		}()
		if !d.acquireSlot() {
			d.metrics.skip(j, "shutdown")
			return
		}
		defer d.releaseSlot()
		log.Debug("job starting", "why", why)
		start = d.now()
		err = j.Run(ctx, tick)
		end = d.now()
		if errors.Is(err, ErrSkipped) {
			d.metrics.skip(j, "other_host")
			return
		}
		d.metrics.finished(j, start, end, err == nil)
	}()
}

// acquireSlot waits for one of max_concurrent_jobs; false when the daemon is stopping.
func (d *Daemon) acquireSlot() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for !d.stopping && d.active >= d.cfg.MaxConcurrentJobs {
		d.slotFree.Wait()
	}
	if d.stopping {
		return false
	}
	d.active++
	return true
}

func (d *Daemon) releaseSlot() {
	d.mu.Lock()
	d.active--
	d.slotFree.Broadcast()
	d.mu.Unlock()
}

// drain stops new runs, waits up to shutdown_timeout for running jobs and then cancels them.
func (d *Daemon) drain(cancelJobs context.CancelFunc) {
	d.mu.Lock()
	d.stopping = true
	d.slotFree.Broadcast()
	timeout := d.cfg.ShutdownTimeout
	var running []string
	for name, st := range d.state {
		if st.running {
			running = append(running, name)
		}
	}
	d.mu.Unlock()
	done := make(chan struct{})
	go func() {
		d.jobsWG.Wait()
		close(done)
	}()
	if len(running) > 0 {
		slices.Sort(running)
		d.log.Info("stopping: waiting for running jobs to finish", "jobs", running, "shutdown_timeout", timeout)
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		d.log.Warn("shutdown_timeout passed: cancelling the running jobs; the sets they were writing are not committed", "jobs", running)
		cancelJobs()
		<-done
	}
}

// checkLoop checks staleness and target reachability at start and then every CheckInterval:
// a daemon whose jobs never run must still notice that nothing is being backed up.
func (d *Daemon) checkLoop(ctx context.Context) {
	t := time.NewTicker(d.opts.CheckInterval)
	defer t.Stop()
	for {
		d.checkReady(ctx)
		cfg := d.config()
		for _, name := range slices.Sorted(maps.Keys(cfg.Policies)) {
			d.checkStale(ctx, cfg, cfg.Policies[name])
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// errStopListing ends a listing after its first object.
var errStopListing = errors.New("enough")

// checkReady asks every target for one object: /readyz reports the answers.
func (d *Daemon) checkReady(ctx context.Context) {
	cfg := d.config()
	res := map[string]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for name, tc := range cfg.Targets {
		wg.Go(func() {
			msg := ""
			t, err := targets.Open(name, tc.Spec(), targets.Options{Logger: d.log, Metrics: d.tmetrics, Retry: targets.RetryPolicy{MaxAttempts: 1}})
			if err == nil {
				cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
				err = t.List(cctx, "", func(targets.ObjectInfo) error { return errStopListing })
				cancel()
				if errors.Is(err, errStopListing) {
					err = nil
				}
			}
			if err != nil {
				msg = err.Error()
			}
			mu.Lock()
			res[name] = msg
			mu.Unlock()
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return
	}
	d.mu.Lock()
	d.ready, d.readyAt = res, d.now()
	d.mu.Unlock()
}
