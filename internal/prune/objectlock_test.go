package prune

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/backupd/backupd/internal/backupset"
	"github.com/backupd/backupd/internal/targets"
	"github.com/backupd/backupd/internal/testenv"
)

// TestPruneLeavesLockedSetsAlone: on a target with object_lock_days, retention keeps every
// set whose objects are still retained, with the reason; and should the clock claim the
// retention is over while the server still holds it, the server's refusal leaves the set
// committed and whole.
func TestPruneLeavesLockedSetsAlone(t *testing.T) {
	srv := testenv.MinIO(t)
	c := testenv.S3Client(t, srv)
	bucket := strings.ReplaceAll(testenv.UniqueName("backupd-lock"), "_", "-")
	ctx := context.Background()
	if err := c.MakeBucket(ctx, bucket, minio.MakeBucketOptions{Region: srv.Region, ObjectLocking: true}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for oi := range c.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true, WithVersions: true}) {
			c.RemoveObject(ctx, bucket, oi.Key, minio.RemoveObjectOptions{VersionID: oi.VersionID, GovernanceBypass: true})
		}
		c.RemoveBucket(ctx, bucket)
	})
	cfg := parseConfig(t, fmt.Sprintf(`
targets:
  locked:
    type: s3
    endpoint: %q
    region: %q
    bucket: %q
    bucket_lookup: path
    access_key: %q
    secret_key: %q
    object_lock_days: 1
    object_lock_mode: governance
encryption: {recipients: [%q]}
policies:
  p:
    schedule: "CRON_TZ=UTC 0 3 * * *"
    mysql: {dsn: "root@tcp(127.0.0.1:3306)/"}
    targets: [locked]
    retention: {keep_last: 1}
`, srv.Endpoint, srv.Region, bucket, srv.AccessKey, srv.SecretKey, testRecipient(t)))
	tgt, err := targets.Open("locked", cfg.Targets["locked"].Spec(), targets.Options{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	var ids []string
	for i := range 3 {
		id := backupset.NewID(now.Add(time.Duration(i-3) * time.Hour))
		ids = append(ids, id)
		body, _ := json.Marshal(backupset.Manifest{FormatVersion: 1, SetID: id, Policy: "p"})
		sig := testSign(t, body)
		for _, o := range []struct {
			key  string
			body []byte
		}{{backupset.ObjectKey("p", id, "shop/t.00001.sql"), body}, {backupset.SignatureKey("p", id), sig}, {backupset.ManifestKey("p", id), body}} {
			key, body := o.key, o.body
			if err := tgt.Put(ctx, key, bytes.NewReader(body), int64(len(body))); err != nil {
				t.Fatal(err)
			}
		}
	}

	rep, err := Run(ctx, cfg, cfg.Policies["p"], Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	tp := rep.Targets[0]
	if len(tp.Deleted) != 0 {
		t.Errorf("got %v deleted, want none while their objects are retained", tp.Deleted)
	}
	for _, d := range tp.Decisions {
		reasons := strings.Join(d.Reasons, "; ")
		if d.ID != ids[2] && (!d.Keep || !strings.Contains(reasons, "under object lock until")) {
			t.Errorf("set %s: got keep %v (%s), want kept for its object lock", d.ID, d.Keep, reasons)
		}
	}

	// Two days later by our clock, but the server still retains the objects.
	rep, err = Run(ctx, cfg, cfg.Policies["p"], Options{Now: func() time.Time { return now.Add(48 * time.Hour) }})
	if err == nil || !errors.Is(err, targets.ErrLocked) {
		t.Errorf("got %v, want the server's refusal (ErrLocked)", err)
	}
	committed, _ := setsOn(t, tgt, "p")
	if !slices.Equal(committed, ids) {
		t.Errorf("got committed sets %v after the refused prune, want all of %v", committed, ids)
	}
	for _, d := range rep.Targets[0].Decisions {
		if d.ID == ids[2] && !d.Keep {
			t.Error("the newest set was chosen for deletion")
		}
	}
}
