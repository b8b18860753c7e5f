package main

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/backupset"
	"github.com/backupd/backupd/internal/targets"
)

// TestListShowsUntrustedSets: an empty manifest and a future-dated one no longer fail the
// listing of the whole policy; they are listed apart, with the reason, and the real set as
// before.
func TestListShowsUntrustedSets(t *testing.T) {
	ctx := context.Background()
	tg, err := targets.Open("a", targets.Spec{Type: "dir", Path: t.TempDir()}, targets.Options{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	put := func(id string, body []byte) {
		if err := tg.Put(ctx, backupset.ManifestKey("p", id), bytes.NewReader(body), int64(len(body))); err != nil {
			t.Fatal(err)
		}
	}
	real := backupset.NewID(now.Add(-time.Hour))
	good, _ := json.Marshal(backupset.Manifest{FormatVersion: backupset.FormatVersion, SetID: real, Policy: "p", StartedAt: now.Add(-time.Hour), FinishedAt: now.Add(-time.Hour)})
	put(real, good)
	empty := backupset.NewID(now.Add(-time.Minute))
	put(empty, nil)
	future := "29991231T000000Z-0000"
	planted, _ := json.Marshal(backupset.Manifest{FormatVersion: backupset.FormatVersion, SetID: future, Policy: "p"})
	put(future, planted)

	sets, err := listSets(ctx, "p", []backupset.Dest{{Name: "a", Target: tg}}, now)
	if err != nil {
		t.Fatalf("listSets: %v", err)
	}
	got := map[string]string{}
	for _, s := range sets {
		got[s.ID] = s.Untrusted
	}
	want := map[string]string{real: "", empty: "it does not parse", future: "in the future"}
	if len(got) != len(want) {
		t.Fatalf("listed %v, want %v", got, want)
	}
	for id, reason := range want {
		r, ok := got[id]
		if !ok || (reason == "") != (r == "") || !bytes.Contains([]byte(r), []byte(reason)) {
			t.Errorf("set %s: untrusted %q, want %q", id, r, reason)
		}
	}
}
