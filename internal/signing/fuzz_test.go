package signing

import (
	"crypto/ed25519"
	"errors"
	"testing"
)

// FuzzVerify feeds arbitrary bytes to the signature decoder: it must never panic, and nothing
// but the one signature made over the message may verify.
func FuzzVerify(f *testing.F) {
	// A fixed key so the committed seeds (testdata/fuzz/FuzzVerify) stay valid signatures.
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = byte(i)
	}
	s, err := NewSigner(ed25519.NewKeyFromSeed(seed), "fuzz")
	if err != nil {
		f.Fatal(err)
	}
	msg := []byte("fuzzed manifest\n")
	good, err := s.Sign(NamespaceManifest, msg)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(armorBegin + "\n" + armorEnd))
	f.Add([]byte(armorBegin + "\nU1NIU0lHAAAAAQ==\n" + armorEnd))
	f.Add([]byte{})
	v := NewVerifier(s.Public())
	f.Fuzz(func(t *testing.T, sig []byte) {
		k, err := v.Verify(NamespaceManifest, msg, sig)
		if err != nil {
			for _, want := range []error{ErrUnsigned, ErrMalformed, ErrBadSignature, ErrUntrustedKey} {
				if errors.Is(err, want) {
					return
				}
			}
			t.Fatalf("error %v is none of the documented kinds", err)
		}
		if k.Fingerprint != s.Public().Fingerprint {
			t.Fatalf("verified with key %s, want %s", k.Fingerprint, s.Public().Fingerprint)
		}
		// Ed25519 signatures are not malleable: whatever verifies carries the same signature
		// blob (the armor may differ in line breaks and surrounding space).
		got, err := parseSignature(sig)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := parseSignature(good)
		if string(got.signature.Blob) != string(want.signature.Blob) {
			t.Fatalf("a different signature blob verified")
		}
	})
}
