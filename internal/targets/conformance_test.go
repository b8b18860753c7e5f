package targets_test

import (
	"testing"

	"github.com/backupd/backupd/internal/targets"
	"github.com/backupd/backupd/internal/targets/targettest"
	"github.com/backupd/backupd/internal/testenv"
)

// TestConformance runs the one suite against every backend, each opened through
// targets.Open so that the retry, logging and metrics wrappers are exercised too.
func TestConformance(t *testing.T) {
	t.Run("dir", func(t *testing.T) {
		targettest.Run(t, func(t *testing.T) targets.Target { return openDir(t, t.TempDir()) })
	})
	t.Run("minio", func(t *testing.T) { testS3(t, testenv.MinIO(t)) })
	t.Run("versitygw", func(t *testing.T) { testS3(t, testenv.Versity(t)) })
}
