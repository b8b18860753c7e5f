package daemon

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/backupd/backupd/internal/backup"
	"github.com/backupd/backupd/internal/targets"
)

// Error kinds counted by backupd_errors_total.
const (
	errKindBackup     = "backup"      // a backup job failed
	errKindTarget     = "target"      // one target failed in a job that succeeded elsewhere
	errKindRetention  = "retention"   // pruning or garbage collection failed on a target
	errKindLease      = "lease"       // coordinating with other hosts failed
	errKindStaleCheck = "stale_check" // the targets could not be listed to check staleness
	errKindNotify     = "notify"      // an alert could not be delivered on any channel
	errKindShrink     = "shrink_check"
	errKindReload     = "reload" // SIGHUP brought an invalid config
)

// Metrics are the daemon's Prometheus series, all named backupd_…, in a registry of its own
// (no global state: tests run several daemons in one process).
type Metrics struct {
	lastSuccess  *prometheus.GaugeVec
	lastFinished *prometheus.GaugeVec
	lastDuration *prometheus.GaugeVec
	runs         *prometheus.CounterVec
	running      *prometheus.GaugeVec
	skipped      *prometheus.CounterVec
	nextRun      *prometheus.GaugeVec
	errors       *prometheus.CounterVec

	setBytes      *prometheus.GaugeVec
	setPlainBytes *prometheus.GaugeVec
	setRows       *prometheus.GaugeVec
	setTables     *prometheus.GaugeVec
	targetResult  *prometheus.GaugeVec
	targetSuccess *prometheus.GaugeVec
	newestSet     *prometheus.GaugeVec
	untrustedSets *prometheus.GaugeVec
	sets          *prometheus.GaugeVec
	pruned        *prometheus.CounterVec
	collected     *prometheus.CounterVec

	drillResult *prometheus.GaugeVec
	drillRTO    *prometheus.GaugeVec
	drillRPO    *prometheus.GaugeVec

	openAlerts prometheus.Gauge
	reloads    *prometheus.CounterVec
	info       *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer, version string) *Metrics {
	g := func(name, help string, labels ...string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
	}
	c := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	}
	m := &Metrics{
		lastSuccess:  g("backupd_last_success_timestamp_seconds", "When the last successful run of a job finished (Unix time).", "policy", "job"),
		lastFinished: g("backupd_last_run_timestamp_seconds", "When the last run of a job finished, successful or not (Unix time).", "policy", "job"),
		lastDuration: g("backupd_last_run_duration_seconds", "How long the last run of a job took.", "policy", "job"),
		runs:         c("backupd_job_runs_total", "Runs of a job by result: success or failure (cancelled by shutdown counts as failure).", "policy", "job", "result"),
		running:      g("backupd_running_jobs", "Jobs running now (waiting for a slot of max_concurrent_jobs included).", "policy", "job"),
		skipped: c("backupd_skipped_ticks_total", "Scheduled ticks that did not run here: overlap (the previous run still going), "+
			"other_host (another host has the tick or is still running), shutdown.", "policy", "job", "reason"),
		nextRun: g("backupd_next_run_timestamp_seconds", "The next scheduled tick of a job (Unix time).", "policy", "job"),
		errors:  c("backupd_errors_total", "Errors by kind: backup, target, retention, lease, stale_check, notify, shrink_check, reload.", "policy", "kind"),

		setBytes:      g("backupd_last_backup_bytes", "Stored (compressed, encrypted) bytes of the last committed set.", "policy"),
		setPlainBytes: g("backupd_last_backup_plain_bytes", "Bytes of the last committed set before compression.", "policy"),
		setRows:       g("backupd_last_backup_rows", "Rows in the last committed set.", "policy"),
		setTables:     g("backupd_last_backup_tables", "Tables in the last committed set.", "policy"),
		targetResult:  g("backupd_target_last_backup_success", "1 when the last backup committed on the target, 0 when it failed there.", "policy", "target"),
		targetSuccess: g("backupd_target_last_success_timestamp_seconds", "When a backup last committed on the target (Unix time).", "policy", "target"),
		newestSet:     g("backupd_newest_set_timestamp_seconds", "Start time of the newest committed set on any target, as last checked (Unix time).", "policy"),
		untrustedSets: g("backupd_untrusted_sets", "Sets newer than the newest committed set whose manifest is present but not trusted (unsigned, badly signed, signed by an untrusted key, unparseable or future-dated), as last checked.", "policy"),
		sets:          g("backupd_sets", "Committed sets on a target after the last retention run.", "policy", "target"),
		pruned:        c("backupd_pruned_sets_total", "Sets deleted by retention.", "policy", "target"),
		collected:     c("backupd_collected_uncommitted_sets_total", "Uncommitted sets removed by garbage collection.", "policy", "target"),

		drillResult: g("backupd_drill_last_success", "1 when the last restoration drill passed, 0 when it failed.", "policy"),
		drillRTO:    g("backupd_drill_rto_seconds", "How long the last drill's restore took (recovery time).", "policy"),
		drillRPO:    g("backupd_drill_rpo_seconds", "How old the data restored by the last drill was (recovery point).", "policy"),

		openAlerts: prometheus.NewGauge(prometheus.GaugeOpts{Name: "backupd_open_alerts", Help: "Incidents open now."}),
		reloads:    c("backupd_config_reloads_total", "Config reloads (SIGHUP) by result: success or failure.", "result"),
		info:       g("backupd_build_info", "Always 1; the version label says which backupd runs.", "version"),
	}
	reg.MustRegister(m.lastSuccess, m.lastFinished, m.lastDuration, m.runs, m.running, m.skipped, m.nextRun, m.errors,
		m.setBytes, m.setPlainBytes, m.setRows, m.setTables, m.targetResult, m.targetSuccess, m.newestSet, m.sets, m.pruned, m.collected,
		m.drillResult, m.drillRTO, m.drillRPO, m.openAlerts, m.reloads, m.info, m.untrustedSets)
	m.info.WithLabelValues(version).Set(1)
	return m
}

// newRegistry returns the daemon's registry: its own series, the target series and the Go
// runtime and process collectors.
func newRegistry(version string) (*prometheus.Registry, *Metrics, *targets.Metrics) {
	reg := prometheus.NewRegistry()
	m, tm := registerAll(reg, version)
	return reg, m, tm
}

// registerAll registers with reg every collector /metrics serves; ExportedSeries lists them
// through it too, so the list cannot miss one.
func registerAll(reg prometheus.Registerer, version string) (*Metrics, *targets.Metrics) {
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return newMetrics(reg, version), targets.NewMetrics(reg)
}

func (m *Metrics) error(policy, kind string) { m.errors.WithLabelValues(policy, kind).Inc() }

func (m *Metrics) skip(j *Job, reason string) {
	m.skipped.WithLabelValues(j.Policy, j.Kind, reason).Inc()
}

func (m *Metrics) finished(j *Job, start, end time.Time, ok bool) {
	result := "failure"
	if ok {
		result = "success"
		m.lastSuccess.WithLabelValues(j.Policy, j.Kind).Set(float64(end.UnixNano()) / 1e9)
	}
	m.runs.WithLabelValues(j.Policy, j.Kind, result).Inc()
	m.lastFinished.WithLabelValues(j.Policy, j.Kind).Set(float64(end.UnixNano()) / 1e9)
	m.lastDuration.WithLabelValues(j.Policy, j.Kind).Set(end.Sub(start).Seconds())
}

// backup records what a backup job produced.
func (m *Metrics) backup(res *backup.Result, now time.Time) {
	if res == nil {
		return
	}
	for _, tr := range res.Targets {
		if tr.Err == nil {
			m.targetResult.WithLabelValues(res.Policy, tr.Name).Set(1)
			m.targetSuccess.WithLabelValues(res.Policy, tr.Name).Set(float64(now.Unix()))
		} else {
			m.targetResult.WithLabelValues(res.Policy, tr.Name).Set(0)
		}
	}
	if res.Manifest == nil {
		return
	}
	tables, rows := res.Manifest.Counts()
	m.setBytes.WithLabelValues(res.Policy).Set(float64(res.Manifest.Bytes()))
	m.setPlainBytes.WithLabelValues(res.Policy).Set(float64(res.Manifest.PlainBytes()))
	m.setRows.WithLabelValues(res.Policy).Set(float64(rows))
	m.setTables.WithLabelValues(res.Policy).Set(float64(tables))
}

// Drill records a restoration drill's outcome; the drill series have no samples until a
// policy's first drill has run.
func (m *Metrics) Drill(policy string, ok bool, rto, rpo time.Duration) {
	v := 0.0
	if ok {
		v = 1
	}
	m.drillResult.WithLabelValues(policy).Set(v)
	if ok {
		m.drillRTO.WithLabelValues(policy).Set(rto.Seconds())
		m.drillRPO.WithLabelValues(policy).Set(rpo.Seconds())
	}
}

// forget removes the series of a policy that is no longer configured, so that dashboards do
// not show a removed policy as forever stale.
func (m *Metrics) forget(policy string) {
	l := prometheus.Labels{"policy": policy}
	for _, v := range []*prometheus.GaugeVec{m.lastSuccess, m.lastFinished, m.lastDuration, m.running, m.nextRun,
		m.setBytes, m.setPlainBytes, m.setRows, m.setTables, m.targetResult, m.targetSuccess, m.newestSet, m.sets,
		m.drillResult, m.drillRTO, m.drillRPO, m.untrustedSets} {
		v.DeletePartialMatch(l)
	}
	for _, v := range []*prometheus.CounterVec{m.runs, m.skipped, m.errors, m.pruned, m.collected} {
		v.DeletePartialMatch(l)
	}
}
