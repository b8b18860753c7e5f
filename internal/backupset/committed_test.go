package backupset

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/signing"
)

// testSigner is the writer's key in these tests; testTrust trusts it and nothing else.
var testSigner, otherSigner = newSigner(1), newSigner(2)
var testTrust = signing.NewVerifier(testSigner.Public())

func newSigner(b byte) *signing.Signer {
	seed := make([]byte, ed25519.SeedSize)
	seed[0] = b
	s, err := signing.NewSigner(ed25519.NewKeyFromSeed(seed), "test")
	if err != nil {
		panic(err)
	}
	return s
}

func sign(t *testing.T, data []byte) []byte { return signWith(t, testSigner, data) }

func signWith(t *testing.T, s *signing.Signer, data []byte) []byte {
	t.Helper()
	sig, err := s.Sign(signing.NamespaceManifest, data)
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

func TestCommitted(t *testing.T) {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	id := NewID(now.Add(-time.Hour))
	good := Manifest{FormatVersion: FormatVersion, SetID: id, Policy: "p", StartedAt: now.Add(-time.Hour), FinishedAt: now.Add(-time.Minute)}
	enc := func(change func(*Manifest)) []byte {
		m := good
		change(&m)
		b, _ := json.Marshal(m)
		return b
	}
	future := NewID(now.Add(time.Hour))
	tests := []struct {
		name       string
		id         string
		data       []byte
		wantReason string // "" : committed
	}{
		{"a manifest backupd writes", id, enc(func(*Manifest) {}), ""},
		{"finished within the clock skew", id, enc(func(m *Manifest) { m.FinishedAt = now.Add(ClockSkew / 2) }), ""},
		{"empty", id, nil, "does not parse"},
		{"not JSON", id, []byte("{not json"), "does not parse"},
		{"no format version", id, enc(func(m *Manifest) { m.FormatVersion = 0 }), "no format version"},
		{"a newer format", id, enc(func(m *Manifest) { m.FormatVersion = FormatVersion + 1 }), "upgrade backupd"},
		{"another set's", id, enc(func(m *Manifest) { m.SetID = NewID(now) }), "not the set it is stored as"},
		{"another policy's", id, enc(func(m *Manifest) { m.Policy = "q" }), "not the set it is stored as"},
		{"set ID in the future", future, enc(func(m *Manifest) { m.SetID = future }), "in the future"},
		{"finished in the future", id, enc(func(m *Manifest) { m.FinishedAt = now.Add(ClockSkew + time.Second) }), "in the future"},
		{"too large", id, make([]byte, MaxManifestBytes+1), "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Committed(tt.data, sign(t, tt.data), "p", tt.id, now, testTrust)
			if tt.wantReason == "" {
				if err != nil || m == nil || m.SetID != tt.id {
					t.Fatalf("got %v, %v; want the manifest committed", m, err)
				}
				return
			}
			var ue *UntrustedError
			if !errors.As(err, &ue) || !errors.Is(err, ErrUntrusted) || !strings.Contains(ue.Reason, tt.wantReason) || m != nil {
				t.Fatalf("got %v, %v; want untrusted because %q", m, err, tt.wantReason)
			}
		})
	}
}

// TestPlantedSetsNeverWin: an empty and a future-dated manifest on one target do not stop
// List, are never chosen by Find, and are reported.
func TestPlantedSetsNeverWin(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	tg := newMem()
	put := func(id string, m *Manifest) {
		var body []byte
		if m != nil {
			body, _ = json.Marshal(m)
		}
		if err := tg.Put(ctx, ManifestKey("p", id), bytes.NewReader(body), int64(len(body))); err != nil {
			t.Fatal(err)
		}
		sig := sign(t, body)
		if err := tg.Put(ctx, SignatureKey("p", id), bytes.NewReader(sig), int64(len(sig))); err != nil {
			t.Fatal(err)
		}
	}
	real := NewID(now.Add(-time.Hour))
	put(real, &Manifest{FormatVersion: FormatVersion, SetID: real, Policy: "p", StartedAt: now.Add(-time.Hour), FinishedAt: now.Add(-time.Hour)})
	put("29991231T000000Z-0000", &Manifest{FormatVersion: FormatVersion, SetID: "29991231T000000Z-0000", Policy: "p"})
	empty := NewID(now.Add(-time.Minute))
	put(empty, nil)

	sets, untrusted, err := List(ctx, tg, "p", now, testTrust)
	if err != nil || len(sets) != 1 || sets[0].SetID != real || len(untrusted) != 2 {
		t.Fatalf("List = %d sets, %d untrusted, %v; want %s only, two untrusted", len(sets), len(untrusted), err, real)
	}
	found, err := Find(ctx, []Dest{{"a", tg}}, "p", Query{Now: func() time.Time { return now }, Trust: testTrust})
	if err != nil || found.Manifest.SetID != real || len(found.Warnings) != 2 {
		t.Fatalf("Find = %+v, %v; want %s with two warnings", found, err, real)
	}
	_, err = Find(ctx, []Dest{{"a", tg}}, "p", Query{ID: empty, Now: func() time.Time { return now }, Trust: testTrust})
	if !errors.Is(err, ErrNoSet) || !strings.Contains(err.Error(), "not trusted") {
		t.Fatalf("Find of the empty manifest's set: got %v, want ErrNoSet saying it is not trusted", err)
	}
}

// TestCommittedSignature: only a manifest signed by a trusted key over its exact bytes commits
// its set; AllowUnsigned accepts a missing signature and nothing else.
func TestCommittedSignature(t *testing.T) {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	id, other := NewID(now.Add(-time.Hour)), NewID(now.Add(-2*time.Hour))
	body := func(id string) []byte {
		b, _ := json.Marshal(Manifest{FormatVersion: FormatVersion, SetID: id, Policy: "p", StartedAt: now.Add(-time.Hour), FinishedAt: now.Add(-time.Minute)})
		return b
	}
	data := body(id)
	// One byte more (a space before the closing brace): the same manifest to a JSON reader.
	changed := append(append([]byte(nil), data[:len(data)-1]...), ' ', '}')
	tests := []struct {
		name       string
		data, sig  []byte
		trust      Trust
		wantReason string // "" : committed
		unsigned   bool   // want UntrustedError.Unsigned, or Manifest.Unsigned when committed
	}{
		{"signed by the trusted key", data, sign(t, data), testTrust, "", false},
		{"unsigned", data, nil, testTrust, "not signed", true},
		{"signed by another key", data, signWith(t, otherSigner, data), testTrust, "signing.trusted_keys: " + strings.TrimSuffix(otherSigner.Public().AuthorizedKey, " test"), false},
		{"one byte changed after signing", changed, sign(t, data), testTrust, "bad signature", false},
		{"signature of another set", data, sign(t, body(other)), testTrust, "bad signature", false},
		{"no trust at all", data, sign(t, data), nil, "not in signing.trusted_keys", false},
		{"unsigned, allowed", data, nil, AllowUnsigned(testTrust), "", true},
		{"another key, unsigned allowed", data, signWith(t, otherSigner, data), AllowUnsigned(testTrust), "not in signing.trusted_keys", false},
		{"changed, unsigned allowed", changed, sign(t, data), AllowUnsigned(testTrust), "bad signature", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Committed(tt.data, tt.sig, "p", id, now, tt.trust)
			if tt.wantReason == "" {
				if err != nil || m == nil || m.Unsigned != tt.unsigned {
					t.Fatalf("got %+v, %v; want committed, unsigned %v", m, err, tt.unsigned)
				}
				return
			}
			var ue *UntrustedError
			if !errors.As(err, &ue) || !strings.Contains(ue.Reason, tt.wantReason) || ue.Unsigned != tt.unsigned || m != nil || ue.Parsed != nil {
				t.Fatalf("got %v, %v; want untrusted because %q (unsigned %v, nothing parsed)", m, err, tt.wantReason, tt.unsigned)
			}
		})
	}
}

// TestFindPrefersSigned: with AllowUnsigned, a newer unsigned set does not win over a signed
// one unless it is named.
func TestFindPrefersSigned(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	tg := newMem()
	put := func(id string, signed bool) {
		b, _ := json.Marshal(Manifest{FormatVersion: FormatVersion, SetID: id, Policy: "p", StartedAt: now.Add(-time.Hour), FinishedAt: now.Add(-time.Hour)})
		tg.Put(ctx, ManifestKey("p", id), bytes.NewReader(b), int64(len(b)))
		if signed {
			sig := sign(t, b)
			tg.Put(ctx, SignatureKey("p", id), bytes.NewReader(sig), int64(len(sig)))
		}
	}
	old, planted := NewID(now.Add(-2*time.Hour)), NewID(now.Add(-time.Hour))
	put(old, true)
	put(planted, false)
	for _, tt := range []struct {
		name string
		q    Query
		want string
	}{
		{"newest", Query{Trust: AllowUnsigned(testTrust)}, old},
		{"named", Query{ID: planted, Trust: AllowUnsigned(testTrust)}, planted},
		{"not allowed", Query{Trust: testTrust}, old},
	} {
		f, err := Find(ctx, []Dest{{"a", tg}}, "p", tt.q)
		if err != nil || f.Manifest.SetID != tt.want {
			t.Errorf("%s: got %+v, %v; want %s", tt.name, f, err, tt.want)
		}
	}
	_, err := Find(ctx, []Dest{{"a", tg}}, "p", Query{ID: planted, Trust: testTrust})
	if !errors.Is(err, ErrNoSet) || !strings.Contains(err.Error(), "--allow-unsigned") {
		t.Fatalf("unsigned set named without --allow-unsigned: got %v, want ErrNoSet pointing at --allow-unsigned", err)
	}
}
