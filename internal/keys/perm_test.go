package keys

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/backupd/backupd/internal/config"
)

// TestDedupKeyPermissions: the generated dedup key is 0600 and reused; one readable by others
// is refused with the chmod that fixes it.
func TestDedupKeyPermissions(t *testing.T) {
	cfg := &config.Config{StateDir: filepath.Join(t.TempDir(), "state")}
	log := slog.New(slog.DiscardHandler)
	k1, err := DedupKey(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(cfg.StateDir, "dedup.key")
	if st, err := os.Stat(p); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("generated dedup key: %v (%v), want mode 0600", st, err)
	}
	k2, err := DedupKey(cfg, log)
	if err != nil || string(k1) != string(k2) {
		t.Fatalf("second read: %x (%v), want the same key %x", k2, err, k1)
	}
	os.Chmod(p, 0o640)
	if _, err := DedupKey(cfg, log); err == nil || !strings.Contains(err.Error(), "chmod 600 "+p) {
		t.Errorf("a 0640 dedup key: got %v, want a refusal saying chmod 600 %s", err, p)
	}
}

// TestStateDirForcedPrivate: an existing state directory open to others is made 0700 before the
// dedup key is written into it.
func TestStateDirForcedPrivate(t *testing.T) {
	cfg := &config.Config{StateDir: filepath.Join(t.TempDir(), "state")}
	if err := os.Mkdir(cfg.StateDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := DedupKey(cfg, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(cfg.StateDir); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("state directory: %v (%v), want mode 0700", st, err)
	}
}
