package notify

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"strings"
	"time"
)

// buildMessage renders an RFC 5322 message: UTF-8 throughout, an RFC 2047 subject, and
// quoted-printable bodies, as multipart/alternative when there is both a text and an HTML part.
// Lines end in CRLF; dot-stuffing is the SMTP client's job.
func buildMessage(from *mail.Address, to []*mail.Address, msg Message, date time.Time, messageID string) ([]byte, error) {
	if msg.Text == "" && msg.HTML == "" {
		return nil, errors.New("the message has no body")
	}
	var b bytes.Buffer
	header := func(k, v string) { b.WriteString(k + ": " + v + "\r\n") }
	header("Date", date.Format(time.RFC1123Z))
	header("From", from.String())
	rcpts := make([]string, len(to))
	for i, a := range to {
		rcpts[i] = a.String()
	}
	header("To", strings.Join(rcpts, ",\r\n "))
	header("Subject", encodeSubject(msg.Subject))
	header("Message-ID", messageID)
	header("MIME-Version", "1.0")
	// Machine-sent: out-of-office replies and other automatic answers must not come back.
	header("Auto-Submitted", "auto-generated")

	if msg.HTML == "" || msg.Text == "" {
		typ, body := "text/plain", msg.Text
		if msg.Text == "" {
			typ, body = "text/html", msg.HTML
		}
		header("Content-Type", typ+"; charset=utf-8")
		header("Content-Transfer-Encoding", "quoted-printable")
		b.WriteString("\r\n")
		qp := quotedprintable.NewWriter(&b)
		if _, err := qp.Write([]byte(body)); err != nil {
			return nil, err
		}
		if err := qp.Close(); err != nil {
			return nil, err
		}
		return b.Bytes(), nil
	}
	mw := multipart.NewWriter(&b)
	header("Content-Type", mime.FormatMediaType("multipart/alternative", map[string]string{"boundary": mw.Boundary()}))
	b.WriteString("\r\n")
	// Order matters: clients show the last part they can render, so the richest comes last.
	for _, p := range []struct{ typ, body string }{{"text/plain", msg.Text}, {"text/html", msg.HTML}} {
		w, err := mw.CreatePart(textproto.MIMEHeader{
			"Content-Type":              {p.typ + "; charset=utf-8"},
			"Content-Transfer-Encoding": {"quoted-printable"},
		})
		if err != nil {
			return nil, err
		}
		qp := quotedprintable.NewWriter(w)
		if _, err := qp.Write([]byte(p.body)); err != nil {
			return nil, err
		}
		if err := qp.Close(); err != nil {
			return nil, err
		}
	}
	if err := mw.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// encodeSubject makes a subject one header line of RFC 2047 encoded words where needed, folded
// between words so that no line grows past what mail servers accept.
func encodeSubject(s string) string {
	s = strings.Join(strings.Fields(s), " ") // no CR/LF can reach the header
	return strings.ReplaceAll(mime.QEncoding.Encode("utf-8", s), "?= =?", "?=\r\n =?")
}

// newMessageID returns a unique Message-ID in the sender's domain.
func newMessageID(from string) string {
	domain := "backupd.invalid"
	if i := strings.LastIndexByte(from, '@'); i >= 0 && i < len(from)-1 {
		domain = from[i+1:]
	}
	var r [16]byte
	_, _ = rand.Read(r[:]) // crypto/rand does not fail on supported platforms
	return "<" + hex.EncodeToString(r[:]) + "@" + domain + ">"
}

// RenderEmail turns a notification into a message (without recipients): a subject tagged
// [backupd], the text with every field, and the same as HTML.
func RenderEmail(n Notification) (Message, error) {
	subject := "[backupd] " + n.subject()
	var text strings.Builder
	if n.Text != "" {
		text.WriteString(strings.TrimRight(n.Text, "\n") + "\n\n")
	}
	rows := n.rows()
	width := 0
	for _, r := range rows {
		width = max(width, len(r.Name))
	}
	for _, r := range rows {
		fmt.Fprintf(&text, "%-*s  %s\n", width+1, r.Name+":", r.Value)
	}
	text.WriteString("\n-- \nSent by backupd.\n")

	var html strings.Builder
	err := emailHTML.Execute(&html, struct {
		Subject, Text, Severity string
		Rows                    []row
	}{n.subject(), n.Text, n.Severity, rows})
	if err != nil {
		return Message{}, fmt.Errorf("render the email for %q: %w", n.subject(), err)
	}
	return Message{Subject: subject, Text: text.String(), HTML: html.String()}, nil
}

type row struct{ Name, Value string }

// rows lists what a notification says besides its text: our own fields first, then Fields sorted.
func (n Notification) rows() []row {
	var rs []row
	add := func(k, v string) {
		if v != "" {
			rs = append(rs, row{k, v})
		}
	}
	add("policy", n.Policy)
	add("event", n.Event)
	add("severity", n.Severity)
	if !n.Time.IsZero() {
		add("time", n.Time.UTC().Format(time.RFC3339))
	}
	for _, k := range n.sortedFields() {
		add(k, n.Fields[k])
	}
	return rs
}

var emailHTML = template.Must(template.New("email").Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{{.Subject}}</title></head>
<body style="font-family: sans-serif; font-size: 14px; color: #222">
<h2 style="margin: 0 0 12px 0; color: {{if eq .Severity "critical"}}#b00020{{else if eq .Severity "warning"}}#a15c00{{else}}#1b5e20{{end}}">{{.Subject}}</h2>
{{if .Text}}<p style="white-space: pre-wrap">{{.Text}}</p>
{{end}}{{if .Rows}}<table style="border-collapse: collapse">
{{range .Rows}}<tr><th style="text-align: left; padding: 2px 12px 2px 0; vertical-align: top">{{.Name}}</th><td style="padding: 2px 0; font-family: monospace">{{.Value}}</td></tr>
{{end}}</table>
{{end}}<p style="color: #777; font-size: 12px">Sent by backupd.</p>
</body></html>
`))
