package daemon

import (
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"

	"filippo.io/age"
	"golang.org/x/crypto/ssh"

	"github.com/backupd/backupd/internal/backupset"
	"github.com/backupd/backupd/internal/config"
)

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

// testRecipient is a public key for configs that need one; nothing is encrypted to it here.
func testRecipient(t testing.TB) string {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return id.Recipient().String()
}

// parseConfig loads a config from YAML text written into a fresh directory.
func parseConfig(t testing.TB, yml string) *config.Config {
	t.Helper()
	path := filepath.Join(t.TempDir(), "backupd.yaml")
	if err := os.WriteFile(path, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	installTestSigningKey(t, cfg)
	return cfg
}

// installTestSigningKey makes daemonTestSigner this config's own signing key (unless the
// config names a key that exists), so that the sets the tests write by hand with it are the
// host's own and trusted.
func installTestSigningKey(t testing.TB, cfg *config.Config) {
	t.Helper()
	path := cfg.Signing.KeyFile
	if path == "" {
		return
	}
	if _, err := os.Stat(path); err == nil {
		return
	}
	block, err := ssh.MarshalPrivateKey(daemonTestKey, "daemon-test")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
}

// fakeSet writes a set (one data object, and a manifest when committed) straight into a dir
// target's directory, dated at: retention and garbage collection read only keys and times.
// (Writing the files directly skips the target's fsyncs, which would make a year slow.)
func fakeSet(t testing.TB, dir string, policy, id string, committed bool, at time.Time) {
	t.Helper()
	files := map[string][]byte{backupset.ObjectKey(policy, id, "shop/orders.00001.sql"): []byte("data")}
	if committed {
		m, _ := json.Marshal(backupset.Manifest{FormatVersion: 1, SetID: id, Policy: policy})
		files[backupset.ManifestKey(policy, id)] = m
		files[backupset.SignatureKey(policy, id)] = testSign(t, m)
	}
	for k, data := range files {
		path := filepath.Join(dir, filepath.FromSlash(k))
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, at, at); err != nil {
			t.Fatal(err)
		}
	}
}
