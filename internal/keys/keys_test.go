package keys

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/backupd/backupd/internal/config"
)

func TestDedupKey(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	cfg := &config.Config{StateDir: t.TempDir()}
	a, err := DedupKey(cfg, log)
	if err != nil || len(a) != 32 {
		t.Fatalf("first use: %d bytes, %v; want 32 new bytes", len(a), err)
	}
	b, err := DedupKey(cfg, log)
	if err != nil || !bytes.Equal(a, b) {
		t.Fatalf("second use returned another key (%v): dedup would never match", err)
	}
	if fi, _ := os.Stat(filepath.Join(cfg.StateDir, "dedup.key")); fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	bad := filepath.Join(t.TempDir(), "bad.key")
	os.WriteFile(bad, []byte("not hex\n"), 0o600)
	cfg.Encryption.DedupKeyFile = bad
	if _, err := DedupKey(cfg, log); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("a damaged key file: got %v, want an error naming it", err)
	}
}

func TestRecipientsGeneratesOnce(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	cfg := &config.Config{Encryption: config.Encryption{IdentityFile: filepath.Join(t.TempDir(), "key.txt")}}
	_, first, err := Recipients(cfg, log)
	if err != nil || len(first) != 1 || !strings.HasPrefix(first[0], "age1") {
		t.Fatalf("first run: %v, %v; want one generated age1 key", first, err)
	}
	_, again, err := Recipients(cfg, log)
	if err != nil || again[0] != first[0] {
		t.Fatalf("second run: %v, %v; want the same key %s", again, err, first[0])
	}
	if _, err := Identities(cfg, ""); err != nil {
		t.Errorf("the generated key does not load as an identity: %v", err)
	}
	if _, _, err := Recipients(&config.Config{}, log); err == nil || !strings.Contains(err.Error(), "encryption.recipients") {
		t.Errorf("no keys configured: got %v, want an error saying what to configure", err)
	}
}
