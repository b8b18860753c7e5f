package notify

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/smtp"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// DefaultMailTimeout bounds a SendMail whose context has no deadline: an SMTP server that
// accepts the connection and then says nothing must not hang a job.
const DefaultMailTimeout = time.Minute

// SMTPConfig is the mail server that alerts and drill reports go through.
type SMTPConfig struct {
	Host     string
	Port     int
	Username string
	Password string
	From     string // e.g. "backupd <backupd@example.com>"
	StartTLS bool   // require STARTTLS before anything else is sent

	// ImplicitTLS speaks TLS from the first byte (SMTPS). Port 465 always does.
	ImplicitTLS bool

	// RootCAs verifies the server's certificate; nil means the system's roots. The certificate
	// is always verified: a relay with a private CA needs its CA here, not verification off.
	RootCAs *x509.CertPool
}

func (c SMTPConfig) implicitTLS() bool { return c.ImplicitTLS || c.Port == 465 }

func (c SMTPConfig) addr() string { return net.JoinHostPort(c.Host, strconv.Itoa(c.Port)) }

func (c SMTPConfig) tlsConfig() *tls.Config {
	return &tls.Config{ServerName: c.Host, RootCAs: c.RootCAs, MinVersion: tls.VersionTLS12}
}

// Message is one email. Text, HTML or both make the body; with both, mail clients show the
// HTML part and fall back to the text.
type Message struct {
	To      []string // addresses, optionally with names: "Ops <ops@example.com>"
	Subject string
	Text    string
	HTML    string
}

// SendMail sends msg through the server in cfg. It returns once the server accepted the message
// for every recipient; the error names the server, the step that failed and what to check, never
// the password. The context's deadline (or DefaultMailTimeout) bounds the whole conversation.
//
// Credentials are only ever sent over TLS (STARTTLS, or SMTPS via ImplicitTLS or port 465) or to
// a server on loopback.
func SendMail(ctx context.Context, cfg SMTPConfig, msg Message) error {
	if cfg.Host == "" {
		return errors.New("send mail: no SMTP server configured; set smtp.host")
	}
	if cfg.Port <= 0 || cfg.Port > 65535 {
		return fmt.Errorf("send mail: SMTP port %d is not a port; set smtp.port (587 for submission with STARTTLS, 465 for SMTPS)", cfg.Port)
	}
	addr := cfg.addr()
	if cfg.Username != "" && !cfg.StartTLS && !cfg.implicitTLS() && !isLoopback(cfg.Host) {
		// Known before connecting: the conversation would be plaintext.
		return fmt.Errorf("send mail via %s: %w", addr, errPlaintextAuth(cfg))
	}
	from, err := mail.ParseAddress(cfg.From)
	if err != nil {
		return fmt.Errorf("send mail via %s: sender %q is not an email address (%v); set smtp.from, e.g. \"backupd <backupd@example.com>\"", addr, cfg.From, err)
	}
	if len(msg.To) == 0 {
		return fmt.Errorf("send mail %q via %s: no recipients", msg.Subject, addr)
	}
	to := make([]*mail.Address, len(msg.To))
	for i, s := range msg.To {
		if to[i], err = mail.ParseAddress(s); err != nil {
			return fmt.Errorf("send mail %q via %s: recipient %q is not an email address: %v", msg.Subject, addr, s, err)
		}
	}
	data, err := buildMessage(from, to, msg, time.Now(), newMessageID(from.Address))
	if err != nil {
		return fmt.Errorf("send mail %q via %s: %w", msg.Subject, addr, err)
	}

	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultMailTimeout)
		defer cancel()
	}
	if err := deliver(ctx, cfg, from.Address, to, data); err != nil {
		ctxErr := ctx.Err()
		if dl, _ := ctx.Deadline(); ctxErr == nil && !time.Now().Before(dl) {
			// The connection's deadline is the context's; it can fire a moment before the
			// context notices.
			ctxErr = context.DeadlineExceeded
		}
		if ctxErr != nil && !errors.Is(err, ctxErr) {
			err = fmt.Errorf("%w (gave up: %w)", err, ctxErr)
		}
		return fmt.Errorf("send mail %q via %s: %w", msg.Subject, addr, err)
	}
	return nil
}

// deliver runs the SMTP conversation. Its errors say which step failed; SendMail adds the server.
func deliver(ctx context.Context, cfg SMTPConfig, from string, to []*mail.Address, data []byte) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", cfg.addr())
	if err != nil {
		return fmt.Errorf("connect: %w; check smtp.host and smtp.port, and that this host may reach the server", err)
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	if err := conn.SetDeadline(deadline); err != nil {
		return err
	}
	// A cancelled context interrupts whatever read or write is blocked.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	implicitTLS := cfg.implicitTLS()
	if implicitTLS {
		tc := tls.Client(conn, cfg.tlsConfig())
		if err := tc.HandshakeContext(ctx); err != nil {
			return fmt.Errorf("TLS handshake (SMTPS, TLS from the first byte, as on port 465): %w; check that the server speaks SMTPS on this port (for STARTTLS use start_tls, usually on port 587) and that its certificate is valid for %q", err, cfg.Host)
		}
		conn = tc
	}
	c, err := smtp.NewClient(conn, cfg.Host)
	if err != nil {
		hint := "check that smtp.port is an SMTP port"
		if !implicitTLS {
			hint += " (a server that starts with TLS needs SMTPS: port 465)"
		}
		return fmt.Errorf("read the server greeting: %w; %s", err, hint)
	}
	defer c.Close()
	if err := c.Hello(helloName()); err != nil {
		return fmt.Errorf("EHLO: %w", err)
	}
	if cfg.StartTLS && !implicitTLS {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return errors.New("the server does not offer STARTTLS, which smtp.start_tls requires; use a server or port that offers it (587 usually does), or port 465 for SMTPS")
		}
		if err := c.StartTLS(cfg.tlsConfig()); err != nil {
			return fmt.Errorf("STARTTLS: %w; check that the server's certificate is valid for %q and signed by a CA this host trusts", err, cfg.Host)
		}
	}
	if cfg.Username != "" {
		_, encrypted := c.TLSConnectionState()
		if !encrypted && !isLoopback(cfg.Host) {
			return errPlaintextAuth(cfg)
		}
		if ok, _ := c.Extension("AUTH"); !ok {
			return errors.New("the server does not offer AUTH, but smtp.username is set; remove the username if the server relays without one, or check the port")
		}
		if err := c.Auth(&loginAuth{user: cfg.Username, pass: cfg.Password, host: cfg.Host}); err != nil {
			// The user name is not quoted: it is often an API token or an address that is itself
			// a credential, and this message goes into logs and alerts.
			return fmt.Errorf("authenticate as smtp.username: %w; check smtp.username and smtp.password", err)
		}
	}
	if err := c.Mail(from); err != nil {
		return fmt.Errorf("MAIL FROM %s: %w; check that the server lets this account send as smtp.from", from, err)
	}
	for _, a := range to {
		if err := c.Rcpt(a.Address); err != nil {
			return fmt.Errorf("RCPT TO %s: %w; check the address, and that the server relays to it for this sender", a.Address, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	if _, err := w.Write(data); err != nil {
		return fmt.Errorf("write the message: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("the server did not accept the message: %w", err)
	}
	// The message is accepted; a failed QUIT changes nothing for the recipients.
	_ = c.Quit()
	return nil
}

// loginAuth authenticates with AUTH PLAIN, or AUTH LOGIN when the server offers only that (as
// some hosted relays do). Start refuses to run without TLS except on loopback, a second guard
// behind the check in deliver.
type loginAuth struct {
	user, pass, host string
	login            bool
	step             int
}

func (a *loginAuth) Start(s *smtp.ServerInfo) (string, []byte, error) {
	if !s.TLS && !isLoopback(a.host) {
		return "", nil, errors.New("refusing to authenticate over an unencrypted connection")
	}
	switch {
	case slices.Contains(s.Auth, "PLAIN"):
		return "PLAIN", []byte("\x00" + a.user + "\x00" + a.pass), nil
	case slices.Contains(s.Auth, "LOGIN"):
		a.login = true
		return "LOGIN", nil, nil
	}
	return "", nil, fmt.Errorf("the server offers AUTH %s; backupd supports PLAIN and LOGIN", strings.Join(s.Auth, " "))
}

func (a *loginAuth) Next(fromServer []byte, more bool) ([]byte, error) {
	if !more {
		return nil, nil
	}
	if !a.login {
		return nil, errors.New("unexpected challenge after AUTH PLAIN")
	}
	a.step++
	switch a.step {
	case 1:
		return []byte(a.user), nil
	case 2:
		return []byte(a.pass), nil
	}
	return nil, errors.New("unexpected third challenge in AUTH LOGIN")
}

func errPlaintextAuth(cfg SMTPConfig) error {
	return fmt.Errorf("refusing to send the SMTP password to %s over an unencrypted connection; enable smtp.start_tls, use port 465 (SMTPS), or relay through a server on loopback", cfg.Host)
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// helloName is the name this host gives in EHLO: its hostname when that is a plausible DNS name.
func helloName() string {
	h, err := os.Hostname()
	if err != nil || h == "" || len(h) > 253 {
		return "localhost"
	}
	for _, r := range h {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.') {
			return "localhost"
		}
	}
	return h
}

// Email is a Notifier that mails every notification to a fixed list.
type Email struct {
	SMTP SMTPConfig
	To   []string
}

var _ Notifier = (*Email)(nil)

// Notify implements Notifier.
func (e *Email) Notify(ctx context.Context, n Notification) error {
	msg, err := RenderEmail(n)
	if err != nil {
		return err
	}
	msg.To = e.To
	return SendMail(ctx, e.SMTP, msg)
}
