package backupset

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

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
			m, err := Committed(tt.data, "p", tt.id, now)
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
	}
	real := NewID(now.Add(-time.Hour))
	put(real, &Manifest{FormatVersion: FormatVersion, SetID: real, Policy: "p", StartedAt: now.Add(-time.Hour), FinishedAt: now.Add(-time.Hour)})
	put("29991231T000000Z-0000", &Manifest{FormatVersion: FormatVersion, SetID: "29991231T000000Z-0000", Policy: "p"})
	empty := NewID(now.Add(-time.Minute))
	put(empty, nil)

	sets, untrusted, err := List(ctx, tg, "p", now)
	if err != nil || len(sets) != 1 || sets[0].SetID != real || len(untrusted) != 2 {
		t.Fatalf("List = %d sets, %d untrusted, %v; want %s only, two untrusted", len(sets), len(untrusted), err, real)
	}
	found, err := Find(ctx, []Dest{{"a", tg}}, "p", Query{Now: func() time.Time { return now }})
	if err != nil || found.Manifest.SetID != real || len(found.Warnings) != 2 {
		t.Fatalf("Find = %+v, %v; want %s with two warnings", found, err, real)
	}
	_, err = Find(ctx, []Dest{{"a", tg}}, "p", Query{ID: empty, Now: func() time.Time { return now }})
	if !errors.Is(err, ErrNoSet) || !strings.Contains(err.Error(), "not trusted") {
		t.Fatalf("Find of the empty manifest's set: got %v, want ErrNoSet saying it is not trusted", err)
	}
}
