package seal

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestIdentityPermissions: a generated key is 0600 and loads; the same key made readable by
// others is refused with the chmod that fixes it.
func TestIdentityPermissions(t *testing.T) {
	p := filepath.Join(t.TempDir(), "sub", "key.txt")
	if _, err := GenerateKey(p, time.Now()); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(p); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("generated key: %v (%v), want mode 0600", st, err)
	}
	if _, err := GenerateKey(p, time.Now()); err == nil {
		t.Errorf("GenerateKey over an existing key succeeded, want it refused")
	}
	if _, err := LoadIdentities(p); err != nil {
		t.Fatalf("load a 0600 key: %v", err)
	}
	os.Chmod(p, 0o644)
	_, err := LoadIdentities(p)
	if err == nil || !strings.Contains(err.Error(), "chmod 600 "+p) {
		t.Errorf("load a 0644 key: got %v, want a refusal saying chmod 600 %s", err, p)
	}
}
