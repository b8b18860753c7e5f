package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// privateConfigTestdata makes internal/config's testdata files that may hold secrets mode
// 0600: git checks them out 0644, which backupd refuses for a config, policy or secret file.
func privateConfigTestdata(t *testing.T) {
	t.Helper()
	const td = "../../internal/config/testdata"
	files := []string{td + "/acceptance.yaml", td + "/env-secrets.yaml", td + "/full/backupd.yaml"}
	for _, glob := range []string{td + "/full/policies/*", td + "/full/secrets/*"} {
		m, _ := filepath.Glob(glob)
		files = append(files, m...)
	}
	for _, f := range files {
		if err := os.Chmod(f, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCheckConfigRefusesOpenFiles: a config or secret file others can read stops check-config
// with exit 2 and a message that names the file and says chmod 600.
func TestCheckConfigRefusesOpenFiles(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "backupd.yaml")
	secret := filepath.Join(dir, "s3-secret")
	yml := "targets:\n  s:\n    type: s3\n    endpoint: http://127.0.0.1:9000\n    bucket: backups\n    access_key: AKIA\n    secret_key_file: s3-secret\n"
	for _, tc := range []struct {
		name                string
		cfgMode, secretMode os.FileMode
		wantCode            int
		want                string
	}{
		{"both private", 0o600, 0o600, exitOK, ""},
		{"config 0644", 0o644, 0o600, exitUsage, "config file " + cfg + " is open to other users (mode 0644): run chmod 600 " + cfg},
		{"secret 0640", 0o600, 0o640, exitUsage, "secret_key_file " + secret + " is open to other users (mode 0640): run chmod 600 " + secret},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, f := range []struct {
				p, data string
				mode    os.FileMode
			}{{cfg, yml, tc.cfgMode}, {secret, "s3-secret-value\n", tc.secretMode}} {
				if err := os.WriteFile(f.p, []byte(f.data), 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(f.p, f.mode); err != nil {
					t.Fatal(err)
				}
			}
			code, stdout, stderr := runCheck(t, "--config", cfg)
			if code != tc.wantCode || !strings.Contains(stderr, tc.want) {
				t.Errorf("got exit %d, stdout %q, stderr %q; want exit %d and %q", code, stdout, stderr, tc.wantCode, tc.want)
			}
			if strings.Contains(stdout+stderr, "s3-secret-value") {
				t.Errorf("the secret is printed: %s%s", stdout, stderr)
			}
		})
	}
}
