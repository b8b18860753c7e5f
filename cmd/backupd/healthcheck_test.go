package main

import (
	"bytes"
	"context"
	"net"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/backupd/backupd/internal/config"
	"github.com/backupd/backupd/internal/daemon"
)

func TestHealthcheckProbeURL(t *testing.T) {
	tests := []struct {
		addr    string
		ready   bool
		want    string
		wantErr string
	}{
		{addr: "0.0.0.0:9187", want: "http://127.0.0.1:9187/healthz"},
		{addr: ":9187", ready: true, want: "http://127.0.0.1:9187/readyz"},
		{addr: "[::]:9187", want: "http://[::1]:9187/healthz"},
		{addr: "10.0.0.5:80", want: "http://10.0.0.5:80/healthz"},
		{addr: "localhost", wantErr: "is not HOST:PORT"},
		{addr: "127.0.0.1:", wantErr: "has no port"},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			got, err := probeURL(tt.addr, tt.ready)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %q, %v; want an error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// TestHealthcheckDaemon probes the daemon's real handler, as the image's HEALTHCHECK does, over
// the wildcard address the container listens on.
func TestHealthcheckDaemon(t *testing.T) {
	dir := t.TempDir()
	cfg, err := config.Parse([]byte(`
targets:
  local: { type: dir, path: ./backups }
encryption:
  recipients: [age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p]
policies:
  p:
    schedule: "0 3 * * *"
    storage: [{ name: files, path: ./files }]
    targets: [local]
`), "healthcheck.yaml", dir)
	if err != nil {
		t.Fatal(err)
	}
	d, err := daemon.New(cfg, daemon.Options{Version: buildVersion()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(d.Handler())
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())

	// Nothing listens on the port of a closed listener.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()

	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string
		wantErr  string
	}{
		{name: "healthz over the wildcard address", args: []string{"--addr", "0.0.0.0:" + port}, wantCode: exitOK, wantOut: "ok\n"},
		// A fresh daemon has not checked its targets yet: not ready, and says why.
		{name: "readyz before the first check", args: []string{"--addr", "127.0.0.1:" + port, "--ready"}, wantCode: exitJobFailed, wantErr: "503 Service Unavailable: not ready: the targets have not been checked yet"},
		{name: "nothing listening", args: []string{"--addr", closed}, wantCode: exitJobFailed, wantErr: "is backupd run listening there?"},
		{name: "bad address", args: []string{"--addr", "nowhere"}, wantCode: exitUsage, wantErr: "is not HOST:PORT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), append([]string{"healthcheck"}, tt.args...), &stdout, &stderr)
			if code != tt.wantCode {
				t.Errorf("got exit %d, want %d (stderr %q)", code, tt.wantCode, stderr.String())
			}
			if stdout.String() != tt.wantOut {
				t.Errorf("got stdout %q, want %q", stdout.String(), tt.wantOut)
			}
			if tt.wantErr != "" && !strings.Contains(stderr.String(), tt.wantErr) {
				t.Errorf("got stderr %q, want it to contain %q", stderr.String(), tt.wantErr)
			}
		})
	}
}
