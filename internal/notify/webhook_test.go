package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"
)

// secretPath stands for the token in a Slack webhook URL: no error may show it.
const secretPath = "/services/T000/B000/XXXXsecretTOKEN"

type receiver struct {
	srv      *httptest.Server
	mu       sync.Mutex
	bodies   [][]byte
	headers  []http.Header
	statuses []int // answers in order; the last one repeats
	body     string
	calls    atomic.Int32
}

func newReceiver(t *testing.T, body string, statuses ...int) *receiver {
	r := &receiver{statuses: statuses, body: body}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		n := int(r.calls.Add(1))
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.bodies = append(r.bodies, b)
		r.headers = append(r.headers, req.Header.Clone())
		r.mu.Unlock()
		if req.Method != http.MethodPost || req.URL.Path != secretPath {
			http.Error(w, "wrong method or path", http.StatusTeapot)
			return
		}
		st := r.statuses[min(n, len(r.statuses))-1]
		w.WriteHeader(st)
		if st >= 300 {
			io.WriteString(w, r.body)
		} else {
			io.WriteString(w, "ok")
		}
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) url() string { return r.srv.URL + secretPath }

func fastWebhook(url string) *Webhook {
	return &Webhook{URL: url, Backoff: time.Millisecond, Timeout: 2 * time.Second}
}

var sample = Notification{
	Event:    EventTargetFailed,
	Policy:   "nightly",
	Severity: SeverityWarning,
	Title:    "nightly: target s3-b failed",
	Text:     "upload shop/orders.00001.sql.zst.age: 503 <SlowDown> & retry",
	Fields:   map[string]string{"target": "s3-b", "set": "20261127T030000Z-3f9a"},
	Time:     time.Date(2026, 11, 27, 3, 0, 0, 0, time.FixedZone("CET", 3600)),
}

func TestWebhookPayloadShape(t *testing.T) {
	r := newReceiver(t, "", http.StatusOK)
	if err := PostWebhook(t.Context(), r.url(), sample); err != nil {
		t.Fatalf("PostWebhook: %v", err)
	}
	if got := r.calls.Load(); got != 1 {
		t.Fatalf("calls: got %d, want 1", got)
	}
	if ct := r.headers[0].Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type: got %q, want application/json", ct)
	}

	// What Slack reads: text, and blocks of known types with text objects.
	var slack struct {
		Text   string `json:"text"`
		Blocks []struct {
			Type     string `json:"type"`
			Text     *struct{ Type, Text string }
			Fields   []struct{ Type, Text string }
			Elements []struct{ Type, Text string }
		} `json:"blocks"`
	}
	if err := json.Unmarshal(r.bodies[0], &slack); err != nil {
		t.Fatalf("body is not JSON: %v\n%s", err, r.bodies[0])
	}
	wantText := "[WARNING] nightly: target s3-b failed\nupload shop/orders.00001.sql.zst.age: 503 &lt;SlowDown&gt; &amp; retry"
	if slack.Text != wantText {
		t.Errorf("text:\ngot  %q\nwant %q", slack.Text, wantText)
	}
	var types []string
	for _, b := range slack.Blocks {
		types = append(types, b.Type)
	}
	if got, want := strings.Join(types, ","), "header,section,section,context"; got != want {
		t.Fatalf("block types: got %s, want %s\n%s", got, want, r.bodies[0])
	}
	if h := slack.Blocks[0].Text; h == nil || h.Type != "plain_text" || h.Text != "[WARNING] nightly: target s3-b failed" {
		t.Errorf("header block: got %+v", h)
	}
	if s := slack.Blocks[1].Text; s == nil || s.Type != "mrkdwn" || !strings.Contains(s.Text, "&lt;SlowDown&gt;") {
		t.Errorf("text section: got %+v", s)
	}
	if f := slack.Blocks[2].Fields; len(f) != 2 || f[0].Text != "*set*\n20261127T030000Z-3f9a" || f[1].Text != "*target*\ns3-b" {
		t.Errorf("fields section: got %+v", f)
	}
	if e := slack.Blocks[3].Elements; len(e) != 1 || e[0].Text != "backupd · nightly · target_failed · 2026-11-27T02:00:00Z" {
		t.Errorf("context block: got %+v", e)
	}

	// Our own fields, for receivers that route without parsing text.
	var own map[string]any
	if err := json.Unmarshal(r.bodies[0], &own); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{
		"event": "target_failed", "policy": "nightly", "severity": "warning",
		"title": "nightly: target s3-b failed", "details": sample.Text, "time": "2026-11-27T02:00:00Z",
		"fields": map[string]any{"target": "s3-b", "set": "20261127T030000Z-3f9a"},
	} {
		if got := own[k]; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: got %v, want %v", k, got, want)
		}
	}
}

func TestWebhookPayloadLimits(t *testing.T) {
	n := Notification{
		Event: EventShrunk, Policy: "p", Severity: SeverityCritical,
		Title:  strings.Repeat("é", 400),
		Text:   strings.Repeat("<", 2000), // 8000 bytes once escaped
		Fields: map[string]string{},
	}
	for i := range 23 {
		n.Fields[fmt.Sprintf("table%02d", i)] = strings.Repeat("x", 3000)
	}
	p := webhookPayload(n)
	var sections int
	for _, b := range p.Blocks {
		if b.Text != nil {
			limit := slackSectionMax
			if b.Type == "header" {
				limit = slackHeaderMax
			}
			if got := utf8.RuneCountInString(b.Text.Text); got > limit {
				t.Errorf("%s block text has %d characters, Slack allows %d", b.Type, got, limit)
			}
		}
		if len(b.Fields) > slackFieldsPerBlock {
			t.Errorf("section with %d fields, Slack allows %d", len(b.Fields), slackFieldsPerBlock)
		}
		for _, f := range b.Fields {
			if got := utf8.RuneCountInString(f.Text); got > slackFieldMax {
				t.Errorf("field text has %d characters, Slack allows %d", got, slackFieldMax)
			}
		}
		if len(b.Fields) > 0 {
			sections++
		}
	}
	if sections != 3 {
		t.Errorf("23 fields went into %d sections, want 3", sections)
	}
	if !utf8.ValidString(p.Blocks[0].Text.Text) {
		t.Error("truncation split a character")
	}
}

func TestWebhookRetries(t *testing.T) {
	tests := []struct {
		name      string
		statuses  []int
		body      string
		attempts  int
		wantCalls int32
		wantErr   []string // substrings; nil: success
	}{
		{name: "503 twice, then success", statuses: []int{503, 503, 200}, attempts: 4, wantCalls: 3},
		{name: "429 is retried", statuses: []int{429, 204}, attempts: 4, wantCalls: 2},
		{
			name: "404 fails at once with status and body", statuses: []int{404}, body: "no_service\n", attempts: 4,
			wantCalls: 1, wantErr: []string{"404 Not Found", "no_service", "attempt 1 of 4"},
		},
		{
			name: "400 from Slack names the problem", statuses: []int{400}, body: "invalid_blocks", attempts: 4,
			wantCalls: 1, wantErr: []string{"400 Bad Request: invalid_blocks"},
		},
		{
			name: "500 until the attempts run out", statuses: []int{500}, body: strings.Repeat("oops ", 200), attempts: 3,
			wantCalls: 3, wantErr: []string{"500 Internal Server Error", "attempt 3 of 3", "oops oops"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newReceiver(t, tc.body, tc.statuses...)
			w := fastWebhook(r.url())
			w.MaxAttempts = tc.attempts
			err := w.Notify(t.Context(), sample)
			if got := r.calls.Load(); got != tc.wantCalls {
				t.Errorf("calls: got %d, want %d", got, tc.wantCalls)
			}
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("got %v, want success", err)
				}
				return
			}
			if err == nil {
				t.Fatal("got success, want an error")
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q: %v", w, err)
				}
			}
			if strings.Contains(err.Error(), "secretTOKEN") {
				t.Errorf("error shows the webhook URL's token: %v", err)
			}
			if !strings.Contains(err.Error(), r.srv.URL) {
				t.Errorf("error does not name the host %s: %v", r.srv.URL, err)
			}
			if len(err.Error()) > 600 {
				t.Errorf("error is %d bytes long; the body snippet is not bounded", len(err.Error()))
			}
			// Every attempt sent the same payload.
			for i := 1; i < len(r.bodies); i++ {
				if string(r.bodies[i]) != string(r.bodies[0]) {
					t.Errorf("attempt %d sent a different body", i+1)
				}
			}
		})
	}
}

func TestWebhookNetworkError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens: connection refused on every attempt
	w := fastWebhook("http://" + addr + secretPath)
	w.MaxAttempts = 3
	err = w.Notify(t.Context(), sample)
	if err == nil {
		t.Fatal("got success, want an error")
	}
	for _, want := range []string{"attempt 3 of 3", "connection refused", "http://" + addr} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if strings.Contains(err.Error(), "secretTOKEN") {
		t.Errorf("error shows the webhook URL's token: %v", err)
	}
}

func TestWebhookHonoursContext(t *testing.T) {
	r := newReceiver(t, "", 503)
	w := &Webhook{URL: r.url(), Backoff: time.Hour, MaxAttempts: 5}
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := w.Notify(ctx, sample)
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Notify took %v with a 200ms deadline", took)
	}
	if err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("got %v, want the 503 that was the last answer", err)
	}

	// A slow server is cut off by the per-attempt timeout.
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // the server notices a gone client only after the body
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	defer slow.Close()
	w = &Webhook{URL: slow.URL + secretPath, Timeout: 100 * time.Millisecond, MaxAttempts: 2, Backoff: time.Millisecond}
	start = time.Now()
	err = w.Notify(t.Context(), sample)
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("Notify took %v with a 100ms attempt timeout", took)
	}
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "attempt 2 of 2") {
		t.Errorf("got %v, want a deadline error after 2 attempts", err)
	}
}

func TestWebhookBadURL(t *testing.T) {
	for _, u := range []string{"", "hooks.slack.com/services/x", "ftp://example.com/x", "http://%zz/secretTOKEN"} {
		err := PostWebhook(t.Context(), u, sample)
		if err == nil {
			t.Errorf("%q: got success", u)
			continue
		}
		if strings.Contains(err.Error(), "secretTOKEN") || !strings.Contains(err.Error(), "alerts.webhook") {
			t.Errorf("%q: got %v", u, err)
		}
	}
}

type fakeNotifier struct {
	err   error
	calls atomic.Int32
}

func (f *fakeNotifier) Notify(ctx context.Context, n Notification) error {
	f.calls.Add(1)
	return f.err
}

func TestMulti(t *testing.T) {
	ok, bad1, bad2 := &fakeNotifier{}, &fakeNotifier{err: errors.New("smtp down")}, &fakeNotifier{err: errors.New("webhook 500")}
	err := Multi{bad1, ok, bad2}.Notify(t.Context(), sample)
	for _, f := range []*fakeNotifier{ok, bad1, bad2} {
		if f.calls.Load() != 1 {
			t.Errorf("a notifier was called %d times, want 1", f.calls.Load())
		}
	}
	if err == nil {
		t.Fatal("got success, want the joined failures")
	}
	for _, want := range []string{"smtp down", "webhook 500", "2 of 3 channels failed", sample.Title} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if err := (Multi{ok}).Notify(t.Context(), sample); err != nil {
		t.Errorf("all channels working: got %v", err)
	}
	if err := (Multi{}).Notify(t.Context(), sample); err != nil {
		t.Errorf("no channels: got %v", err)
	}
}

func TestMultiRealChannels(t *testing.T) {
	// One webhook that works and one that refuses: the working one is still called.
	good := newReceiver(t, "", 200)
	bad := newReceiver(t, "nope", 403)
	err := Multi{fastWebhook(good.url()), fastWebhook(bad.url())}.Notify(t.Context(), sample)
	if good.calls.Load() != 1 || bad.calls.Load() != 1 {
		t.Errorf("calls: good %d, bad %d; want 1 each", good.calls.Load(), bad.calls.Load())
	}
	if err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("got %v, want the 403", err)
	}
}
