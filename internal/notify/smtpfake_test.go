package notify

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"net"
	"net/http/httptest"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeSMTP is an SMTP server for what mailpit in the shared test environment cannot show: that
// STARTTLS happens before credentials, AUTH LOGIN, refusals, and servers that hang.
type fakeSMTP struct {
	t        *testing.T
	ln       net.Listener
	tls      *tls.Config // offered through STARTTLS (or from the first byte when implicit)
	implicit bool
	auth     []string // AUTH mechanisms offered
	reject   bool     // answer AUTH with 535
	silent   bool     // accept connections but never greet
	wg       sync.WaitGroup

	mu          sync.Mutex
	user, pass  string
	authOverTLS bool
	authMech    string
	from        string
	rcpts       []string
	data        string
}

// testCert returns a certificate valid for 127.0.0.1 and a pool that trusts it.
func testCert(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	s := httptest.NewUnstartedServer(nil)
	s.StartTLS()
	defer s.Close()
	pool := x509.NewCertPool()
	pool.AddCert(s.Certificate())
	return s.TLS.Certificates[0], pool
}

func (f *fakeSMTP) start() (host string, port int) {
	f.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.t.Fatal(err)
	}
	if f.implicit {
		ln = tls.NewListener(ln, f.tls)
	}
	f.ln = ln
	f.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.wg.Go(func() { f.serve(c) })
		}
	})
	f.t.Cleanup(func() { ln.Close(); f.wg.Wait() })
	h, p, _ := net.SplitHostPort(ln.Addr().String())
	pn, _ := strconv.Atoi(p)
	return h, pn
}

func (f *fakeSMTP) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if f.silent {
		_, _ = c.Read(make([]byte, 1)) // until the client gives up
		return
	}
	_, isTLS := c.(*tls.Conn)
	tc := textproto.NewConn(c)
	reply := func(s string) { _ = tc.PrintfLine("%s", s) }
	reply("220 fake ESMTP")
	for {
		line, err := tc.ReadLine()
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "EHLO", "HELO":
			lines := []string{"fake"}
			if f.tls != nil && !isTLS {
				lines = append(lines, "STARTTLS")
			}
			if len(f.auth) > 0 {
				lines = append(lines, "AUTH "+strings.Join(f.auth, " "))
			}
			lines = append(lines, "8BITMIME")
			for i, l := range lines {
				sep := "-"
				if i == len(lines)-1 {
					sep = " "
				}
				reply("250" + sep + l)
			}
		case "STARTTLS":
			reply("220 go ahead")
			s := tls.Server(c, f.tls)
			if err := s.Handshake(); err != nil {
				return
			}
			c, isTLS = s, true
			tc = textproto.NewConn(s)
		case "AUTH":
			mech, initial, _ := strings.Cut(arg, " ")
			var user, pass string
			switch mech {
			case "PLAIN":
				b, _ := base64.StdEncoding.DecodeString(initial)
				parts := strings.Split(string(b), "\x00")
				if len(parts) == 3 {
					user, pass = parts[1], parts[2]
				}
			case "LOGIN":
				reply("334 " + base64.StdEncoding.EncodeToString([]byte("Username:")))
				l, _ := tc.ReadLine()
				u, _ := base64.StdEncoding.DecodeString(l)
				reply("334 " + base64.StdEncoding.EncodeToString([]byte("Password:")))
				l, _ = tc.ReadLine()
				p, _ := base64.StdEncoding.DecodeString(l)
				user, pass = string(u), string(p)
			default:
				reply("504 unsupported")
				continue
			}
			f.mu.Lock()
			f.user, f.pass, f.authOverTLS, f.authMech = user, pass, isTLS, mech
			f.mu.Unlock()
			if f.reject {
				reply("535 5.7.8 authentication failed")
				continue
			}
			reply("235 ok")
		case "MAIL":
			f.mu.Lock()
			f.from = arg
			f.mu.Unlock()
			reply("250 ok")
		case "RCPT":
			f.mu.Lock()
			f.rcpts = append(f.rcpts, arg)
			f.mu.Unlock()
			reply("250 ok")
		case "DATA":
			reply("354 go on")
			b, err := tc.ReadDotBytes()
			if err != nil {
				return
			}
			f.mu.Lock()
			f.data = string(b)
			f.mu.Unlock()
			reply("250 queued")
		case "QUIT":
			reply("221 bye")
			return
		case "RSET", "NOOP":
			reply("250 ok")
		default:
			reply("502 unknown command")
		}
	}
}
