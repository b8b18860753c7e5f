// Tests that the repository stands alone: a clone of it, with nothing beside it, passes the
// README's test command. They live at the top so that a newcomer finds them next to README.md.
package backupd_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// innerEnv marks the test run inside the clone, where the clone test must not run again.
const innerEnv = "BACKUPD_CLONE_TEST_INNER"

// thisFile names the outside locations it checks for, so it is the one file allowed to.
const thisFile = "standalone_test.go"

func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd() // go test runs a package's tests in its directory: the top here
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		t.Fatalf("go.mod not found in %s: %v", dir, err)
	}
	return dir
}

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("git %s in %s: %v\n%s (these tests need a git checkout of the repository and git on PATH)", strings.Join(args, " "), dir, err, stderr)
	}
	return string(out)
}

// TestNothingReadsOutsideTheRepository: no tracked file refers to fixtures or scripts beside
// the checkout (../shared, /work/shared), which a clone from a forge does not have.
func TestNothingReadsOutsideTheRepository(t *testing.T) {
	root := repoRoot(t)
	forbidden := []string{"../" + "shared", "/work/" + "shared"}
	var found []string
	for _, f := range strings.Split(strings.TrimSpace(git(t, root, "ls-files", "-z")), "\x00") {
		if f == "" || f == thisFile {
			continue
		}
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			if os.IsNotExist(err) {
				continue // deleted in the working tree, not yet committed
			}
			t.Fatal(err)
		}
		for _, s := range forbidden {
			if i := bytes.Index(b, []byte(s)); i >= 0 {
				line := bytes.Count(b[:i], []byte("\n")) + 1
				found = append(found, fmt.Sprintf("%s:%d: %s", f, line, s))
			}
		}
	}
	if len(found) > 0 {
		t.Errorf("got references to files outside the repository, want none (move what they need into the repository, e.g. testdata/):\n%s", strings.Join(found, "\n"))
	}
}

// readmeTestCommand returns the command the README gives for running the whole test suite:
// the first indented line after the paragraph that starts with "Run the whole test suite".
func readmeTestCommand(readme []byte) (string, error) {
	sc := bufio.NewScanner(bytes.NewReader(readme))
	inParagraph := false
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "Run the whole test suite"):
			inParagraph = true
		case inParagraph && strings.HasPrefix(line, "    ") && strings.TrimSpace(line) != "":
			return strings.TrimSpace(line), nil
		case inParagraph && strings.HasPrefix(line, "#"):
			return "", fmt.Errorf("README.md: no indented command after \"Run the whole test suite\" before the next heading %q", line)
		}
	}
	return "", fmt.Errorf("README.md: no paragraph starting with \"Run the whole test suite\" followed by an indented command")
}

func TestReadmeTestCommandParses(t *testing.T) {
	for _, tc := range []struct {
		name, readme, want, wantErr string
	}{
		{"command", "# x\n\nRun the whole test suite — it does things:\n\n    ./scripts/test.sh\n\nMore.\n", "./scripts/test.sh", ""},
		{"no paragraph", "# x\n\n    ./scripts/test.sh\n", "", "no paragraph"},
		{"heading first", "Run the whole test suite:\n\n## Next\n\n    make test\n", "", "before the next heading"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readmeTestCommand([]byte(tc.readme))
			if got != tc.want || (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("got %q, %v; want %q, error containing %q", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

// freePorts returns n loopback TCP ports free right now; each port p also has p+1 free (MinIO
// takes its console on the next port).
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var held []net.Listener
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	for len(ports) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, l)
		p := l.Addr().(*net.TCPAddr).Port
		next, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p+1))
		if err != nil {
			continue
		}
		held = append(held, next)
		ports = append(ports, p)
	}
	return ports
}

// TestCloneRunsReadmeTestCommand clones the repository into an empty directory and runs the
// README's test command there: the proof that a clone from a forge passes its own tests with
// nothing beside it. It clones the committed HEAD: uncommitted changes are NOT included (they
// are listed in the log). It runs the whole suite once more, which adds the suite's time to a
// run of scripts/test.sh (about as long as the rest of the suite again); the choices below keep
// the inner run apart from the outer one:
//
//   - recursion: the inner run has BACKUPD_CLONE_TEST_INNER=1, and this test skips itself there;
//   - servers: the inner run starts its own MinIO, versitygw, mailpit and toxiproxy on free
//     ports (BACKUPD_TESTENV_*_PORT) and stops them at its end, exactly as on a fresh machine;
//     the machine's MariaDB is shared, as every test's is (tests use unique database names);
//   - time: the server binaries are linked from this checkout's .tools/bin
//     (BACKUPD_TESTENV_REUSE_BIN) when they are the pinned versions, so the clone does not
//     build MinIO again; the Go build cache is shared too.
func TestCloneRunsReadmeTestCommand(t *testing.T) {
	if os.Getenv(innerEnv) != "" {
		t.Skip("this is the test suite run inside the clone; the clone test runs only in the outer run")
	}
	root := repoRoot(t)
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	command, err := readmeTestCommand(readme)
	if err != nil {
		t.Fatal(err)
	}

	head := strings.TrimSpace(git(t, root, "rev-parse", "HEAD"))
	if dirty := strings.TrimSpace(git(t, root, "status", "--porcelain", "--untracked-files=no")); dirty != "" {
		t.Logf("NOTE: uncommitted changes are not part of the clone, which has HEAD %s only:\n%s", head, dirty)
	}
	parent := t.TempDir() // empty: the clone has nothing beside it
	clone := filepath.Join(parent, "backupd")
	git(t, parent, "clone", "--quiet", "--no-hardlinks", root, clone)
	git(t, clone, "checkout", "--quiet", "--detach", head)

	env := []string{innerEnv + "=1"}
	for _, kv := range os.Environ() {
		// The inner run must find its own servers, not the outer run's settings.
		if strings.HasPrefix(kv, "BACKUPD_TEST_") || strings.HasPrefix(kv, "BACKUPD_TESTENV_") || strings.HasPrefix(kv, innerEnv+"=") {
			continue
		}
		env = append(env, kv)
	}
	if bin, err := filepath.EvalSymlinks(filepath.Join(root, ".tools", "bin")); err == nil {
		env = append(env, "BACKUPD_TESTENV_REUSE_BIN="+bin)
	} else {
		t.Logf("no %s to reuse (%v): the clone builds the servers itself (MinIO takes about 9 minutes)", filepath.Join(root, ".tools", "bin"), err)
	}
	ports := freePorts(t, 5)
	for i, name := range []string{"MINIO", "VERSITYGW", "MAILPIT_SMTP", "MAILPIT_HTTP", "TOXIPROXY"} {
		env = append(env, fmt.Sprintf("BACKUPD_TESTENV_%s_PORT=%d", name, ports[i]))
	}

	ctx := context.Background()
	if d, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d.Add(-30*time.Second))
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, "bash", "-c", command)
	cmd.Dir = clone
	cmd.Env = env
	cmd.WaitDelay = 30 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	t.Logf("running %q in a clone of %s at %s", command, head, clone)
	err = cmd.Run()
	t.Logf("the README's test command took %s in the clone", time.Since(start).Round(time.Second))
	if err != nil {
		t.Fatalf("the README's test command %q failed in a fresh clone of %s: %v\n%s", command, head, err, tail(out.String(), 200))
	}
	if !strings.Contains(out.String(), "all tests passed") {
		t.Errorf("the README's test command %q exited 0 without saying \"all tests passed\":\n%s", command, tail(out.String(), 50))
	}
}

func tail(s string, lines int) string {
	l := strings.Split(s, "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}
