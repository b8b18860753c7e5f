package main

import (
	"bytes"
	"context"
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersionResolve(t *testing.T) {
	const rev = "3e35056abcdef0123456789abcdef0123456789a"
	vcs := func(modified string) []debug.BuildSetting {
		return []debug.BuildSetting{
			{Key: "vcs", Value: "git"},
			{Key: "vcs.revision", Value: rev},
			{Key: "vcs.time", Value: "2026-12-05T17:09:33Z"},
			{Key: "vcs.modified", Value: modified},
		}
	}
	tests := []struct {
		name                string
		ldV, ldC, ldD       string
		bi                  *debug.BuildInfo
		wantV, wantC, wantD string
	}{
		{
			name: "ldflags win over the build info",
			ldV:  "v1.2.3", ldC: "abc123", ldD: "2026-01-02T03:04:05Z",
			bi:    &debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-2026"}, Settings: vcs("true")},
			wantV: "v1.2.3", wantC: "abc123", wantD: "2026-01-02T03:04:05Z",
		},
		{
			name:  "go build in a checkout: pseudo-version and vcs settings",
			bi:    &debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20261205170933-3e35056abcde"}, Settings: vcs("false")},
			wantV: "v0.0.0-20261205170933-3e35056abcde", wantC: rev, wantD: "2026-12-05T17:09:33Z",
		},
		{
			name:  "no module version but a dirty checkout names the commit",
			bi:    &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs("true")},
			wantV: "dev-3e35056abcde-dirty", wantC: rev + "-dirty", wantD: "2026-12-05T17:09:33Z",
		},
		{
			name:  "go install of a tagged module",
			bi:    &debug.BuildInfo{Main: debug.Module{Version: "v1.4.0"}},
			wantV: "v1.4.0", wantC: "unknown", wantD: "unknown",
		},
		{
			name:  "only the version injected: commit and date still from vcs",
			ldV:   "v2.0.0",
			bi:    &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs("false")},
			wantV: "v2.0.0", wantC: rev, wantD: "2026-12-05T17:09:33Z",
		},
		{
			name:  "nothing known at all",
			bi:    &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}},
			wantV: "dev", wantC: "unknown", wantD: "unknown",
		},
		{
			name:  "no build info",
			wantV: "dev", wantC: "unknown", wantD: "unknown",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := resolveBuild(tt.ldV, tt.ldC, tt.ldD, tt.bi)
			if got.Version != tt.wantV || got.Commit != tt.wantC || got.Date != tt.wantD {
				t.Errorf("got version %q commit %q date %q, want %q %q %q", got.Version, got.Commit, got.Date, tt.wantV, tt.wantC, tt.wantD)
			}
			if got.Go == "" {
				t.Errorf("got an empty Go toolchain line")
			}
		})
	}
}

// TestVersionCommand runs the command as a user would and checks that what it prints is what
// the rest of backupd records (manifests, the daemon): one function decides both.
func TestVersionCommand(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"version"}, &stdout, &stderr); code != exitOK {
		t.Fatalf("got exit %d (stderr %q), want 0", code, stderr.String())
	}
	b := currentBuild()
	want := []string{"backupd " + buildVersion() + "\n", "commit:  " + b.Commit + "\n", "date:    " + b.Date + "\n", "go:      " + b.Go + "\n"}
	for _, w := range want {
		if !strings.Contains(stdout.String(), w) {
			t.Errorf("got output %q, want it to contain %q", stdout.String(), w)
		}
	}
	if code := run(context.Background(), []string{"version", "extra"}, &stdout, &stderr); code != exitUsage {
		t.Errorf("version with a stray argument: got exit %d, want %d", code, exitUsage)
	}
}
