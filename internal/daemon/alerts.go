package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/backupd/backupd/internal/config"
	"github.com/backupd/backupd/internal/notify"
)

// incidentsFile holds the alert state in the state directory, so that a restarted daemon
// neither repeats an alert nor forgets to send the recovery notice.
const incidentsFile = "incidents.json"

// notifyTimeout bounds the delivery of one notification on every channel, retries included.
const notifyTimeout = 2 * time.Minute

// observation is one check of one kind of problem of a policy.
type observation struct {
	event    string // notify.Event* of the problem
	sub      string // what within the policy, e.g. the target of target_failed
	failing  bool
	title    string // the alert's headline after "<policy>: "
	recovery string // the recovery notice's headline after "<policy>: "
	text     string // what happened and what to do
	detail   string // the error, kept with the incident
	severity string
	fields   map[string]string
}

func (o observation) key(policy string) string {
	k := policy + "/" + o.event
	if o.sub != "" {
		k += "/" + o.sub
	}
	return k
}

// alerter turns observations into one alert per incident and one recovery notice, through
// the policy's channels, and keeps the incident state on disk.
type alerter struct {
	now     func() time.Time // the daemon's injected clock
	log     *slog.Logger
	file    string
	host    string
	metrics *Metrics

	inc    notify.Incidents
	saveMu sync.Mutex
}

func newAlerter(stateDir string, log *slog.Logger, m *Metrics, now func() time.Time) *alerter {
	host, _ := os.Hostname()
	a := &alerter{log: log, file: filepath.Join(stateDir, incidentsFile), host: host, metrics: m, now: now}
	data, err := os.ReadFile(a.file)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		log.Error("cannot read the alert state; open incidents may be announced again", "file", a.file, "error", err)
	default:
		if err := json.Unmarshal(data, &a.inc); err != nil {
			log.Error("cannot parse the alert state; starting afresh", "file", a.file, "error", err)
		}
	}
	m.openAlerts.Set(float64(len(a.inc.Open())))
	return a
}

// observe records one observation and sends what it calls for.
func (a *alerter) observe(ctx context.Context, cfg *config.Config, p *config.Policy, o observation) {
	now := a.now()
	key := o.key(p.Name)
	action, inc := a.inc.Observe(now, key, o.failing, o.detail)
	defer a.save()
	if action == notify.ActionNone {
		return
	}
	n := notify.Notification{Event: o.event, Policy: p.Name, Severity: o.severity, Time: now, Fields: map[string]string{"host": a.host}}
	for k, v := range o.fields {
		n.Fields[k] = v
	}
	switch action {
	case notify.ActionAlert:
		n.Title = p.Name + ": " + o.title
		n.Text = o.text
	case notify.ActionRecover:
		n.Event = notify.EventRecovered
		n.Severity = notify.SeverityInfo
		n.Title = p.Name + ": " + o.recovery
		n.Text = o.text
		n.Fields["incident"] = o.event
		n.Fields["failing since"] = inc.Opened.UTC().Format(time.RFC3339)
		n.Fields["failed checks"] = fmt.Sprint(inc.Failures)
	}
	log := a.log.With("policy", p.Name, "event", o.event, "action", action.String())
	if err := a.send(ctx, cfg, p, n, log); err != nil {
		a.inc.Undelivered(inc, action)
		a.metrics.error(p.Name, errKindNotify)
		log.Error("alert not delivered on any channel; it is sent again at the next check", "error", err)
		return
	}
	log.Info("alert sent", "title", n.Title)
}

// send delivers n on each of the policy's channels. It fails only when every channel failed:
// one channel that worked has told people, and asking again would repeat it there.
func (a *alerter) send(ctx context.Context, cfg *config.Config, p *config.Policy, n notify.Notification, log *slog.Logger) error {
	type channel struct {
		name string
		n    notify.Notifier
	}
	var chans []channel
	if len(p.Alerts.Email) > 0 && cfg.SMTP != nil {
		chans = append(chans, channel{"email", &notify.Email{SMTP: smtpConfig(cfg.SMTP), To: p.Alerts.Email}})
	}
	if p.Alerts.Webhook != "" {
		chans = append(chans, channel{"webhook " + webhookHost(p.Alerts.Webhook), &notify.Webhook{URL: p.Alerts.Webhook}})
	}
	if len(chans) == 0 {
		log.Warn("no alert channel configured (alerts.email, alerts.webhook); the alert is only logged and shown on the status page",
			"title", n.Title, "text", n.Text)
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), notifyTimeout)
	defer cancel()
	errs := make([]error, len(chans))
	var wg sync.WaitGroup
	for i, c := range chans {
		wg.Go(func() { errs[i] = c.n.Notify(ctx, n) })
	}
	wg.Wait()
	failed := 0
	for i, err := range errs {
		if err != nil {
			failed++
			log.Warn("alert channel failed", "channel", chans[i].name, "error", err)
		}
	}
	if failed == len(chans) {
		return errors.Join(errs...)
	}
	return nil
}

// open returns the incidents failing now, for the status page.
func (a *alerter) open() []notify.Incident { return a.inc.Open() }

// forgetPolicy drops the incidents of a policy removed from the config.
func (a *alerter) forgetPolicy(policy string) {
	for _, inc := range a.inc.Open() {
		if strings.HasPrefix(inc.Key, policy+"/") {
			a.inc.Forget(inc.Key)
		}
	}
	a.save()
}

// save writes the state atomically; a failure is logged, since alerting itself still works.
func (a *alerter) save() {
	a.saveMu.Lock()
	defer a.saveMu.Unlock()
	a.metrics.openAlerts.Set(float64(len(a.inc.Open())))
	data, err := json.MarshalIndent(&a.inc, "", "  ")
	if err == nil {
		tmp := a.file + ".tmp"
		if err = os.WriteFile(tmp, data, 0o600); err == nil {
			err = os.Rename(tmp, a.file)
		}
	}
	if err != nil {
		a.log.Error("cannot save the alert state; a restart may repeat open alerts", "file", a.file, "error", err)
	}
}

func smtpConfig(s *config.SMTP) notify.SMTPConfig {
	return notify.SMTPConfig{Host: s.Host, Port: s.Port, Username: s.Username, Password: s.Password, From: s.From, StartTLS: s.StartTLS}
}

// webhookHost is all of a webhook URL that may be shown: its path is a password.
func webhookHost(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(invalid URL)"
	}
	return u.Scheme + "://" + u.Host
}
