package prune

import (
	"slices"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/backupset"
	"github.com/backupd/backupd/internal/retention"
)

// TestUnsignedDecisions: unsigned sets age out by the rules, never displace a signed set, and
// one newer than the newest signed set is left alone.
func TestUnsignedDecisions(t *testing.T) {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	id := func(daysAgo int) string { return backupset.NewID(now.Add(-time.Duration(daysAgo) * 24 * time.Hour)) }
	set := func(s string) retention.Set {
		tm, _ := backupset.IDTime(s)
		return retention.Set{ID: s, Time: tm, Committed: true}
	}
	s1, s2 := id(1), id(2)
	u5, u40, uNew := id(5), id(40), backupset.NewID(now.Add(-time.Hour))
	signed := []retention.Set{set(s1), set(s2)}
	entries := []backupset.SetEntry{{ID: u5, Committed: true}, {ID: u40, Committed: true}, {ID: uNew, Committed: true}}
	tests := []struct {
		name     string
		pol      retention.Policy
		wantKeep []string // unsigned sets kept
	}{
		{"keep_last 2: both slots go to the signed sets", retention.Policy{KeepLast: 2}, []string{uNew}},
		{"daily 4 keeps the unsigned set of a day without a signed one", retention.Policy{Daily: 4}, []string{uNew, u5}},
		{"monthly 1: the signed set covers the month", retention.Policy{Monthly: 1}, []string{uNew}},
		{"monthly 3: the unsigned sets of older months stay", retention.Policy{Monthly: 3}, []string{uNew, u5, u40}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var kept []string
			for _, d := range unsignedDecisions(signed, entries, s1, now, tt.pol) {
				if d.Keep {
					kept = append(kept, d.ID)
				}
			}
			slices.Sort(kept)
			want := slices.Clone(tt.wantKeep)
			slices.Sort(want)
			if !slices.Equal(kept, want) {
				t.Errorf("kept %v, want %v", kept, want)
			}
			// The signed sets' decisions do not depend on the unsigned ones.
			for _, d := range retention.Select(signed, now, tt.pol) {
				if !d.Keep && tt.pol.KeepLast == 2 {
					t.Errorf("signed set %s not kept by keep_last 2", d.ID)
				}
			}
		})
	}
}
