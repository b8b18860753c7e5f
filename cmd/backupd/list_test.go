package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/backupset"
	"github.com/backupd/backupd/internal/config"
	"github.com/backupd/backupd/internal/signing"
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

// countingGets counts the manifests read through it.
type countingGets struct {
	targets.Target
	name      string
	manifests int
}

func (c *countingGets) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if strings.HasSuffix(key, "/"+backupset.ManifestName) {
		c.manifests++
	}
	return c.Target.Get(ctx, key)
}

// TestListReadsOnlyNewest: list reads the manifests of the newest --limit sets on each target
// and shows the older ones from the listing, with their size and finish time; --all reads
// every manifest.
func TestListReadsOnlyNewest(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	var dests []backupset.Dest
	var counters []*countingGets
	var ids []string
	for i := range 5 {
		ids = append(ids, backupset.NewID(now.Add(time.Duration(i-5)*time.Hour)))
	}
	for _, name := range []string{"a", "b"} {
		tg, err := targets.Open(name, targets.Spec{Type: "dir", Path: t.TempDir()}, targets.Options{})
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range ids {
			body, _ := json.Marshal(backupset.Manifest{FormatVersion: backupset.FormatVersion, SetID: id, Policy: "p"})
			sig, err := listTestSigner.Sign(signing.NamespaceManifest, body)
			if err != nil {
				t.Fatal(err)
			}
			for k, b := range map[string][]byte{backupset.ObjectKey("p", id, "shop/t.00001.sql"): body, backupset.SignatureKey("p", id): sig, backupset.ManifestKey("p", id): body} {
				if err := tg.Put(ctx, k, bytes.NewReader(b), int64(len(b))); err != nil {
					t.Fatal(err)
				}
			}
		}
		c := &countingGets{Target: tg, name: name}
		counters = append(counters, c)
		dests = append(dests, backupset.Dest{Name: name, Target: c})
	}
	for _, tc := range []struct {
		name      string
		limit     int
		wantReads int // per target
	}{
		{"limit 2", 2, 2},
		{"limit above the count", 10, 5},
		{"all", 0, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, c := range counters {
				c.manifests = 0
			}
			sets, err := listNewest(ctx, "p", dests, now, tc.limit, signing.NewVerifier(listTestSigner.Public()))
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range counters {
				if c.manifests != tc.wantReads {
					t.Errorf("target %s: got %d manifests read, want %d", c.name, c.manifests, tc.wantReads)
				}
			}
			if len(sets) != len(ids) {
				t.Fatalf("got %d sets, want %d", len(sets), len(ids))
			}
			for i, s := range sets {
				wantListed := i < len(ids)-tc.wantReads
				if s.ID != ids[i] || s.ListedOnly != wantListed || len(s.Targets) != 2 {
					t.Errorf("set %d: got %s listed-only %v on %v, want %s listed-only %v on both targets", i, s.ID, s.ListedOnly, s.Targets, ids[i], wantListed)
				}
				if s.ListedOnly && (s.Bytes == 0 || s.FinishedAt.IsZero()) {
					t.Errorf("set %s from the listing: got size %d and finish %v, want both from the listing", s.ID, s.Bytes, s.FinishedAt)
				}
			}
		})
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
