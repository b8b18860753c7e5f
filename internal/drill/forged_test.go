package drill

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/backupset"
	"github.com/backupd/backupd/internal/signing"
	"github.com/backupd/backupd/internal/targets"
	"github.com/backupd/backupd/internal/testenv"
)

func newTestSigner(t *testing.T, name string) *signing.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := signing.NewSigner(priv, name)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestForgedDrillReports: reports planted on the targets (unsigned, signed by a key nobody
// trusts, signed for another kind of object, a genuine report's bytes and signature copied
// under a newer name) are not in History, do not move LastRun (catch-up) or the rotation, and
// do not push the genuine report out of a limited history.
func TestForgedDrillReports(t *testing.T) {
	for _, kind := range []string{"dir", "minio"} {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			var dests []backupset.Dest
			for _, name := range []string{"a", "b"} {
				spec := targets.Spec{Type: "dir", Path: t.TempDir()}
				if kind == "minio" {
					srv := testenv.MinIO(t)
					spec = targets.Spec{Type: "s3", Endpoint: srv.Endpoint, Region: srv.Region, Bucket: testenv.NewBucket(t, srv),
						AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, BucketLookup: "path"}
				}
				tg, err := targets.Open(name, spec, targets.Options{})
				if err != nil {
					t.Fatal(err)
				}
				dests = append(dests, backupset.Dest{Name: name, Target: tg})
			}
			trusted, other := newTestSigner(t, "trusted"), newTestSigner(t, "other")
			v := signing.NewVerifier(trusted.Public())

			t0 := time.Date(2026, 11, 30, 6, 0, 0, 0, time.UTC)
			report := func(at time.Time, target string) (*Report, []byte) {
				r := &Report{Version: ReportVersion, ID: drillID(at, "20261130T030000Z-aaaa"), Policy: "p", Result: Pass,
					StartedAt: at, FinishedAt: at.Add(time.Minute), Target: target, Host: "h"}
				data, err := json.MarshalIndent(r, "", "  ")
				if err != nil {
					t.Fatal(err)
				}
				return r, data
			}
			genuine, genuineData := report(t0, "a")
			if ok, errs := store(ctx, dests, genuine, "<p>report</p>", trusted); len(ok) != 2 {
				t.Fatalf("store: stored on %v, errors %v", ok, errs)
			}
			genuineSig, err := trusted.Sign(signing.NamespaceDrillReport, genuineData)
			if err != nil {
				t.Fatal(err)
			}
			plant := func(id string, data, sig []byte) {
				t.Helper()
				for _, d := range dests {
					k := reportKey("p", id, ".json")
					if err := d.Target.Put(ctx, k, bytes.NewReader(data), int64(len(data))); err != nil {
						t.Fatal(err)
					}
					if sig != nil {
						if err := d.Target.Put(ctx, k+signing.SignatureSuffix, bytes.NewReader(sig), int64(len(sig))); err != nil {
							t.Fatal(err)
						}
					}
				}
			}
			forge := func(hours int, signer *signing.Signer, namespace string) {
				r, data := report(t0.Add(time.Duration(hours)*time.Hour), "b")
				var sig []byte
				if signer != nil {
					if sig, err = signer.Sign(namespace, data); err != nil {
						t.Fatal(err)
					}
				}
				plant(r.ID, data, sig)
			}
			forge(1, nil, "")                                                 // unsigned
			forge(2, other, signing.NamespaceDrillReport)                     // signed by a key nobody trusts
			forge(3, trusted, signing.NamespaceManifest)                      // a trusted signature of another kind
			plant(drillID(t0.Add(4*time.Hour), "x"), genuineData, genuineSig) // a genuine report under a newer name

			for _, limit := range []int{0, 1} {
				hist, err := History(ctx, dests, "p", limit, v)
				if err != nil {
					t.Fatalf("History(limit %d): %v", limit, err)
				}
				if len(hist) != 1 || hist[0].ID != genuine.ID || len(hist[0].StoredOn) != 2 {
					t.Errorf("History(limit %d) = %+v, want only %s, stored on both targets", limit, hist, genuine.ID)
				}
				if got := NextTarget([]string{"a", "b"}, hist); got != "b" {
					t.Errorf("rotation after History(limit %d): got target %s, want b (the genuine drill read a)", limit, got)
				}
			}
			if last, err := LastRun(ctx, dests, "p", v); err != nil || !last.Equal(t0) {
				t.Errorf("LastRun = %v, %v; want %v", last, err, t0)
			}
			// Without any trusted key nothing counts, the genuine report included.
			if hist, err := History(ctx, dests, "p", 0, signing.NewVerifier()); err != nil || len(hist) != 0 {
				t.Errorf("History trusting no key = %+v, %v; want none", hist, err)
			}
		})
	}
}
