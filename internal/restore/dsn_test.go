package restore

import (
	"context"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/testenv"
)

// TestDSNPasswordNeverShown: the restore connect path, given a DSN whose password holds ':', '/'
// and '@', fails without the password (or a piece of it) in its error.
func TestDSNPasswordNeverShown(t *testing.T) {
	for _, dsn := range testenv.SecretDSNs() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		_, err := openDestination(ctx, dsn)
		cancel()
		if err == nil {
			t.Fatalf("restore connect with a %d-byte DSN: got no error, want one", len(dsn))
		}
		if testenv.LeaksSecret(err.Error()) {
			t.Errorf("restore connect error shows the password: %v", err)
		}
	}
}
