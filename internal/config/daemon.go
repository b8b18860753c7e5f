package config

import (
	"fmt"
	"net/mail"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Object lock modes of an s3 target (object_lock_mode).
const (
	ObjectLockCompliance = "compliance" // nobody can delete a retained object early (the default)
	ObjectLockGovernance = "governance" // accounts with s3:BypassGovernanceRetention can
)

// maxObjectLockDays keeps a typo (3650 for 365) from locking a bucket's objects for decades.
const maxObjectLockDays = 3660

// minUncommittedGrace: a shorter grace could collect a set while it is still being written.
const minUncommittedGrace = time.Minute

// StaleOff is Alerts.StaleAfter when stale alerts are turned off (stale_after: off).
const StaleOff = time.Duration(-1)

// Alerts says who is told about problems, and when a quiet policy counts as a problem.
type Alerts struct {
	Email   []string // addresses; needs the smtp section
	Webhook string   // secret (its path carries a token); Slack-compatible incoming webhook URL
	// StaleAfter: alert when the newest committed set is older than this. 0 means derived from
	// the schedule (the next run after the newest set, plus up to 2h for it to finish, and at
	// least 1h); StaleOff turns the check off.
	StaleAfter time.Duration
	// ShrinkAlert is a fraction: alert when a set's rows or bytes, or a table's rows, shrank
	// by more than this against the previous set. 0 turns the check off.
	ShrinkAlert float64
}

func alertsFields(a *Alerts) fields {
	fs := fields{
		"email":        strList(&a.Email),
		"stale_after":  durationOrOff(&a.StaleAfter),
		"shrink_alert": percent(&a.ShrinkAlert),
	}
	secret(fs, "webhook", &a.Webhook)
	return fs
}

// percent decodes "50%" into 0.5; "off" or "0%" into 0.
func percent(dst *float64) field {
	return func(d *decoder, n *yaml.Node, p string) {
		s, ok := d.scalar(n, p, "a percentage")
		if !ok {
			return
		}
		s = strings.TrimSpace(s)
		if strings.EqualFold(s, "off") {
			*dst = 0
			return
		}
		num, hasPct := strings.CutSuffix(s, "%")
		v, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
		if !hasPct || err != nil || v < 0 || v > 100 {
			d.nodeProblem(n, p, fmt.Sprintf("want a percentage from 0%% to 100%%, got %s", d.quote(p, s)), "e.g. 50%, or off")
			return
		}
		*dst = v / 100
	}
}

// durationOrOff decodes a duration, or "off" into StaleOff.
func durationOrOff(dst *time.Duration) field {
	return func(d *decoder, n *yaml.Node, p string) {
		s, ok := d.scalar(n, p, "a duration")
		if !ok {
			return
		}
		s = strings.TrimSpace(s)
		if strings.EqualFold(s, "off") {
			*dst = StaleOff
			return
		}
		v, err := time.ParseDuration(s)
		if err != nil || v <= 0 {
			d.nodeProblem(n, p, fmt.Sprintf("%s is not a positive duration", d.quote(p, s)), "write a Go duration like 26h or 90m, or off")
			return
		}
		*dst = v
	}
}

// checkDaemon checks the daemon's keys and gives every policy its effective alerts: each key
// the policy's alerts: section gives wins, the others come from the global alerts: section.
func (d *decoder) checkDaemon(c *Config) {
	if c.MaxConcurrentJobs < 1 {
		d.report("max_concurrent_jobs", fmt.Sprintf("max_concurrent_jobs must be at least 1, got %d", c.MaxConcurrentJobs), "")
	}
	if c.ShutdownTimeout <= 0 {
		d.report("shutdown_timeout", "shutdown_timeout must be more than 0", "e.g. 5m: how long SIGTERM lets a running backup finish")
	}
	d.checkAlerts(c, "alerts", &c.Alerts)

	for _, name := range sortedKeys(c.Targets) {
		t := c.Targets[name]
		p := "targets." + name
		if t.ObjectLockDays < 0 || t.ObjectLockDays > maxObjectLockDays {
			d.report(joinPath(p, "object_lock_days"), fmt.Sprintf("object_lock_days %d is outside 0..%d", t.ObjectLockDays, maxObjectLockDays),
				"the number of days every object stays undeletable")
		}
		if t.ObjectLockMode != "" && t.ObjectLockDays == 0 {
			d.report(joinPath(p, "object_lock_mode"), "object_lock_mode is set but object_lock_days is not", "set object_lock_days too, or remove object_lock_mode")
		}
	}

	for _, name := range sortedKeys(c.Policies) {
		pol := c.Policies[name]
		p := "policies." + name
		if pol.Jitter < 0 {
			d.report(joinPath(p, "jitter"), "jitter must not be negative", "e.g. 5m: runs start up to that much after their scheduled time")
		}
		if pol.UncommittedGrace < minUncommittedGrace {
			d.report(joinPath(p, "uncommitted_grace"), fmt.Sprintf("uncommitted_grace %s is too short: a set still being written could be collected", pol.UncommittedGrace),
				"make it longer than the longest backup, e.g. 24h (the default)")
		}
		ap := joinPath(p, "alerts")
		own := pol.Alerts
		eff := c.Alerts
		if d.given(ap, "email") {
			eff.Email = own.Email
		}
		if d.given(ap, "webhook") || d.given(ap, "webhook_file") {
			eff.Webhook = own.Webhook
		}
		if d.given(ap, "stale_after") {
			eff.StaleAfter = own.StaleAfter
		}
		if d.given(ap, "shrink_alert") {
			eff.ShrinkAlert = own.ShrinkAlert
		}
		pol.Alerts = eff
		if _, ok := d.pos[ap]; ok {
			d.checkAlerts(c, ap, &own)
		}
	}
}

func (d *decoder) given(p, key string) bool {
	_, ok := d.pos[joinPath(p, key)]
	return ok
}

func (d *decoder) checkAlerts(c *Config, p string, a *Alerts) {
	for i, addr := range a.Email {
		ip := indexPath(joinPath(p, "email"), i)
		if d.bad[ip] {
			continue
		}
		if _, err := mail.ParseAddress(addr); err != nil {
			d.report(ip, fmt.Sprintf("%s is not an email address", d.quote(ip, addr)), "e.g. ops@example.com")
		}
	}
	if len(a.Email) > 0 && c.SMTP == nil {
		d.report(joinPath(p, "email"), "alerts go by email, but there is no smtp: section", "add smtp: with the mail server, or remove the addresses")
	}
	if a.Webhook != "" {
		kp := joinPath(p, "webhook")
		if _, ok := d.pos[kp]; !ok {
			kp += "_file"
		}
		// Never quote the URL: its path is the webhook's password.
		u, err := url.Parse(a.Webhook)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			d.report(kp, "the webhook is not an http:// or https:// URL", "paste the incoming-webhook URL as given by Slack, Mattermost or the receiver")
		}
	}
}
