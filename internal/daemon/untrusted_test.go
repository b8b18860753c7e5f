package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/backupset"
	"github.com/backupd/backupd/internal/targets"
)

// TestPlantedSetsDoNotCountAsNewest: an empty manifest and one dated in the future, as anyone
// with write access to a bucket can plant, never count as the newest committed set, so the
// stale alert still fires and catch-up still runs.
func TestPlantedSetsDoNotCountAsNewest(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	real := backupset.NewID(now.Add(-48 * time.Hour))
	tests := []struct {
		name    string
		planted map[string][]byte
		want    string
	}{
		{"nothing planted", nil, real},
		{"an empty manifest", map[string][]byte{"29991231T000000Z-0000": nil}, real},
		{"a future-dated manifest", map[string][]byte{"29991231T000000Z-0001": manifestJSON("29991231T000000Z-0001", time.Time{})}, real},
		{"a newer set of another ID's manifest", map[string][]byte{backupset.NewID(now): manifestJSON(real, now)}, real},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tg, err := targets.Open("a", targets.Spec{Type: "dir", Path: t.TempDir()}, targets.Options{})
			if err != nil {
				t.Fatal(err)
			}
			put := func(id string, body []byte) {
				if err := tg.Put(ctx, backupset.ManifestKey("p", id), bytes.NewReader(body), int64(len(body))); err != nil {
					t.Fatal(err)
				}
			}
			put(real, manifestJSON(real, now.Add(-48*time.Hour)))
			for id, body := range tt.planted {
				put(id, body)
			}
			got, err := newestCommitted(ctx, []backupset.Dest{{Name: "a", Target: tg}}, "p", now)
			if err != nil || got.ID != tt.want {
				t.Fatalf("newest committed = %q, %v; want %q", got.ID, err, tt.want)
			}
		})
	}
}

func manifestJSON(id string, at time.Time) []byte {
	b, _ := json.Marshal(backupset.Manifest{FormatVersion: backupset.FormatVersion, SetID: id, Policy: "p", StartedAt: at, FinishedAt: at})
	return b
}
