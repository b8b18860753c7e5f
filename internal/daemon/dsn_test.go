package daemon

import (
	"context"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/testenv"
)

// TestDSNPasswordNeverShown: the lease connect path, given a DSN whose password holds ':', '/'
// and '@', fails without the password (or a piece of it) in its error.
func TestDSNPasswordNeverShown(t *testing.T) {
	for _, dsn := range testenv.SecretDSNs() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		_, err := getLock(ctx, dsn, "backupd/test")
		cancel()
		if err == nil {
			t.Fatalf("lease connect with a %d-byte DSN: got no error, want one", len(dsn))
		}
		if testenv.LeaksSecret(err.Error()) {
			t.Errorf("lease connect error shows the password: %v", err)
		}
	}
}
