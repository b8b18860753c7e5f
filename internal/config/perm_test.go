package config

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// privateTestdata makes the files under testdata that may hold secrets mode 0600: git checks
// them out 0644, which the permission rule refuses. The rule is not weakened for tests; the
// checkout is made to satisfy it. Public files (recipients, trusted keys, the CA) stay 0644.
func privateTestdata(t *testing.T) {
	t.Helper()
	files := []string{"testdata/acceptance.yaml", "testdata/env-secrets.yaml", "testdata/full/backupd.yaml"}
	for _, glob := range []string{"testdata/full/policies/*", "testdata/full/secrets/*"} {
		m, _ := filepath.Glob(glob)
		files = append(files, m...)
	}
	for _, f := range files {
		if err := os.Chmod(f, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// copyTree copies the directory src to a new temporary directory, keeping file modes.
func copyTree(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		out := filepath.Join(dst, rel)
		if e.IsDir() {
			return os.MkdirAll(out, 0o755)
		}
		st, err := e.Info()
		if err != nil {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := os.WriteFile(out, b, 0o600); err != nil {
			return err
		}
		return os.Chmod(out, st.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// TestFilePermissions loads testdata/full with one file at a time opened up: a file that may
// hold a secret is refused with any group or other bit (the test runs as root, for whom the
// root:GROUP 0640 exception never applies), a file of public keys only when others may write it.
func TestFilePermissions(t *testing.T) {
	privateTestdata(t)
	t.Setenv("FULL_S3_KEY", "AKIAFULLKEY")
	t.Setenv("FULL_S3_SECRET", "full-secret")
	t.Setenv("FULL_DB_PASSWORD", "full-db-pass")
	dir := copyTree(t, "testdata/full")
	cfgFile := filepath.Join(dir, "backupd.yaml")
	if _, err := Load(cfgFile); err != nil {
		t.Fatalf("Load with private files: %v", err)
	}
	secret := []os.FileMode{0o644, 0o640, 0o604, 0o660, 0o606, 0o440}
	public := []os.FileMode{0o664, 0o646, 0o666}
	for _, tc := range []struct {
		what, file string
		refused    []os.FileMode
		accepted   []os.FileMode
		want       string // the message's advice, followed by the file
	}{
		{"config file", "backupd.yaml", secret, []os.FileMode{0o600, 0o400}, "chmod 600 "},
		{"policy file", "policies/hourly-shop.yaml", secret, []os.FileMode{0o600, 0o400}, "chmod 600 "},
		{"webhook_file", "secrets/webhook", secret, []os.FileMode{0o600, 0o400}, "chmod 600 "},
		{"secret_key_file", "secrets/offsite-secret", secret, []os.FileMode{0o600, 0o400}, "chmod 600 "},
		{"access_key_file", "secrets/offsite-access", secret, []os.FileMode{0o600}, "chmod 600 "},
		{"password_file", "secrets/smtp-password", secret, []os.FileMode{0o600}, "chmod 600 "},
		{"dsn_file", "secrets/dsn", secret, []os.FileMode{0o600}, "chmod 600 "},
		{"recipients_file", "recipients.txt", public, []os.FileMode{0o644, 0o444, 0o600}, "chmod go-w "},
		{"trusted_keys_file", "trusted_keys", public, []os.FileMode{0o644, 0o600}, "chmod go-w "},
		{"ca_file", "ca.pem", public, []os.FileMode{0o644, 0o600}, "chmod go-w "},
	} {
		p := filepath.Join(dir, tc.file)
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		orig := st.Mode().Perm()
		try := func(mode os.FileMode) error {
			t.Helper()
			if err := os.Chmod(p, mode); err != nil {
				t.Fatal(err)
			}
			defer os.Chmod(p, orig)
			_, err := Load(cfgFile)
			return err
		}
		for _, mode := range tc.refused {
			err := try(mode)
			if err == nil || !strings.Contains(err.Error(), tc.want+p) || !strings.Contains(err.Error(), tc.what) {
				t.Errorf("%s %04o: got %v, want a refusal naming the %s and saying %s%s", tc.file, mode, err, tc.what, tc.want, p)
			}
		}
		for _, mode := range tc.accepted {
			if err := try(mode); err != nil {
				t.Errorf("%s %04o: got %v, want it accepted", tc.file, mode, err)
			}
		}
	}
	t.Run("embedded config is not a file", func(t *testing.T) {
		if _, err := Parse([]byte("targets:\n  l: {type: dir, path: ./b}\n"), "<embedded>", dir); err != nil {
			t.Errorf("Parse: got %v, want no permission check", err)
		}
	})
}
