package config

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestDaemonKeys checks the rules of the daemon's keys: each case must produce a problem at
// wantPath whose message contains wantMsg.
func TestDaemonKeys(t *testing.T) {
	const base = `
targets:
  local: {type: dir, path: ./b}
  s: {type: s3, endpoint: "http://127.0.0.1:9000", bucket: backups, access_key: ak, secret_key: sk}
` + validTail
	policy := func(body string) string {
		return base + "policies:\n  p:\n    schedule: \"@daily\"\n    targets: [local]\n    mysql: {dsn: \"root@tcp(127.0.0.1:3306)/\"}\n" + body
	}
	const smtp = "smtp: {host: h, from: a@b.c}\n"
	for _, tc := range []struct {
		name, yml, wantPath, wantMsg string
	}{
		{"max_concurrent_jobs zero", base + "max_concurrent_jobs: 0\n", "max_concurrent_jobs", "at least 1"},
		{"shutdown_timeout zero", base + "shutdown_timeout: 0s\n", "shutdown_timeout", "more than 0"},
		{"shutdown_timeout text", base + "shutdown_timeout: soon\n", "shutdown_timeout", "not a duration"},
		{"email without smtp", base + "alerts: {email: [ops@example.com]}\n", "alerts.email", "no smtp: section"},
		{"bad email", base + smtp + "alerts: {email: [nobody]}\n", "alerts.email[0]", "not an email address"},
		{"webhook not a URL", base + "alerts: {webhook: \"hooks.example.com/T/secret-token\"}\n", "alerts.webhook", "not an http:// or https:// URL"},
		{"shrink without percent", base + "alerts: {shrink_alert: 50}\n", "alerts.shrink_alert", "want a percentage"},
		{"shrink over 100", base + "alerts: {shrink_alert: 150%}\n", "alerts.shrink_alert", "want a percentage"},
		{"stale negative", base + "alerts: {stale_after: -1h}\n", "alerts.stale_after", "not a positive duration"},
		{"policy alerts unknown key", policy("    alerts: {emails: [a@b.c]}\n"), "policies.p.alerts.emails", "unknown key"},
		{"policy email without smtp", policy("    alerts: {email: [a@b.c]}\n"), "policies.p.alerts.email", "no smtp: section"},
		{"jitter negative", policy("    jitter: -1m\n"), "policies.p.jitter", "must not be negative"},
		{"uncommitted grace short", policy("    uncommitted_grace: 10s\n"), "policies.p.uncommitted_grace", "too short"},
		{"catch_up text", policy("    catch_up: yes\n"), "policies.p.catch_up", "want true or false"},
		{"object lock on dir", strings.Replace(base, "path: ./b}", "path: ./b, object_lock_days: 7}", 1), "targets.local.object_lock_days", "does not apply to a dir target"},
		{"object lock negative", strings.Replace(base, "secret_key: sk}", "secret_key: sk, object_lock_days: -1}", 1), "targets.s.object_lock_days", "outside 0.."},
		{"object lock mode alone", strings.Replace(base, "secret_key: sk}", "secret_key: sk, object_lock_mode: governance}", 1), "targets.s.object_lock_mode", "object_lock_days is not"},
		{"object lock mode unknown", strings.Replace(base, "secret_key: sk}", "secret_key: sk, object_lock_days: 1, object_lock_mode: strict}", 1), "targets.s.object_lock_mode", "not one of compliance, governance"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadWith(t, tc.yml, nil, nil)
			ps := problemsOf(t, err)
			for _, p := range ps {
				if p.Path == tc.wantPath && strings.Contains(p.Msg, tc.wantMsg) {
					if strings.Contains(p.String(), "secret-token") {
						t.Errorf("got %q, want the webhook URL never quoted", p.String())
					}
					return
				}
			}
			t.Errorf("got %v, want a problem at %q containing %q", ps, tc.wantPath, tc.wantMsg)
		})
	}
}

// TestDaemonDefaults checks the defaults and how a policy's alerts inherit the global ones key
// by key.
func TestDaemonDefaults(t *testing.T) {
	yml := `
targets:
  local: {type: dir, path: ./b}
smtp: {host: h, from: a@b.c}
alerts:
  email: [ops@example.com]
  webhook: https://hooks.example.com/x
  stale_after: off
` + validTail + `
policies:
  quiet:
    schedule: "@daily"
    targets: [local]
    mysql: {dsn: "root@tcp(127.0.0.1:3306)/"}
  loud:
    schedule: "@hourly"
    targets: [local]
    mysql: {dsn: "root@tcp(127.0.0.1:3306)/"}
    alerts: {email: [], stale_after: 3h, shrink_alert: off}
`
	cfg, err := loadWith(t, yml, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		got, want any
	}{
		{"MaxConcurrentJobs", cfg.MaxConcurrentJobs, DefaultMaxConcurrentJobs},
		{"ShutdownTimeout", cfg.ShutdownTimeout, DefaultShutdownTimeout},
		{"quiet.Alerts", cfg.Policies["quiet"].Alerts, Alerts{Email: []string{"ops@example.com"}, Webhook: "https://hooks.example.com/x", StaleAfter: StaleOff, ShrinkAlert: DefaultShrinkAlert}},
		{"loud.Alerts", cfg.Policies["loud"].Alerts, Alerts{Email: nil, Webhook: "https://hooks.example.com/x", StaleAfter: 3 * time.Hour, ShrinkAlert: 0}},
		{"quiet.UncommittedGrace", cfg.Policies["quiet"].UncommittedGrace, DefaultUncommittedGrace},
		{"quiet.CatchUp", cfg.Policies["quiet"].CatchUp, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !reflect.DeepEqual(tc.got, tc.want) {
				t.Errorf("got %#v, want %#v", tc.got, tc.want)
			}
		})
	}
}
