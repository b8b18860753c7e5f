package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// version, commit and date are set by scripts/build.sh with
// -ldflags "-X main.version=v1.2.3 -X main.commit=<sha> -X main.date=<RFC 3339>". A plain
// `go build` or `go run` leaves them empty, and buildVersion reads the Go build info instead.
var (
	version string
	commit  string
	date    string
)

func init() {
	register(&command{name: "version", summary: "print the version, commit and build date", run: runVersion})
}

// build says which backupd this is.
type build struct {
	Version string // a tag like v1.2.3, a git describe string, a pseudo-version, or "dev"
	Commit  string // the full commit hash, "-dirty" appended when the tree had changes; "unknown"
	Date    string // the commit date (RFC 3339); "unknown"
	Go      string // the Go toolchain, OS and architecture
}

// currentBuild is the one place the version is decided; everything that records or shows the
// version (manifests, the daemon's status page and backupd_build_info, this command) reads it.
func currentBuild() build {
	bi, _ := debug.ReadBuildInfo()
	return resolveBuild(version, commit, date, bi)
}

// buildVersion is currentBuild().Version, for the places that record only the version.
func buildVersion() string { return currentBuild().Version }

// resolveBuild prefers what the linker injected and fills the rest from the Go build info, which
// carries the module version and, for a build in a git checkout, vcs.revision, vcs.time and
// vcs.modified. "dev" and "unknown" are used only when neither knows.
func resolveBuild(ldVersion, ldCommit, ldDate string, bi *debug.BuildInfo) build {
	b := build{Version: ldVersion, Commit: ldCommit, Date: ldDate, Go: runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH}
	var rev, vcsTime, modVersion string
	modified := false
	if bi != nil {
		if bi.GoVersion != "" {
			b.Go = bi.GoVersion + " " + runtime.GOOS + "/" + runtime.GOARCH
		}
		// "(devel)" is what Go records when it knows no version; it says nothing more than "dev".
		if v := bi.Main.Version; v != "" && v != "(devel)" {
			modVersion = v
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.time":
				vcsTime = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	if b.Commit == "" && rev != "" {
		b.Commit = rev
		if modified {
			b.Commit += "-dirty"
		}
	}
	if b.Date == "" {
		b.Date = vcsTime
	}
	if b.Version == "" {
		switch {
		case modVersion != "":
			b.Version = modVersion
		case rev != "":
			// A checkout built without a module version: name the commit, so two such
			// builds are never both just "dev".
			b.Version = "dev-" + shortRev(rev)
			if modified {
				b.Version += "-dirty"
			}
		default:
			b.Version = "dev"
		}
	}
	if b.Commit == "" {
		b.Commit = "unknown"
	}
	if b.Date == "" {
		b.Date = "unknown"
	}
	return b
}

func shortRev(rev string) string {
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}

func runVersion(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("version", "", stdout)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	writeVersion(stdout, currentBuild())
	return nil
}

func writeVersion(w io.Writer, b build) {
	fmt.Fprintf(w, "backupd %s\ncommit:  %s\ndate:    %s\ngo:      %s\n", b.Version, b.Commit, b.Date, b.Go)
}
