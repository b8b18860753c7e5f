package daemon

import (
	"fmt"
	"html/template"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Handler serves /metrics, /healthz, /readyz and the status page at /.
func (d *Daemon) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.reg, promhttp.HandlerOpts{Registry: d.reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", d.serveReady)
	mux.HandleFunc("GET /{$}", d.serveStatus)
	return mux
}

// serveReady answers 200 when the config is loaded and every target answered at the last
// check, 503 with the reasons otherwise.
func (d *Daemon) serveReady(w http.ResponseWriter, r *http.Request) {
	d.mu.Lock()
	ready, at := maps.Clone(d.ready), d.readyAt
	d.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if ready == nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "not ready: the targets have not been checked yet")
		return
	}
	var problems []string
	for _, name := range slices.Sorted(maps.Keys(ready)) {
		if msg := ready[name]; msg != "" {
			problems = append(problems, fmt.Sprintf("target %s: %s", name, msg))
		}
	}
	if len(problems) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "not ready (checked %s):\n%s\n", at.UTC().Format(time.RFC3339), strings.Join(problems, "\n"))
		return
	}
	fmt.Fprintf(w, "ready: config loaded, %d target(s) reachable (checked %s)\n", len(ready), at.UTC().Format(time.RFC3339))
}

type statusPage struct {
	Host, Version, ConfigFile string
	Started, Now              string
	Policies                  []statusPolicy
	Alerts                    []statusAlert
	Targets                   []statusTarget
}

type statusPolicy struct {
	Name, Schedule, Targets, Retention, Channels string
	NewestSet, NewestAge                         string
	Jobs                                         []statusJob
}

type statusJob struct {
	Kind, Next, Running, LastRun, LastResult, LastSkip string
	OK, Failed                                         bool
}

type statusAlert struct{ Key, Since, Failures, Detail string }

type statusTarget struct{ Name, State string }

func (d *Daemon) serveStatus(w http.ResponseWriter, r *http.Request) {
	now := d.now()
	ts := func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.Local().Format("2006-01-02 15:04:05 MST")
	}
	host, _ := os.Hostname()
	d.mu.Lock()
	cfg := d.cfg
	page := statusPage{Host: host, Version: d.opts.Version, ConfigFile: cfg.File, Started: ts(d.started), Now: ts(now)}
	for _, name := range slices.Sorted(maps.Keys(cfg.Policies)) {
		p := cfg.Policies[name]
		sp := statusPolicy{Name: name, Schedule: p.Schedule, Targets: strings.Join(p.Targets, ", "), Retention: "none (every set is kept)"}
		if r := p.Retention; !r.IsZero() {
			sp.Retention = fmt.Sprintf("keep_last %d, hourly %d, daily %d, weekly %d, monthly %d, yearly %d", r.KeepLast, r.Hourly, r.Daily, r.Weekly, r.Monthly, r.Yearly)
		}
		var chans []string
		if len(p.Alerts.Email) > 0 {
			chans = append(chans, "email to "+strings.Join(p.Alerts.Email, ", "))
		}
		if p.Alerts.Webhook != "" {
			chans = append(chans, "webhook at "+webhookHost(p.Alerts.Webhook))
		}
		sp.Channels = strings.Join(chans, "; ")
		if sp.Channels == "" {
			sp.Channels = "none: alerts are only logged"
		}
		if n := d.newest[name]; n.ID != "" {
			sp.NewestSet = n.ID
			sp.NewestAge = now.Sub(n.Time).Round(time.Second).String() + " ago"
		}
		for _, j := range d.jobs {
			if j.Policy != name {
				continue
			}
			sj := statusJob{Kind: j.Kind}
			if st := d.state[j.Name()]; st != nil {
				sj.Next = ts(st.next)
				if st.running {
					sj.Running = "since " + ts(st.runStart) + " (tick " + ts(st.runTick) + ")"
				}
				if !st.lastEnd.IsZero() {
					sj.LastRun = ts(st.lastStart) + ", took " + st.lastEnd.Sub(st.lastStart).Round(time.Millisecond).String()
					sj.OK, sj.Failed = st.lastOK, !st.lastOK
					sj.LastResult = "succeeded"
					if !st.lastOK {
						sj.LastResult = "FAILED: " + st.lastErr
					}
				}
				sj.LastSkip = st.lastSkip
			}
			sp.Jobs = append(sp.Jobs, sj)
		}
		page.Policies = append(page.Policies, sp)
	}
	for _, name := range slices.Sorted(maps.Keys(d.ready)) {
		state := "reachable"
		if msg := d.ready[name]; msg != "" {
			state = "UNREACHABLE: " + msg
		}
		page.Targets = append(page.Targets, statusTarget{Name: name, State: state})
	}
	d.mu.Unlock()
	for _, inc := range d.alerts.open() {
		page.Alerts = append(page.Alerts, statusAlert{Key: inc.Key, Since: ts(inc.Opened), Failures: fmt.Sprint(inc.Failures), Detail: inc.Detail})
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := statusTemplate.Execute(w, page); err != nil {
		d.log.Warn("render the status page", "error", err)
	}
}

var statusTemplate = template.Must(template.New("status").Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><meta http-equiv="refresh" content="30"><title>backupd on {{.Host}}</title></head>
<body style="font-family: sans-serif; font-size: 14px; color: #222; margin: 24px; max-width: 1100px">
<h1 style="font-size: 20px; margin: 0 0 4px 0">backupd on {{.Host}}</h1>
<p style="color: #666; margin: 0 0 16px 0">version {{.Version}} · config {{.ConfigFile}} · started {{.Started}} · now {{.Now}} · <a href="/metrics">metrics</a> · <a href="/readyz">readiness</a></p>
<h2 style="font-size: 16px">Open alerts</h2>
{{if .Alerts}}<table style="border-collapse: collapse; margin-bottom: 16px">
<tr><th style="text-align: left; padding: 4px 12px 4px 0">incident</th><th style="text-align: left; padding: 4px 12px 4px 0">since</th><th style="text-align: left; padding: 4px 12px 4px 0">checks failed</th><th style="text-align: left; padding: 4px 0">detail</th></tr>
{{range .Alerts}}<tr style="color: #b00020"><td style="padding: 4px 12px 4px 0; vertical-align: top">{{.Key}}</td><td style="padding: 4px 12px 4px 0; vertical-align: top; white-space: nowrap">{{.Since}}</td><td style="padding: 4px 12px 4px 0; vertical-align: top">{{.Failures}}</td><td style="padding: 4px 0; font-family: monospace; white-space: pre-wrap">{{.Detail}}</td></tr>
{{end}}</table>
{{else}}<p style="color: #1b5e20">None.</p>
{{end}}<h2 style="font-size: 16px">Policies</h2>
{{range .Policies}}<div style="border: 1px solid #ddd; border-radius: 4px; padding: 8px 12px; margin-bottom: 12px">
<h3 style="font-size: 15px; margin: 4px 0 8px 0">{{.Name}}</h3>
<table style="border-collapse: collapse">
<tr><th style="text-align: left; padding: 2px 12px 2px 0">schedule</th><td style="font-family: monospace">{{.Schedule}}</td></tr>
<tr><th style="text-align: left; padding: 2px 12px 2px 0">targets</th><td>{{.Targets}}</td></tr>
<tr><th style="text-align: left; padding: 2px 12px 2px 0">retention</th><td>{{.Retention}}</td></tr>
<tr><th style="text-align: left; padding: 2px 12px 2px 0">alerts</th><td>{{.Channels}}</td></tr>
<tr><th style="text-align: left; padding: 2px 12px 2px 0">newest set</th><td style="font-family: monospace">{{if .NewestSet}}{{.NewestSet}} ({{.NewestAge}}){{else}}none seen yet{{end}}</td></tr>
{{range .Jobs}}<tr><th style="text-align: left; padding: 6px 12px 2px 0">{{.Kind}}: next run</th><td style="padding-top: 6px">{{.Next}}</td></tr>
{{if .Running}}<tr><th style="text-align: left; padding: 2px 12px 2px 0">{{.Kind}}: running</th><td>{{.Running}}</td></tr>
{{end}}<tr><th style="text-align: left; padding: 2px 12px 2px 0">{{.Kind}}: last run</th><td>{{if .LastRun}}{{.LastRun}} — <span style="color: {{if .OK}}#1b5e20{{else}}#b00020{{end}}">{{.LastResult}}</span>{{else}}none yet{{end}}</td></tr>
{{if .LastSkip}}<tr><th style="text-align: left; padding: 2px 12px 2px 0">{{.Kind}}: last skipped tick</th><td style="color: #666">{{.LastSkip}}</td></tr>
{{end}}{{end}}</table>
</div>
{{end}}<h2 style="font-size: 16px">Targets</h2>
{{if .Targets}}<table style="border-collapse: collapse">
{{range .Targets}}<tr><th style="text-align: left; padding: 2px 12px 2px 0">{{.Name}}</th><td>{{.State}}</td></tr>
{{end}}</table>
{{else}}<p>Not checked yet.</p>
{{end}}</body></html>
`))
