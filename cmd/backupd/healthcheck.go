package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/backupd/backupd/internal/config"
)

func init() {
	register(&command{
		name:    "healthcheck",
		summary: "probe a running daemon's /healthz (or /readyz) on this host: for container health checks",
		run:     runHealthcheck,
	})
}

// runHealthcheck lets a container image check the daemon without curl or wget in it. Any
// failure is a plain error, so main exits 1: Docker reads 1 as unhealthy and reserves 2.
func runHealthcheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("healthcheck", "[--addr HOST:PORT] [--ready] [--timeout DURATION]", stdout)
	addr := fs.String("addr", config.DefaultListen, "the daemon's listen address (`HOST:PORT`, as in listen:); 0.0.0.0 and [::] are probed on loopback")
	ready := fs.Bool("ready", false, "probe /readyz (config loaded, every target reachable) instead of /healthz (the process answers)")
	timeout := fs.Duration("timeout", 5*time.Second, "give up after this long")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	u, err := probeURL(*addr, *ready)
	if err != nil {
		return usageErrorf("--addr: %v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	body, err := probe(ctx, u)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, body)
	return nil
}

// probeURL turns a listen address into the URL a process on the same host reaches it at.
func probeURL(addr string, ready bool) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("%q is not HOST:PORT: %v", addr, err)
	}
	if port == "" {
		return "", fmt.Errorf("%q has no port", addr)
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	path := "/healthz"
	if ready {
		path = "/readyz"
	}
	return "http://" + net.JoinHostPort(host, port) + path, nil
}

// probe GETs u and returns the first line of the answer; anything but 200 is an error that
// carries what the daemon said (readyz names the unreachable targets).
func probe(ctx context.Context, u string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", fmt.Errorf("probe %s: %w", u, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("probe %s: %w (is backupd run listening there? check listen: in the config)", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	text := strings.TrimSpace(string(b))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("probe %s: %s: %s", u, resp.Status, strings.ReplaceAll(text, "\n", "; "))
	}
	first, _, _ := strings.Cut(text, "\n")
	return first, nil
}
