package prune

import (
	"crypto/ed25519"
	"testing"

	"github.com/backupd/backupd/internal/signing"
)

// daemonTestKey signs the sets these tests write by hand; installTestSigningKey makes it the
// config's own signing key, so the trust prune builds from the config accepts them.
var daemonTestKey = ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))

var daemonTestSigner = func() *signing.Signer {
	s, err := signing.NewSigner(daemonTestKey, "daemon-test")
	if err != nil {
		panic(err)
	}
	return s
}()

func testSign(t testing.TB, data []byte) []byte {
	t.Helper()
	sig, err := daemonTestSigner.Sign(signing.NamespaceManifest, data)
	if err != nil {
		t.Fatal(err)
	}
	return sig
}
