package main

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// No container engine runs where the tests run, so the Dockerfile cannot be built here. These
// tests check what can be checked without one: the build stage runs scripts/build.sh (which
// scripts/test.sh builds and smoke-tests on every run), the image runs as a non-root user with
// a health check that is a real backupd command, and nothing secret is copied in.

// dockerInstr is one Dockerfile instruction, continuation lines joined.
type dockerInstr struct {
	line int
	cmd  string // upper case: FROM, RUN, COPY, …
	args string
}

// dockerStage is a FROM and the instructions after it.
type dockerStage struct {
	from   string // the image
	name   string // AS name, or ""
	instrs []dockerInstr
}

func parseDockerfile(t *testing.T, file string) []dockerStage {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var instrs []dockerInstr
	var cur strings.Builder
	start := 0
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if cur.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if cur.Len() > 0 && strings.HasPrefix(line, "#") {
			continue // a comment inside a continued instruction
		}
		if cur.Len() == 0 {
			start = n
		}
		if s, ok := strings.CutSuffix(line, `\`); ok {
			cur.WriteString(s + " ")
			continue
		}
		cur.WriteString(line)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		instrs = append(instrs, dockerInstr{line: start, cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)})
		cur.Reset()
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if cur.Len() > 0 {
		t.Fatalf("%s: the last instruction ends in a continuation", file)
	}
	var stages []dockerStage
	for _, in := range instrs {
		if in.cmd == "FROM" {
			f := strings.Fields(in.args)
			st := dockerStage{from: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				st.name = f[2]
			}
			stages = append(stages, st)
			continue
		}
		if len(stages) > 0 {
			stages[len(stages)-1].instrs = append(stages[len(stages)-1].instrs, in)
		}
	}
	return stages
}

func (s dockerStage) all(cmd string) []dockerInstr {
	var out []dockerInstr
	for _, in := range s.instrs {
		if in.cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

// execForm decodes a JSON-array (exec form) argument list.
func execForm(t *testing.T, in dockerInstr) []string {
	t.Helper()
	var args []string
	if err := json.Unmarshal([]byte(in.args), &args); err != nil {
		t.Fatalf("Dockerfile:%d: %s %s is not in exec form (a JSON array): %v", in.line, in.cmd, in.args, err)
	}
	return args
}

func TestDockerfile(t *testing.T) {
	stages := parseDockerfile(t, "../../Dockerfile")
	if len(stages) < 2 {
		t.Fatalf("got %d stages, want a build stage and a runtime stage", len(stages))
	}
	build, final := stages[0], stages[len(stages)-1]

	t.Run("build stage uses the Go of go.mod and scripts/build.sh", func(t *testing.T) {
		gomod, err := os.ReadFile("../../go.mod")
		if err != nil {
			t.Fatal(err)
		}
		m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(gomod)
		if m == nil {
			t.Fatal("go.mod has no go directive")
		}
		// The image is golang:${GO_VERSION}-bookworm; the ARG's default names the version.
		arg := regexp.MustCompile(`(?m)^ARG GO_VERSION=(\S+)`).FindStringSubmatch(readFile(t, "../../Dockerfile"))
		if arg == nil || arg[1] != string(m[1]) {
			t.Errorf("got ARG GO_VERSION %v, want %s as in go.mod", arg, m[1])
		}
		if !strings.HasPrefix(build.from, "golang:") {
			t.Errorf("got build stage FROM %s, want the official golang image", build.from)
		}
		calls := 0
		for _, in := range build.all("RUN") {
			if strings.Contains(in.args, "scripts/build.sh") {
				calls++
			}
			if strings.Contains(in.args, "go build") {
				t.Errorf("Dockerfile:%d: runs go build itself; the image must be built by scripts/build.sh like CI", in.line)
			}
		}
		if calls != 1 {
			t.Errorf("got %d RUNs of scripts/build.sh in the build stage, want 1", calls)
		}
	})

	t.Run("runtime stage", func(t *testing.T) {
		if final.from != "debian:bookworm-slim" {
			t.Errorf("got runtime FROM %s, want debian:bookworm-slim", final.from)
		}
		users := final.all("USER")
		if len(users) == 0 {
			t.Fatal("no USER: the image would run as root")
		}
		u, _, _ := strings.Cut(users[len(users)-1].args, ":")
		if u == "root" || u == "0" || u == "" {
			t.Errorf("got USER %s, want a non-root user", users[len(users)-1].args)
		}
		if !regexp.MustCompile(`^\d+$`).MatchString(u) {
			t.Errorf("got USER %s, want a numeric uid (Kubernetes runAsNonRoot cannot check a name)", u)
		}
		var installs string
		for _, in := range final.all("RUN") {
			installs += in.args + " "
		}
		for _, pkg := range []string{"ca-certificates", "tzdata", "mariadb-client", "age", "zstd", "mariadb-server"} {
			if !regexp.MustCompile(`(^|[\s"])` + regexp.QuoteMeta(pkg) + `($|[\s"])`).MatchString(installs) {
				t.Errorf("runtime stage does not install %s", pkg)
			}
		}
		if !strings.Contains(installs, `"$MARIADB_SERVER" = "true"`) {
			t.Errorf("mariadb-server is not behind the MARIADB_SERVER build arg, so no slim image can be built")
		}
	})

	t.Run("healthcheck is a backupd command", func(t *testing.T) {
		hcs := final.all("HEALTHCHECK")
		if len(hcs) != 1 {
			t.Fatalf("got %d HEALTHCHECKs, want 1", len(hcs))
		}
		_, cmd, ok := strings.Cut(hcs[0].args, "CMD ")
		if !ok {
			t.Fatalf("HEALTHCHECK %s has no CMD", hcs[0].args)
		}
		args := execForm(t, dockerInstr{line: hcs[0].line, cmd: "HEALTHCHECK CMD", args: cmd})
		if len(args) < 2 || args[0] != "backupd" || args[1] != "healthcheck" {
			t.Fatalf("got HEALTHCHECK CMD %q, want backupd healthcheck …", args)
		}
		// Its flags must parse, and it must probe the port the deploy examples listen on.
		fs := newFlagSet("healthcheck", "", nil)
		addr := fs.String("addr", "", "")
		fs.Bool("ready", false, "")
		fs.Duration("timeout", 0, "")
		if err := parseFlags(fs, args[2:]); err != nil {
			t.Fatalf("HEALTHCHECK CMD %q: %v", args, err)
		}
		if u, err := probeURL(*addr, false); err != nil || u != "http://127.0.0.1:9187/healthz" {
			t.Errorf("got probe URL %q, %v; want http://127.0.0.1:9187/healthz", u, err)
		}
	})

	t.Run("default command is backupd run with a mounted config", func(t *testing.T) {
		ep, cmd := final.all("ENTRYPOINT"), final.all("CMD")
		if len(ep) != 1 || len(cmd) != 1 {
			t.Fatalf("got %d ENTRYPOINT and %d CMD, want one each", len(ep), len(cmd))
		}
		got := append(execForm(t, ep[0]), execForm(t, cmd[0])...)
		want := []string{"backupd", "run", "--config", "/etc/backupd/backupd.yaml"}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("got default command %q, want %q", got, want)
		}
	})

	t.Run("nothing secret or site-specific is copied in", func(t *testing.T) {
		for _, st := range stages {
			for _, in := range append(st.all("COPY"), st.all("ADD")...) {
				if st.from == final.from && !strings.Contains(in.args, "--from=") {
					t.Errorf("Dockerfile:%d: %s %s copies from the context into the runtime image; only the built binary belongs there", in.line, in.cmd, in.args)
				}
				for _, bad := range []string{".yaml", ".yml", "key", ".secret", ".env", "/etc/backupd"} {
					if strings.Contains(in.args, bad) {
						t.Errorf("Dockerfile:%d: %s %s looks like a config, key or secret: mount those at run time", in.line, in.cmd, in.args)
					}
				}
			}
		}
	})
}

// TestDockerignore checks that the build context leaves out keys and local state, but no
// tracked file: git in the build stage would then see a modified tree and the version would
// end in -dirty.
func TestDockerignore(t *testing.T) {
	var patterns []string
	for _, l := range strings.Split(readFile(t, "../../.dockerignore"), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			patterns = append(patterns, l)
		}
	}
	for _, p := range []string{"**/backupd-age-key.txt", "**/*.secret", "**/.backupd-state", ".tools"} {
		if !ignored(patterns, strings.TrimPrefix(p, "**/")) {
			t.Errorf(".dockerignore does not leave out %s", p)
		}
	}
	out, err := exec.Command("git", "-C", "../..", "ls-files").Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	for _, f := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if ignored(patterns, f) {
			t.Errorf(".dockerignore leaves out %s, a tracked file", f)
		}
	}
}

// ignored reports whether a .dockerignore pattern matches name or one of its directories; a
// leading **/ matches at any depth.
func ignored(patterns []string, name string) bool {
	parts := strings.Split(filepath.ToSlash(name), "/")
	for _, p := range patterns {
		anyDepth := strings.HasPrefix(p, "**/")
		p = strings.TrimPrefix(p, "**/")
		for i := range parts {
			for j := i + 1; j <= len(parts); j++ {
				if !anyDepth && i > 0 {
					break
				}
				if ok, _ := path.Match(p, strings.Join(parts[i:j], "/")); ok {
					return true
				}
			}
		}
	}
	return false
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
