package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCheck(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), append([]string{"check-config"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

// TestCheckConfigAcceptance is the acceptance: three mistakes, all reported with their
// locations, exit 2; a valid config with secrets from the environment prints ok and no secret.
func TestCheckConfigAcceptance(t *testing.T) {
	privateConfigTestdata(t)
	t.Run("three mistakes", func(t *testing.T) {
		code, stdout, stderr := runCheck(t, "--config", "../../internal/config/testdata/acceptance.yaml")
		if code != exitUsage {
			t.Errorf("got exit code %d, want %d", code, exitUsage)
		}
		if strings.Contains(stdout, "ok") {
			t.Errorf("got stdout %q, want nothing", stdout)
		}
		for _, want := range []string{
			"3 problem(s)",
			"acceptance.yaml:11: policies.nightly.schedule: invalid schedule: expected exactly 5 fields",
			"acceptance.yaml:14: policies.nightly.targets[1]: target `offsite` is not defined (hint: defined targets: primary)",
			"acceptance.yaml:15: policies.nightly.retension: unknown key `retension` (hint: did you mean `retention`?)",
		} {
			if !strings.Contains(stderr, want) {
				t.Errorf("got stderr\n%s\nwant it to contain %q", stderr, want)
			}
		}
	})

	t.Run("valid with secrets from the environment", func(t *testing.T) {
		secrets := map[string]string{
			"CC_S3_KEY":        "AKIAEXAMPLEKEY1234",
			"CC_S3_SECRET":     "s3-secret-wJalrXUtnFEMI",
			"CC_SMTP_PASSWORD": "smtp-secret-hunter2",
			"CC_DB_PASSWORD":   "db-secret-correcthorse",
		}
		for k, v := range secrets {
			t.Setenv(k, v)
		}
		code, stdout, stderr := runCheck(t, "--config", "../../internal/config/testdata/env-secrets.yaml")
		if code != exitOK {
			t.Fatalf("got exit code %d, want 0; stderr:\n%s", code, stderr)
		}
		if first, _, _ := strings.Cut(stdout, "\n"); first != "ok" {
			t.Errorf("got first line %q, want ok", first)
		}
		for _, want := range []string{
			"offsite: s3 http://127.0.0.1:9000 bucket backups prefix prod/",
			"nightly (",
			"schedule:  0 3 * * *",
			"mysql:     backup:***@tcp(127.0.0.1:3306)/ [shop]",
			"targets:   offsite (min_targets 1)",
			"retention: keep_last 3, daily 7",
			"recipients: 1",
		} {
			if !strings.Contains(stdout, want) {
				t.Errorf("got stdout\n%s\nwant it to contain %q", stdout, want)
			}
		}
		for name, v := range secrets {
			if strings.Contains(stdout+stderr, v) {
				t.Errorf("got the value of %s in the output, want no secret", name)
			}
		}
	})
}

func TestCheckConfigUsage(t *testing.T) {
	dir := t.TempDir()
	valid := filepath.Join(dir, "ok.yaml")
	if err := os.WriteFile(valid, []byte("targets:\n  local: {type: dir, path: ./b}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{"no --config", nil, exitUsage, "", "missing --config FILE"},
		{"stray argument", []string{"--config", valid, "extra"}, exitUsage, "", `unexpected argument "extra"`},
		{"unknown flag", []string{"--conf", valid}, exitUsage, "", "flag provided but not defined"},
		{"missing file", []string{"--config", filepath.Join(dir, "nope.yaml")}, exitUsage, "", "nope.yaml: read config:"},
		{"help", []string{"--help"}, exitOK, "Usage: backupd check-config --config FILE", ""},
		{"valid, no policies", []string{"--config", valid}, exitOK, "ok\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCheck(t, tc.args...)
			if code != tc.wantCode {
				t.Errorf("got exit code %d, want %d (stderr %q)", code, tc.wantCode, stderr)
			}
			if !strings.Contains(stdout, tc.wantStdout) {
				t.Errorf("got stdout %q, want it to contain %q", stdout, tc.wantStdout)
			}
			if !strings.Contains(stderr, tc.wantStderr) {
				t.Errorf("got stderr %q, want it to contain %q", stderr, tc.wantStderr)
			}
		})
	}
}

// TestCheckConfigSummaryOfEveryKey runs check-config on the config that uses every key: the
// summary names the storage sources and never prints a secret, inline or from a file.
func TestCheckConfigSummaryOfEveryKey(t *testing.T) {
	privateConfigTestdata(t)
	t.Setenv("FULL_S3_KEY", "AKIAFULLKEY")
	t.Setenv("FULL_S3_SECRET", "full-secret")
	t.Setenv("FULL_DB_PASSWORD", "full-db-pass")
	code, stdout, stderr := runCheck(t, "--config", "../../internal/config/testdata/full/backupd.yaml")
	if code != exitOK {
		t.Fatalf("got exit %d, want 0\n%s%s", code, stdout, stderr)
	}
	for _, want := range []string{"storage:   uploads: ", "storage:   media: s3 https://s3.eu-west-1.amazonaws.com bucket acme-media prefix public/"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("summary lacks %q:\n%s", want, stdout)
		}
	}
	for _, secret := range []string{"AKIAFULLKEY", "full-secret", "full-db-pass", "AKIAMEDIA", "offsite-secret-value"} {
		if strings.Contains(stdout+stderr, secret) {
			t.Errorf("check-config printed the secret %q", secret)
		}
	}
}
