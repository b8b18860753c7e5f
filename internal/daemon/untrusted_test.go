package daemon

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"github.com/backupd/backupd/internal/signing"
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
				// Signed like the host's own: what is tested here is what comes after the signature.
				sig, _ := daemonTestSigner.Sign(signing.NamespaceManifest, body)
				if err := tg.Put(ctx, backupset.SignatureKey("p", id), bytes.NewReader(sig), int64(len(sig))); err != nil {
					t.Fatal(err)
				}
			}
			put(real, manifestJSON(real, now.Add(-48*time.Hour)))
			for id, body := range tt.planted {
				put(id, body)
			}
			got, _, err := newestCommitted(ctx, []backupset.Dest{{Name: "a", Target: tg}}, "p", now, signing.NewVerifier(daemonTestSigner.Public()))
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

// daemonTestKey signs the sets these tests write by hand; parseConfig installs it as the
// config's own signing key, so they are trusted. strangerSigner is a key nobody trusts.
var daemonTestKey = ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))

var daemonTestSigner, strangerSigner = mustSigner(daemonTestKey), mustSigner(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize)))

func mustSigner(k ed25519.PrivateKey) *signing.Signer {
	s, err := signing.NewSigner(k, "daemon-test")
	if err != nil {
		panic(err)
	}
	return s
}

func testSign(t testing.TB, data []byte) []byte {
	t.Helper()
	sig, err := daemonTestSigner.Sign(signing.NamespaceManifest, data)
	if err != nil {
		t.Fatal(err)
	}
	return sig
}
