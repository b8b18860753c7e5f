package drill

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/testenv"
)

// TestDSNPasswordNeverShown: the drill scratch path, given a DSN whose password holds ':', '/'
// and '@', fails without the password (or a piece of it) in its error.
func TestDSNPasswordNeverShown(t *testing.T) {
	for _, dsn := range testenv.SecretDSNs() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		_, err := openDSNScratch(ctx, dsn, "p", "20261127T030000Z-3f9a", []string{"shop"}, slog.New(slog.DiscardHandler))
		cancel()
		if err == nil {
			t.Fatalf("drill scratch with a %d-byte DSN: got no error, want one", len(dsn))
		}
		if testenv.LeaksSecret(err.Error()) {
			t.Errorf("drill scratch error shows the password: %v", err)
		}
	}
}
