package targets_test

import (
	"bytes"
	"context"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/backupd/backupd/internal/targets"
	"github.com/backupd/backupd/internal/testenv"
)

// faultProxy forwards to a real S3 server but spoils the first `fail` requests, so the
// whole chain — minio-go, translateError, the retry wrapper — meets real failures.
type faultProxy struct {
	next  http.Handler
	fail  int64
	mode  string // "503": answer SlowDown; "reset": drop the connection
	count atomic.Int64
}

func (p *faultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if p.count.Add(1) > p.fail {
		p.next.ServeHTTP(w, r)
		return
	}
	switch p.mode {
	case "503":
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>`))
	case "reset":
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	}
}

func mustGet(t *testing.T, tgt targets.Target, key string) io.Reader {
	t.Helper()
	rc, err := tgt.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rc.Close() })
	return rc
}

func proxyTo(t *testing.T, srv testenv.S3) *httputil.ReverseProxy {
	u, err := url.Parse(srv.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	// The client signs the Host it connects to; the proxy passes that Host on unchanged,
	// so the signature still verifies at the server.
	return httputil.NewSingleHostReverseProxy(u)
}

// TestS3RetriesTransientFailures needs more failures in a row than minio-go retries by
// itself, so that the retry wrapper has to step in.
func TestS3RetriesTransientFailures(t *testing.T) {
	srv := testenv.MinIO(t)
	bucket := newBucket(t, srv)
	direct := openS3(t, srv.Name, s3Spec(srv, bucket, ""))
	ctx := context.Background()
	if err := direct.Put(ctx, "obj", bytes.NewReader([]byte("payload")), 7); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"503", "reset"} {
		t.Run(mode, func(t *testing.T) {
			fp := &faultProxy{next: proxyTo(t, srv), fail: 5, mode: mode}
			ps := httptest.NewServer(fp)
			defer ps.Close()
			spec := s3Spec(srv, bucket, "")
			spec.Endpoint = ps.URL
			opts, reg := testOptionsReg(t)
			opts.Retry = targets.RetryPolicy{MaxAttempts: 5, InitialBackoff: 10e6, MaxBackoff: 50e6}
			tgt, err := targets.Open("flaky", spec, opts)
			if err != nil {
				t.Fatal(err)
			}
			oi, err := tgt.Stat(ctx, "obj")
			if err != nil || oi.Size != 7 {
				t.Fatalf("stat through %d failing requests: got (%+v, %v), want size 7", fp.fail, oi, err)
			}
			if n := metricSum(t, reg, "backupd_target_retries_total", map[string]string{"op": "stat"}); n < 1 {
				t.Errorf("wrapper retries: got %v, want at least 1", n)
			}
			// A put from a stream cannot be rewound by the wrapper; a small one is buffered
			// by the backend, so minio-go resends it (up to 3 attempts in all).
			fp.count.Store(fp.fail - 2)
			if err := tgt.Put(ctx, "put", io.LimitReader(strings.NewReader("again"), 5), 5); err != nil {
				t.Errorf("put from a stream through 2 failing requests: %v", err)
			}
			if got, _ := io.ReadAll(mustGet(t, direct, "put")); string(got) != "again" {
				t.Errorf("stored %q, want %q", got, "again")
			}
		})
	}
	t.Run("gives up", func(t *testing.T) {
		fp := &faultProxy{next: proxyTo(t, srv), fail: 1 << 30, mode: "503"}
		ps := httptest.NewServer(fp)
		defer ps.Close()
		spec := s3Spec(srv, bucket, "")
		spec.Endpoint = ps.URL
		opts, _ := testOptionsReg(t)
		opts.Retry = targets.RetryPolicy{MaxAttempts: 2, InitialBackoff: 10e6, MaxBackoff: 10e6}
		tgt, err := targets.Open("flaky", spec, opts)
		if err != nil {
			t.Fatal(err)
		}
		_, err = tgt.Stat(ctx, "obj")
		if err == nil || !targets.IsTransient(err) || !strings.Contains(err.Error(), "gave up after 2 attempts") {
			t.Errorf("stat against a server that always says SlowDown: got %v, want a transient error after 2 attempts", err)
		}
	})
}

// TestS3TLS puts a TLS terminator with its own certificate in front of MinIO: https in
// the endpoint means TLS, ca_file makes the private certificate trusted, and without it
// the error says what to do instead of being retried.
func TestS3TLS(t *testing.T) {
	srv := testenv.MinIO(t)
	bucket := newBucket(t, srv)
	ps := httptest.NewUnstartedServer(proxyTo(t, srv))
	ps.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes are the point
	ps.StartTLS()
	defer ps.Close()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ps.Certificate().Raw})
	if err := os.WriteFile(caFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	spec := s3Spec(srv, bucket, "")
	spec.Endpoint = ps.URL // https://127.0.0.1:PORT

	t.Run("with ca_file", func(t *testing.T) {
		spec := spec
		spec.CAFile = caFile
		tgt := openS3(t, "tls", spec)
		if err := tgt.Put(ctx, "tls/obj", bytes.NewReader([]byte("secret stuff")), 12); err != nil {
			t.Fatalf("put over TLS: %v", err)
		}
		if oi, err := tgt.Stat(ctx, "tls/obj"); err != nil || oi.Size != 12 {
			t.Errorf("stat over TLS: got (%+v, %v)", oi, err)
		}
	})
	t.Run("without ca_file", func(t *testing.T) {
		opts, reg := testOptionsReg(t)
		tgt, err := targets.Open("tls", spec, opts)
		if err != nil {
			t.Fatal(err)
		}
		_, err = tgt.Stat(ctx, "tls/obj")
		if err == nil || !strings.Contains(err.Error(), "ca_file") {
			t.Errorf("stat with an untrusted certificate: got %v, want an error that mentions ca_file", err)
		}
		if targets.IsTransient(err) || errors.Is(err, targets.ErrNotFound) {
			t.Errorf("an untrusted certificate must be a permanent error: %v", err)
		}
		if n := metricSum(t, reg, "backupd_target_retries_total", nil); n != 0 {
			t.Errorf("retries: got %v, want 0", n)
		}
	})
}
