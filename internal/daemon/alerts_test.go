package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/notify"
	"github.com/backupd/backupd/internal/testenv"
)

// toxiproxy is a TCP proxy in front of MariaDB that a test can switch off and on.
type toxiproxy struct {
	api, name, listen string
}

func newToxiproxy(t *testing.T, upstream string) *toxiproxy {
	t.Helper()
	p := &toxiproxy{api: testenv.Toxiproxy(t), name: testenv.UniqueName("daemon")}
	var got struct{ Listen string }
	p.post(t, "/proxies", map[string]any{"name": p.name, "listen": "127.0.0.1:0", "upstream": upstream, "enabled": true}, &got)
	p.listen = got.Listen
	t.Cleanup(func() {
		req, _ := http.NewRequest(http.MethodDelete, p.api+"/proxies/"+p.name, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	})
	return p
}

func (p *toxiproxy) post(t *testing.T, path string, body, out any) {
	t.Helper()
	b, _ := json.Marshal(body)
	resp, err := http.Post(p.api+path, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatalf("toxiproxy: %v", err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		t.Fatalf("toxiproxy POST %s: %s: %s", path, resp.Status, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("toxiproxy answer %s: %v", data, err)
		}
	}
}

func (p *toxiproxy) enable(t *testing.T, on bool) {
	t.Helper()
	p.post(t, "/proxies/"+p.name, map[string]any{"enabled": on}, nil)
}

// webhookReceiver records the JSON bodies posted to it.
type webhookReceiver struct {
	*httptest.Server
	mu     sync.Mutex
	bodies []notify.Payload
}

func newWebhookReceiver(t *testing.T) *webhookReceiver {
	w := &webhookReceiver{}
	w.Server = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		var p notify.Payload
		if err := json.NewDecoder(r.Body).Decode(&p); err != nil || p.Text == "" {
			http.Error(rw, "want Slack-compatible JSON with text", http.StatusBadRequest)
			return
		}
		w.mu.Lock()
		w.bodies = append(w.bodies, p)
		w.mu.Unlock()
		fmt.Fprint(rw, "ok")
	}))
	t.Cleanup(w.Close)
	return w
}

func (w *webhookReceiver) titles() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, b := range w.bodies {
		out = append(out, b.Title)
	}
	return out
}

// mailSubjects returns the subjects of the messages in mailpit that mention token.
func mailSubjects(t *testing.T, m testenv.Mail, token string) []string {
	t.Helper()
	resp, err := http.Get(m.APIURL + "/api/v1/search?query=" + url.QueryEscape(token))
	if err != nil {
		t.Fatalf("mailpit: %v", err)
	}
	defer resp.Body.Close()
	var list struct {
		Messages []struct{ ID, Subject string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatalf("mailpit search: %v", err)
	}
	var out []string
	for _, msg := range list.Messages {
		out = append(out, msg.Subject)
	}
	return out
}

func countContaining(ss []string, sub string) int {
	n := 0
	for _, s := range ss {
		if strings.Contains(s, sub) {
			n++
		}
	}
	return n
}

// waitFor polls cond every 200ms until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestAlertsOncePerIncident is the acceptance: a policy whose database cannot be
// reached sends one alert mail and one webhook call, not one per tick; when the database
// comes back, one recovery notice on each.
func TestAlertsOncePerIncident(t *testing.T) {
	dsn := testenv.MariaDBDSN(t)
	mail := testenv.Mailpit(t)
	dbName := testenv.SmallDatabase(t, dsn, "dmn")
	proxy := newToxiproxy(t, "127.0.0.1:3306")
	proxy.enable(t, false)
	hook := newWebhookReceiver(t)
	policy := testenv.UniqueName("alerts")
	dir := t.TempDir()
	cfg := parseConfig(t, fmt.Sprintf(`
listen: 127.0.0.1:0
state_dir: %q
smtp: {host: 127.0.0.1, port: %s, from: backupd@example.com, starttls: false}
alerts:
  email: ["ops+%s@example.com"]
  webhook: %q
  stale_after: 1h
targets:
  local: {type: dir, path: %q}
encryption: {recipients: [%q]}
policies:
  %s:
    schedule: "@every 2s"
    mysql: {dsn: "root@tcp(%s)/?timeout=2s", databases: [%s]}
    targets: [local]
`, filepath.Join(dir, "state"), mail.SMTPPort, policy, hook.URL+"/services/T0/B0/secret-token", filepath.Join(dir, "backups"),
		testRecipient(t), policy, proxy.listen, dbName))

	var logs bytes.Buffer
	var logMu sync.Mutex
	d, err := New(cfg, Options{Logger: slog.New(slog.NewJSONHandler(lockedWriter{&logMu, &logs}, nil)), CheckInterval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- d.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-runErr; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	failures := func() float64 {
		return metricValue(t, d, `backupd_job_runs_total{job="backup",policy="`+policy+`",result="failure"}`)
	}
	waitFor(t, 20*time.Second, "three failed runs", func() bool { return failures() >= 3 })
	time.Sleep(time.Second) // let the last alert, if any, arrive
	subjects := mailSubjects(t, mail, policy)
	if got := countContaining(subjects, policy+": backup failed"); got != 1 {
		t.Errorf("after %v failed runs: got %d alert mails %q, want 1", failures(), got, subjects)
	}
	if got := countContaining(hook.titles(), policy+": backup failed"); got != 1 {
		t.Errorf("got %d webhook calls %q, want 1", got, hook.titles())
	}

	proxy.enable(t, true)
	waitFor(t, 90*time.Second, "the recovery mail", func() bool {
		return countContaining(mailSubjects(t, mail, policy), policy+": backups succeed again") >= 1
	})
	successes := metricValue(t, d, `backupd_job_runs_total{job="backup",policy="`+policy+`",result="success"}`)
	waitFor(t, 90*time.Second, "two more successful runs", func() bool {
		return metricValue(t, d, `backupd_job_runs_total{job="backup",policy="`+policy+`",result="success"}`) >= successes+2
	})
	subjects = mailSubjects(t, mail, policy)
	t.Logf("mails: %q; webhook calls: %q; failed runs %v, successful %v", subjects, hook.titles(), failures(), successes+2)
	if got, want := countContaining(subjects, policy+": backup failed"), 1; got != want {
		t.Errorf("got %d alert mails, want %d: %q", got, want, subjects)
	}
	if got := countContaining(subjects, policy+": backups succeed again"); got != 1 {
		t.Errorf("got %d recovery mails, want 1: %q", got, subjects)
	}
	if got := hook.titles(); len(got) != 2 || !strings.Contains(got[1], policy+": backups succeed again") {
		t.Errorf("got webhook calls %q, want the alert and one recovery notice", got)
	}
	hook.mu.Lock()
	first := hook.bodies[0]
	hook.mu.Unlock()
	if !strings.Contains(first.Details, "connection refused") || first.Event != notify.EventBackupFailed || first.Policy != policy {
		t.Errorf("got alert payload %+v, want the backup_failed event of %s with the error", first, policy)
	}

	logMu.Lock()
	logText := logs.String()
	logMu.Unlock()
	if strings.Contains(logText, "secret-token") {
		t.Error("the webhook URL's token appears in the logs")
	}
	if len(d.alerts.open()) != 0 {
		t.Errorf("got open incidents %+v after recovery, want none", d.alerts.open())
	}
	state, err := os.ReadFile(filepath.Join(dir, "state", incidentsFile))
	if err != nil || !strings.Contains(string(state), `"incidents": []`) {
		t.Errorf("got incident state %s (%v), want it saved with no incident", state, err)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// metricValue scrapes the daemon's /metrics and returns the sample named (with labels in
// sorted order, as the exposition format prints them); 0 when absent.
func metricValue(t *testing.T, d *Daemon, sample string) float64 {
	t.Helper()
	rec := httptest.NewRecorder()
	d.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for line := range strings.Lines(rec.Body.String()) {
		if rest, ok := strings.CutPrefix(line, sample+" "); ok {
			var v float64
			fmt.Sscan(rest, &v)
			return v
		}
	}
	return 0
}
