package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/seal"
	"github.com/backupd/backupd/internal/testenv"
)

// runCLI runs one backupd command line in-process and returns its exit code and output.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// testKey generates an age identity for the test and returns its file and public key.
func testKey(t *testing.T) (keyFile, pub string) {
	t.Helper()
	keyFile = filepath.Join(t.TempDir(), "key.txt")
	pub, err := seal.GenerateKey(keyFile, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return keyFile, pub
}

// s3TargetYAML is the YAML of an s3 target on a test server and bucket.
func s3TargetYAML(srv testenv.S3, bucket string) string {
	return fmt.Sprintf(`
    type: s3
    endpoint: %s
    region: %s
    bucket: %s
    bucket_lookup: path
    access_key: %s
    secret_key: %s`, srv.Endpoint, srv.Region, bucket, srv.AccessKey, srv.SecretKey)
}

// writeConfig writes a config file into a fresh directory and returns its path.
func writeConfig(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "backupd.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// yamlString quotes s for YAML (JSON strings are valid YAML).
func yamlString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// backupdBinary builds the backupd binary once per test run, for tests that need a real
// process (signals, SIGKILL, exit codes).
func backupdBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "backupd-bin-")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "backupd")
		out, err := exec.Command("go", "build", "-o", builtBin, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

// listJSON runs `list --json` and decodes it.
func listJSON(t *testing.T, cfg, policy string) []listedSet {
	t.Helper()
	code, out, errOut := runCLI(t, "list", "--config", cfg, "--policy", policy, "--json")
	if code != 0 {
		t.Fatalf("list: exit %d: %s", code, errOut)
	}
	var sets []listedSet
	if err := json.Unmarshal([]byte(out), &sets); err != nil {
		t.Fatalf("list --json printed %q: %v", out, err)
	}
	return sets
}

func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }
