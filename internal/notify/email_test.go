package notify

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/mail"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/testenv"
)

func token(t *testing.T) string {
	t.Helper()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}

// mailpitMessage is the part of mailpit's GET /api/v1/message/{ID} the tests read.
type mailpitMessage struct {
	ID        string
	MessageID string
	From      mailpitAddr
	To        []mailpitAddr
	Subject   string
	Text      string
	HTML      string
}

type mailpitAddr struct{ Name, Address string }

func getJSON(t *testing.T, u string, v any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatalf("mailpit API: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("mailpit API GET %s: %s: %s", u, resp.Status, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("mailpit API GET %s: %v", u, err)
	}
}

// findMail waits for the one message whose subject is exactly subject and returns it in full.
// Other tests share the mailbox, so subjects carry a random token.
func findMail(t *testing.T, m testenv.Mail, tok, subject string) mailpitMessage {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var list struct {
			Messages []struct{ ID, Subject string }
		}
		getJSON(t, m.APIURL+"/api/v1/search?query="+url.QueryEscape(tok), &list)
		var ids []string
		for _, msg := range list.Messages {
			if msg.Subject == subject {
				ids = append(ids, msg.ID)
			}
		}
		if len(ids) > 1 {
			t.Fatalf("mailpit holds %d messages with subject %q, want 1", len(ids), subject)
		}
		if len(ids) == 1 {
			var full mailpitMessage
			getJSON(t, m.APIURL+"/api/v1/message/"+ids[0], &full)
			return full
		}
		if time.Now().After(deadline) {
			t.Fatalf("no message with subject %q in mailpit at %s after 10s (search %q found %d)", subject, m.APIURL, tok, len(list.Messages))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func mailpitConfig(t *testing.T) (testenv.Mail, SMTPConfig) {
	t.Helper()
	m := testenv.Mailpit(t)
	port, err := strconv.Atoi(m.SMTPPort)
	if err != nil {
		t.Fatalf("mailpit SMTP port %q: %v", m.SMTPPort, err)
	}
	return m, SMTPConfig{Host: m.SMTPHost, Port: port, From: "backupd <backupd@example.com>"}
}

func addrs(as []mailpitAddr) []string {
	var s []string
	for _, a := range as {
		s = append(s, a.Address)
	}
	return s
}

func TestSendMailMailpit(t *testing.T) {
	m, cfg := mailpitConfig(t)
	tok := token(t)
	// Mailpit accepts any credentials (testenv starts it so); on loopback they may go in clear.
	cfg.Username, cfg.Password = "backupd", "not-a-real-password"

	subject := "Sauvegarde échouée — ナイトリー 🔥 " + tok
	text := "The backup of “nightly” failed.\nLine two: naïve café, a long line " + strings.Repeat("x", 120) + "\n.\nA line that is only a dot, above.\n"
	html := "<p>The backup of <b>nightly</b> failed: naïve café 🔥</p>"
	err := SendMail(t.Context(), cfg, Message{
		To:      []string{"Équipe Ops <ops@example.com>", "lead@example.com"},
		Subject: subject,
		Text:    text,
		HTML:    html,
	})
	if err != nil {
		t.Fatalf("SendMail: %v", err)
	}

	got := findMail(t, m, tok, subject)
	if got.Subject != subject {
		t.Errorf("subject: got %q, want %q", got.Subject, subject)
	}
	if want := []string{"ops@example.com", "lead@example.com"}; !slices.Equal(addrs(got.To), want) {
		t.Errorf("to: got %q, want %q", addrs(got.To), want)
	}
	if len(got.To) > 0 && got.To[0].Name != "Équipe Ops" {
		t.Errorf("first recipient's name: got %q, want %q", got.To[0].Name, "Équipe Ops")
	}
	if got.From.Address != "backupd@example.com" || got.From.Name != "backupd" {
		t.Errorf("from: got %+v, want backupd <backupd@example.com>", got.From)
	}
	// Mailpit gives the text part as decoded; line ends may be normalised to LF.
	if g := strings.ReplaceAll(got.Text, "\r\n", "\n"); strings.TrimSpace(g) != strings.TrimSpace(text) {
		t.Errorf("text part:\ngot  %q\nwant %q", g, text)
	}
	if strings.TrimSpace(got.HTML) != html {
		t.Errorf("html part:\ngot  %q\nwant %q", got.HTML, html)
	}

	var headers map[string][]string
	getJSON(t, m.APIURL+"/api/v1/message/"+got.ID+"/headers", &headers)
	for _, h := range []string{"Date", "Message-Id", "Mime-Version", "Auto-Submitted"} {
		if len(headers[h]) != 1 {
			t.Errorf("header %s: got %q, want one value", h, headers[h])
		}
	}
	if ct := strings.Join(headers["Content-Type"], ""); !strings.HasPrefix(ct, "multipart/alternative;") {
		t.Errorf("Content-Type: got %q, want multipart/alternative", ct)
	}
	if !strings.HasSuffix(got.MessageID, "@example.com") {
		t.Errorf("Message-ID %q is not in the sender's domain", got.MessageID)
	}
}

func TestEmailNotifierMailpit(t *testing.T) {
	m, cfg := mailpitConfig(t)
	tok := token(t)
	e := &Email{SMTP: cfg, To: []string{"oncall@example.com"}}
	n := Notification{
		Event:    EventBackupFailed,
		Policy:   "nightly-" + tok,
		Severity: SeverityCritical,
		Title:    "nightly-" + tok + ": backup failed",
		Text:     "dump shop.orders: Error 1045: Access denied for user 'backup'@'10.0.0.5' <check grants>",
		Fields:   map[string]string{"target": "s3-eu", "set": "20261127T030000Z-3f9a"},
		Time:     time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC),
	}
	if err := e.Notify(t.Context(), n); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	got := findMail(t, m, tok, "[backupd] "+n.Title)
	if want := []string{"oncall@example.com"}; !slices.Equal(addrs(got.To), want) {
		t.Errorf("to: got %q, want %q", addrs(got.To), want)
	}
	for _, want := range []string{n.Text, "target:", "s3-eu", "set:", "20261127T030000Z-3f9a", "2026-11-27T03:00:00Z", "backup_failed", "critical"} {
		if !strings.Contains(got.Text, want) {
			t.Errorf("text part lacks %q:\n%s", want, got.Text)
		}
	}
	// The HTML part escapes what the error quotes.
	for _, want := range []string{"&lt;check grants&gt;", "s3-eu", "20261127T030000Z-3f9a"} {
		if !strings.Contains(got.HTML, want) {
			t.Errorf("html part lacks %q:\n%s", want, got.HTML)
		}
	}
	if strings.Contains(got.HTML, "<check grants>") {
		t.Error("html part carries the error text unescaped")
	}
}

// parseMessage reads a message built by buildMessage back with the standard library.
func parseMessage(t *testing.T, raw []byte) (*mail.Message, map[string]string) {
	t.Helper()
	for i, line := range strings.Split(string(raw), "\r\n") {
		if len(line) > 998 {
			t.Errorf("line %d is %d bytes long; RFC 5322 allows 998", i+1, len(line))
		}
		if strings.Contains(line, "\n") {
			t.Errorf("line %d ends in a bare LF", i+1)
		}
	}
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("read message: %v\n%s", err, raw)
	}
	parts := map[string]string{}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	readPart := func(typ, cte string, r io.Reader) {
		if cte != "quoted-printable" {
			t.Errorf("%s: Content-Transfer-Encoding %q, want quoted-printable", typ, cte)
		}
		b, err := io.ReadAll(quotedprintable.NewReader(r))
		if err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		parts[typ] = string(b)
	}
	if mt != "multipart/alternative" {
		readPart(mt, msg.Header.Get("Content-Transfer-Encoding"), msg.Body)
		return msg, parts
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := mr.NextRawPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		pt, pp, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		if pp["charset"] != "utf-8" {
			t.Errorf("%s: charset %q, want utf-8", pt, pp["charset"])
		}
		readPart(pt, p.Header.Get("Content-Transfer-Encoding"), p)
	}
	return msg, parts
}

func TestBuildMessage(t *testing.T) {
	from := &mail.Address{Name: "backupd", Address: "backupd@example.com"}
	to := []*mail.Address{{Name: "Zoë", Address: "zoe@example.com"}, {Address: "ops@example.com"}}
	date := time.Date(2026, 11, 27, 3, 0, 0, 0, time.FixedZone("CET", 3600))
	crlf := func(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }
	long := strings.Repeat("Sicherung fehlgeschlagen für Datenbank ä ", 12)

	tests := []struct {
		name      string
		msg       Message
		subject   string // decoded
		mediaType string
		parts     map[string]string
	}{
		{
			name:      "both parts",
			msg:       Message{Subject: "Backup ✔ réussi", Text: "ok\nsecond line\n", HTML: "<p>ok ✔</p>"},
			subject:   "Backup ✔ réussi",
			mediaType: "multipart/alternative",
			parts:     map[string]string{"text/plain": crlf("ok\nsecond line\n"), "text/html": "<p>ok ✔</p>"},
		},
		{
			name:      "text only",
			msg:       Message{Subject: "plain", Text: "just text"},
			subject:   "plain",
			mediaType: "text/plain",
			parts:     map[string]string{"text/plain": "just text"},
		},
		{
			name:      "html only",
			msg:       Message{Subject: "html", HTML: "<b>x</b>"},
			subject:   "html",
			mediaType: "text/html",
			parts:     map[string]string{"text/html": "<b>x</b>"},
		},
		{
			name:      "a subject cannot inject headers",
			msg:       Message{Subject: "hi\r\nBcc: victim@example.com", Text: "x"},
			subject:   "hi Bcc: victim@example.com",
			mediaType: "text/plain",
			parts:     map[string]string{"text/plain": "x"},
		},
		{
			name:      "a long unicode subject is folded",
			msg:       Message{Subject: long, Text: "x"},
			subject:   strings.TrimSpace(long),
			mediaType: "text/plain",
			parts:     map[string]string{"text/plain": "x"},
		},
		{
			name:      "body lines that look like SMTP or MIME stay data",
			msg:       Message{Subject: "dots", Text: ".\n--boundary\nFrom me\n" + strings.Repeat("é", 200)},
			subject:   "dots",
			mediaType: "text/plain",
			parts:     map[string]string{"text/plain": crlf(".\n--boundary\nFrom me\n" + strings.Repeat("é", 200))},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := buildMessage(from, to, tc.msg, date, "<id@example.com>")
			if err != nil {
				t.Fatal(err)
			}
			msg, parts := parseMessage(t, raw)
			var dec mime.WordDecoder
			subj, err := dec.DecodeHeader(msg.Header.Get("Subject"))
			if err != nil {
				t.Fatal(err)
			}
			if subj != tc.subject {
				t.Errorf("subject: got %q, want %q", subj, tc.subject)
			}
			if got := msg.Header.Get("Bcc"); got != "" {
				t.Errorf("Bcc header %q appeared", got)
			}
			if got, _, _ := mime.ParseMediaType(msg.Header.Get("Content-Type")); got != tc.mediaType {
				t.Errorf("Content-Type: got %q, want %q", got, tc.mediaType)
			}
			if !maps.Equal(parts, tc.parts) {
				t.Errorf("parts:\ngot  %q\nwant %q", parts, tc.parts)
			}
			rcpts, err := msg.Header.AddressList("To")
			if err != nil {
				t.Fatal(err)
			}
			if len(rcpts) != 2 || rcpts[0].Name != "Zoë" || rcpts[1].Address != "ops@example.com" {
				t.Errorf("To: got %v", rcpts)
			}
			if got, want := msg.Header.Get("Date"), "Fri, 27 Nov 2026 03:00:00 +0100"; got != want {
				t.Errorf("Date: got %q, want %q", got, want)
			}
			for k, want := range map[string]string{"Message-Id": "<id@example.com>", "Mime-Version": "1.0", "Auto-Submitted": "auto-generated"} {
				if got := msg.Header.Get(k); got != want {
					t.Errorf("%s: got %q, want %q", k, got, want)
				}
			}
		})
	}
	if _, err := buildMessage(from, to, Message{Subject: "empty"}, date, "<id@x>"); err == nil {
		t.Error("a message without a body was built")
	}
}

func TestSendMailSTARTTLSAndAuth(t *testing.T) {
	cert, pool := testCert(t)
	tests := []struct {
		name     string
		fake     *fakeSMTP
		cfg      SMTPConfig
		wantMech string
		wantTLS  bool
	}{
		{
			name:     "STARTTLS then AUTH PLAIN",
			fake:     &fakeSMTP{tls: &tls.Config{Certificates: []tls.Certificate{cert}}, auth: []string{"PLAIN", "LOGIN"}},
			cfg:      SMTPConfig{StartTLS: true, Username: "alerts@example.com", Password: "s3cret pass"},
			wantMech: "PLAIN",
			wantTLS:  true,
		},
		{
			name:     "AUTH LOGIN when the server offers only that",
			fake:     &fakeSMTP{tls: &tls.Config{Certificates: []tls.Certificate{cert}}, auth: []string{"LOGIN"}},
			cfg:      SMTPConfig{StartTLS: true, Username: "alerts@example.com", Password: "s3cret pass"},
			wantMech: "LOGIN",
			wantTLS:  true,
		},
		{
			name:     "credentials in clear to a loopback relay",
			fake:     &fakeSMTP{auth: []string{"PLAIN"}},
			cfg:      SMTPConfig{Username: "u", Password: "p"},
			wantMech: "PLAIN",
			wantTLS:  false,
		},
		{
			name: "no credentials, no TLS",
			fake: &fakeSMTP{},
			cfg:  SMTPConfig{},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.fake
			f.t = t
			host, port := f.start()
			cfg := tc.cfg
			cfg.Host, cfg.Port, cfg.From, cfg.RootCAs = host, port, "backupd@example.com", pool
			err := SendMail(t.Context(), cfg, Message{To: []string{"a@example.com", "b@example.com"}, Subject: "s", Text: "body"})
			if err != nil {
				t.Fatalf("SendMail: %v", err)
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.authMech != tc.wantMech {
				t.Errorf("AUTH mechanism: got %q, want %q", f.authMech, tc.wantMech)
			}
			if tc.wantMech != "" {
				if f.user != cfg.Username || f.pass != cfg.Password {
					t.Errorf("credentials: got %q/%q, want %q/%q", f.user, f.pass, cfg.Username, cfg.Password)
				}
				if f.authOverTLS != tc.wantTLS {
					t.Errorf("AUTH over TLS: got %v, want %v", f.authOverTLS, tc.wantTLS)
				}
			}
			if !strings.HasPrefix(f.from, "FROM:<backupd@example.com>") {
				t.Errorf("MAIL: got %q", f.from)
			}
			if want := []string{"TO:<a@example.com>", "TO:<b@example.com>"}; !slices.Equal(f.rcpts, want) {
				t.Errorf("RCPT: got %q, want %q", f.rcpts, want)
			}
			if !strings.Contains(f.data, "\n\nbody") {
				t.Errorf("DATA lacks the body:\n%s", f.data)
			}
		})
	}
}

func TestSendMailImplicitTLS(t *testing.T) {
	cert, pool := testCert(t)
	f := &fakeSMTP{t: t, tls: &tls.Config{Certificates: []tls.Certificate{cert}}, implicit: true, auth: []string{"PLAIN"}}
	host, port := f.start()
	cfg := SMTPConfig{Host: host, Port: port, From: "backupd@example.com", RootCAs: pool, ImplicitTLS: true, Username: "u", Password: "p"}
	if err := SendMail(t.Context(), cfg, Message{To: []string{"a@example.com"}, Subject: "s", Text: "x"}); err != nil {
		t.Fatalf("SendMail: %v", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.authOverTLS || f.user != "u" {
		t.Errorf("AUTH: over TLS %v as %q, want over TLS as \"u\"", f.authOverTLS, f.user)
	}
	if !strings.Contains(f.data, "\n\nx") {
		t.Errorf("DATA lacks the body:\n%s", f.data)
	}
}

func TestSendMailTLSMismatch(t *testing.T) {
	cert, pool := testCert(t)
	t.Run("SMTPS client, plain server", func(t *testing.T) {
		f := &fakeSMTP{t: t}
		host, port := f.start()
		err := SendMail(t.Context(), SMTPConfig{Host: host, Port: port, From: "b@example.com", ImplicitTLS: true, RootCAs: pool},
			Message{To: []string{"a@example.com"}, Subject: "s", Text: "x"})
		if err == nil || !strings.Contains(err.Error(), "TLS handshake") || !strings.Contains(err.Error(), "start_tls") {
			t.Errorf("got %v, want a TLS handshake error that suggests start_tls", err)
		}
	})
	t.Run("plain client, SMTPS server", func(t *testing.T) {
		f := &fakeSMTP{t: t, tls: &tls.Config{Certificates: []tls.Certificate{cert}}, implicit: true}
		host, port := f.start()
		ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
		defer cancel()
		err := SendMail(ctx, SMTPConfig{Host: host, Port: port, From: "b@example.com"},
			Message{To: []string{"a@example.com"}, Subject: "s", Text: "x"})
		if err == nil || !strings.Contains(err.Error(), "greeting") || !strings.Contains(err.Error(), "465") {
			t.Errorf("got %v, want a greeting error that points at SMTPS", err)
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("error is not context.DeadlineExceeded: %v", err)
		}
	})
}

func TestSendMailErrors(t *testing.T) {
	cert, pool := testCert(t)
	const password = "hunter2-do-not-print"
	closedPort := func(t *testing.T) int {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		return p
	}
	tests := []struct {
		name    string
		fake    *fakeSMTP // nil: no server
		cfg     SMTPConfig
		timeout time.Duration
		want    []string // substrings of the error
		is      error
	}{
		{
			name: "credentials over plaintext to a remote host are refused before connecting",
			cfg:  SMTPConfig{Host: "mail.example.com", Port: 25, Username: "alerts", Password: password},
			want: []string{"mail.example.com:25", "refusing", "unencrypted", "start_tls"},
		},
		{
			name: "STARTTLS required but not offered",
			fake: &fakeSMTP{},
			cfg:  SMTPConfig{StartTLS: true},
			want: []string{"does not offer STARTTLS", "start_tls"},
		},
		{
			name: "certificate not trusted",
			fake: &fakeSMTP{tls: &tls.Config{Certificates: []tls.Certificate{cert}}},
			cfg:  SMTPConfig{StartTLS: true, RootCAs: x509.NewCertPool()},
			want: []string{"STARTTLS", "certificate"},
		},
		{
			name: "authentication rejected",
			fake: &fakeSMTP{tls: &tls.Config{Certificates: []tls.Certificate{cert}}, auth: []string{"PLAIN"}, reject: true},
			cfg:  SMTPConfig{StartTLS: true, RootCAs: pool, Username: "alerts", Password: password},
			want: []string{"authenticate as smtp.username", "535", "smtp.password"},
		},
		{
			name: "username set but the server has no AUTH",
			fake: &fakeSMTP{},
			cfg:  SMTPConfig{Username: "alerts", Password: password},
			want: []string{"does not offer AUTH", "smtp.username"},
		},
		{
			name:    "a server that never greets is abandoned at the deadline",
			fake:    &fakeSMTP{silent: true},
			timeout: 300 * time.Millisecond,
			want:    []string{"greeting"},
			is:      context.DeadlineExceeded,
		},
		{
			name: "nothing listens",
			cfg:  SMTPConfig{Host: "127.0.0.1"},
			want: []string{"connect", "smtp.host", "smtp.port"},
		},
		{
			name: "bad sender",
			cfg:  SMTPConfig{Host: "127.0.0.1", Port: 25, From: "not an address"},
			want: []string{"smtp.from", "not an address"},
		},
		{
			name: "no host",
			cfg:  SMTPConfig{},
			want: []string{"smtp.host"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			if cfg.From == "" {
				cfg.From = "backupd@example.com"
			}
			if tc.fake != nil {
				tc.fake.t = t
				cfg.Host, cfg.Port = tc.fake.start()
			} else if cfg.Host == "127.0.0.1" && cfg.Port == 0 {
				cfg.Port = closedPort(t)
			} else if cfg.Host == "" {
				cfg.Port = 25
			}
			ctx := t.Context()
			if tc.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.timeout)
				defer cancel()
			}
			start := time.Now()
			err := SendMail(ctx, cfg, Message{To: []string{"a@example.com"}, Subject: "s", Text: "x"})
			if err == nil {
				t.Fatal("SendMail succeeded")
			}
			if tc.timeout > 0 && time.Since(start) > tc.timeout+2*time.Second {
				t.Errorf("SendMail took %v with a %v deadline", time.Since(start), tc.timeout)
			}
			msg := err.Error()
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error lacks %q: %v", w, err)
				}
			}
			if cfg.Host != "" && !strings.Contains(msg, net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port))) {
				t.Errorf("error does not name the server %s:%d: %v", cfg.Host, cfg.Port, err)
			}
			if strings.Contains(msg, password) {
				t.Errorf("error shows the password: %v", err)
			}
			// The user name may itself be a credential (an API token): never in an error.
			if cfg.Username != "" && strings.Contains(msg, cfg.Username) {
				t.Errorf("error shows the SMTP user name %q: %v", cfg.Username, err)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error is not %v: %v", tc.is, err)
			}
		})
	}
}

func TestRenderEmail(t *testing.T) {
	n := Notification{
		Event: EventRecovered, Policy: "nightly", Severity: SeverityInfo,
		Fields: map[string]string{"b": "2", "a": "1"},
	}
	m, err := RenderEmail(n)
	if err != nil {
		t.Fatal(err)
	}
	if want := "[backupd] nightly: recovered"; m.Subject != want {
		t.Errorf("subject without a title: got %q, want %q", m.Subject, want)
	}
	want := fmt.Sprintf("%-9s  %s\n%-9s  %s\n%-9s  %s\n%-9s  %s\n%-9s  %s\n",
		"policy:", "nightly", "event:", "recovered", "severity:", "info", "a:", "1", "b:", "2")
	if !strings.HasPrefix(m.Text, want) {
		t.Errorf("text:\ngot  %q\nwant prefix %q", m.Text, want)
	}
}
