package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"github.com/backupd/backupd/internal/config"
	"github.com/backupd/backupd/internal/signing"
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
		sig, _ := listTestSigner.Sign(signing.NamespaceManifest, body)
		if err := tg.Put(ctx, backupset.SignatureKey("p", id), bytes.NewReader(sig), int64(len(sig))); err != nil {
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

	sets, err := listSets(ctx, "p", []backupset.Dest{{Name: "a", Target: tg}}, now, signing.NewVerifier(listTestSigner.Public()))
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

var listTestSigner = func() *signing.Signer {
	s, err := signing.NewSigner(ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)), "list-test")
	if err != nil {
		panic(err)
	}
	return s
}()

// cfgTrust is the trust the commands build from cfg.
func cfgTrust(t *testing.T, cfg *config.Config) backupset.Trust {
	t.Helper()
	tr, err := trustFor(cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// putSignedManifest writes data as the manifest of a set, signed with cfg's signing key, the
// way the host that backed up would have.
func putSignedManifest(t *testing.T, cfg *config.Config, tg backupset.Target, policy, id string, data []byte) {
	t.Helper()
	s, err := signing.LoadKey(cfg.Signing.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := s.Sign(signing.NamespaceManifest, data)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := tg.Put(ctx, backupset.SignatureKey(policy, id), bytes.NewReader(sig), int64(len(sig))); err != nil {
		t.Fatal(err)
	}
	if err := tg.Put(ctx, backupset.ManifestKey(policy, id), bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
}
