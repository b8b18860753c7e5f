package dump

import (
	"context"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/testenv"
)

// TestDSNPasswordNeverShown: a dump given a DSN whose password holds ':', '/' and '@' fails
// without the password (or a piece of it) in its error, whether the DSN parses or not.
func TestDSNPasswordNeverShown(t *testing.T) {
	for _, dsn := range testenv.SecretDSNs() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		_, err := Run(ctx, Options{DSN: dsn, Databases: []string{"x"}}, DirSink{Dir: t.TempDir()})
		cancel()
		if err == nil {
			t.Fatalf("dump with %d-byte DSN: got no error, want one", len(dsn))
		}
		if testenv.LeaksSecret(err.Error()) {
			t.Errorf("dump error shows the password: %v", err)
		}
	}
}
