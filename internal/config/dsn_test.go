package config

import (
	"testing"

	"github.com/backupd/backupd/internal/testenv"
)

// TestDSNPasswordNeverShown: check-config's DSN check, given DSNs whose password holds ':',
// '/' and '@', refuses the malformed ones without the password (or a piece of it) in its error.
func TestDSNPasswordNeverShown(t *testing.T) {
	refused := 0
	for _, dsn := range testenv.SecretDSNs() {
		err := checkDSN(dsn)
		if err == nil {
			continue // well-formed: nothing to say
		}
		refused++
		if testenv.LeaksSecret(err.Error()) {
			t.Errorf("config check error shows the password: %v", err)
		}
	}
	if refused < 3 {
		t.Errorf("%d malformed DSNs refused, want at least 3", refused)
	}
}
