package targets_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/backupd/backupd/internal/targets"
	"github.com/backupd/backupd/internal/testenv"
)

func coordSpec(srv testenv.S3, bucket string) targets.Spec {
	return targets.Spec{Type: "s3", Endpoint: srv.Endpoint, Region: srv.Region, Bucket: bucket,
		AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, BucketLookup: "path"}
}

func coordOpen(t *testing.T, spec targets.Spec) targets.Target {
	t.Helper()
	tgt, err := targets.Open("t", spec, targets.Options{Retry: targets.RetryPolicy{MaxAttempts: 2, InitialBackoff: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	return tgt
}

// TestConditionalWrites checks PutIfAbsent and PutMutable, through the wrappers, on every
// backend: of many racing writers exactly one wins, the object holds the winner's bytes, and
// ProbeConditional sees that the server honours the condition.
func TestConditionalWrites(t *testing.T) {
	backends := map[string]func(t *testing.T) targets.Target{
		"dir": func(t *testing.T) targets.Target {
			return coordOpen(t, targets.Spec{Type: "dir", Path: t.TempDir()})
		},
		"minio": func(t *testing.T) targets.Target {
			srv := testenv.MinIO(t)
			return coordOpen(t, coordSpec(srv, testenv.NewBucket(t, srv)))
		},
		"versitygw": func(t *testing.T) targets.Target {
			srv := testenv.Versity(t)
			return coordOpen(t, coordSpec(srv, testenv.NewBucket(t, srv)))
		},
	}
	for name, open := range backends {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			tgt := open(t)

			ok, err := targets.ProbeConditional(ctx, tgt, "p/locks/probe")
			if err != nil || !ok {
				t.Fatalf("ProbeConditional: got %v, %v; want true, nil", ok, err)
			}
			if _, err := tgt.Stat(ctx, "p/locks/probe"); !errors.Is(err, targets.ErrNotFound) {
				t.Errorf("probe object left behind: Stat got %v, want ErrNotFound", err)
			}

			const racers = 8
			var wg sync.WaitGroup
			errs := make([]error, racers)
			for i := range racers {
				wg.Go(func() {
					errs[i] = targets.PutIfAbsent(ctx, tgt, "p/locks/backup/tick.json", []byte{byte('a' + i)})
				})
			}
			wg.Wait()
			winner := -1
			for i, err := range errs {
				switch {
				case err == nil && winner >= 0:
					t.Errorf("racers %d and %d both won", winner, i)
				case err == nil:
					winner = i
				case !errors.Is(err, targets.ErrExists):
					t.Errorf("racer %d: got %v, want ErrExists", i, err)
				}
			}
			if winner < 0 {
				t.Fatal("got no winner, want exactly one")
			}
			if got := coordRead(t, tgt, "p/locks/backup/tick.json"); got != string(rune('a'+winner)) {
				t.Errorf("got object %q, want the winner's %q", got, string(rune('a'+winner)))
			}

			if err := targets.PutMutable(ctx, tgt, "p/locks/backup/tick.json", []byte("renewed")); err != nil {
				t.Fatalf("PutMutable: %v", err)
			}
			if got := coordRead(t, tgt, "p/locks/backup/tick.json"); got != "renewed" {
				t.Errorf("got %q after PutMutable, want renewed", got)
			}
			if err := tgt.Delete(ctx, "p/locks/backup/tick.json"); err != nil {
				t.Fatal(err)
			}
			if err := targets.PutIfAbsent(ctx, tgt, "p/locks/backup/tick.json", []byte("again")); err != nil {
				t.Errorf("PutIfAbsent after Delete: got %v, want nil", err)
			}
			if until, err := targets.RetainedUntil(ctx, tgt, "p/locks/backup/tick.json"); err != nil || !until.IsZero() {
				t.Errorf("RetainedUntil without object lock: got %v, %v; want zero, nil", until, err)
			}
		})
	}
}

func coordRead(t *testing.T, tgt targets.Target, key string) string {
	t.Helper()
	rc, err := tgt.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// lockBucket creates a bucket with object lock enabled. Objects in it are written in
// governance mode by the tests, so that the cleanup can remove them with a bypass.
func lockBucket(t *testing.T, srv testenv.S3) string {
	t.Helper()
	c := testenv.S3Client(t, srv)
	bucket := strings.ReplaceAll(testenv.UniqueName("backupd-lock"), "_", "-")
	ctx := context.Background()
	if err := c.MakeBucket(ctx, bucket, minio.MakeBucketOptions{Region: srv.Region, ObjectLocking: true}); err != nil {
		t.Fatalf("create object lock bucket on %s: %v", srv.Name, err)
	}
	t.Cleanup(func() {
		for oi := range c.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true, WithVersions: true}) {
			v := oi.VersionID
			if v == "null" {
				v = ""
			}
			if err := c.RemoveObject(ctx, bucket, oi.Key, minio.RemoveObjectOptions{VersionID: v, GovernanceBypass: true}); err != nil {
				t.Logf("clean up %s: remove %s: %v", bucket, oi.Key, err)
			}
		}
		if err := c.RemoveBucket(ctx, bucket); err != nil {
			t.Logf("clean up: remove bucket %s: %v", bucket, err)
		}
	})
	return bucket
}

// TestObjectLock writes through a target with object_lock_days on MinIO and versitygw: every
// object is retained for the configured days, cannot be deleted, and leases (PutMutable)
// stay unretained. A bucket without object lock gives an error that says what to do.
func TestObjectLock(t *testing.T) {
	for _, srv := range testenv.S3Servers(t) {
		t.Run(srv.Name, func(t *testing.T) {
			ctx := context.Background()
			spec := coordSpec(srv, lockBucket(t, srv))
			spec.ObjectLockDays, spec.ObjectLockMode = 1, targets.ObjectLockGovernance
			tgt := coordOpen(t, spec)

			before := time.Now()
			if err := tgt.Put(ctx, "p/set/manifest.json", bytes.NewReader([]byte("{}")), 2); err != nil {
				t.Fatalf("Put under object lock: %v", err)
			}
			until, err := targets.RetainedUntil(ctx, tgt, "p/set/manifest.json")
			if err != nil {
				t.Fatal(err)
			}
			if lo, hi := before.Add(24*time.Hour-time.Minute), time.Now().Add(24*time.Hour+time.Minute); until.Before(lo) || until.After(hi) {
				t.Errorf("got retention until %s, want about a day from now (%s..%s)", until, lo, hi)
			}
			err = tgt.Delete(ctx, "p/set/manifest.json")
			if !errors.Is(err, targets.ErrLocked) {
				t.Errorf("Delete of a retained object: got %v, want ErrLocked", err)
			}
			if got := coordRead(t, tgt, "p/set/manifest.json"); got != "{}" {
				t.Errorf("after the refused delete: got %q, want the object intact", got)
			}

			if err := targets.PutMutable(ctx, tgt, "p/locks/backup/x.json", []byte("lease")); err != nil {
				t.Fatal(err)
			}
			if until, err := targets.RetainedUntil(ctx, tgt, "p/locks/backup/x.json"); err != nil || !until.IsZero() {
				t.Errorf("lease retention: got %v, %v; want none", until, err)
			}
			if err := tgt.Delete(ctx, "p/locks/backup/x.json"); err != nil {
				t.Errorf("delete a lease in a lock bucket: %v", err)
			}
			n := 0
			c := testenv.S3Client(t, srv)
			for oi := range c.ListObjects(ctx, spec.Bucket, minio.ListObjectsOptions{Prefix: "p/locks/", Recursive: true, WithVersions: true}) {
				if oi.Err == nil {
					n++
				}
			}
			if n != 0 {
				t.Errorf("got %d versions of the deleted lease left, want 0 (every version deleted)", n)
			}
		})
	}

	t.Run("bucket without object lock", func(t *testing.T) {
		srv := testenv.MinIO(t)
		spec := coordSpec(srv, testenv.NewBucket(t, srv))
		spec.ObjectLockDays = 7
		tgt := coordOpen(t, spec)
		err := tgt.Put(context.Background(), "p/x", bytes.NewReader([]byte("x")), 1)
		if err == nil || !strings.Contains(err.Error(), "does not have object lock enabled") || !strings.Contains(err.Error(), "remove object_lock_days") {
			t.Errorf("got %v, want an error saying the bucket lacks object lock and what to do", err)
		}
	})

	t.Run("dir target", func(t *testing.T) {
		_, err := targets.Open("d", targets.Spec{Type: "dir", Path: t.TempDir(), ObjectLockDays: 1}, targets.Options{})
		if err == nil || !strings.Contains(err.Error(), "only on s3 targets") {
			t.Errorf("got %v, want an error: object lock exists only on s3 targets", err)
		}
	})
}
