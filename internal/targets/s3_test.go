package targets_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/backupd/backupd/internal/targets"
	"github.com/backupd/backupd/internal/targets/targettest"
	"github.com/backupd/backupd/internal/testenv"
)

func s3Spec(srv testenv.S3, bucket, prefix string) targets.Spec {
	return targets.Spec{
		Type:      "s3",
		Endpoint:  srv.Endpoint,
		Region:    srv.Region,
		Bucket:    bucket,
		Prefix:    prefix,
		AccessKey: srv.AccessKey,
		SecretKey: srv.SecretKey,
		// Loopback has no DNS names for buckets.
		BucketLookup: "path",
	}
}

func randomName(prefix string) string {
	var b [6]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// rawClient talks to the server without our code in between, to check what is really
// stored and to clean up.
func rawClient(t *testing.T, srv testenv.S3) *minio.Client { return testenv.S3Client(t, srv) }

// newBucket creates a bucket for this test run only and removes it, with all it holds,
// when the test ends, so runs never see each other's objects.
func newBucket(t *testing.T, srv testenv.S3) string {
	t.Helper()
	bucket := randomName("backupd-test-")
	s3, err := targets.NewS3(s3Spec(srv, bucket, ""))
	if err != nil {
		t.Fatal(err)
	}
	if err := s3.EnsureBucket(context.Background()); err != nil {
		t.Fatalf("create bucket %s on %s: %v", bucket, srv.Name, err)
	}
	if err := s3.EnsureBucket(context.Background()); err != nil {
		t.Fatalf("EnsureBucket on an existing bucket: got %v, want nil", err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		c := rawClient(t, srv)
		for u := range c.ListIncompleteUploads(ctx, bucket, "", true) {
			c.RemoveIncompleteUpload(ctx, bucket, u.Key)
		}
		objects := c.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true})
		for e := range c.RemoveObjects(ctx, bucket, objects, minio.RemoveObjectsOptions{}) {
			t.Logf("clean up %s: remove %s: %v", bucket, e.ObjectName, e.Err)
		}
		if err := c.RemoveBucket(ctx, bucket); err != nil {
			t.Logf("clean up: remove bucket %s: %v", bucket, err)
		}
	})
	return bucket
}

func openS3(t *testing.T, name string, spec targets.Spec) targets.Target {
	t.Helper()
	tgt, err := targets.Open(name, spec, testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	return tgt
}

// testS3 runs the suite on one server, each case under its own prefix of one bucket,
// then the cases only S3 has.
func testS3(t *testing.T, srv testenv.S3) {
	bucket := newBucket(t, srv)
	n := 0
	targettest.Run(t, func(t *testing.T) targets.Target {
		n++
		spec := s3Spec(srv, bucket, fmt.Sprintf("case%02d/", n))
		// 5 MiB parts (the S3 minimum) make the 5 MiB+1 object a two-part upload.
		spec.PartSize = 5 << 20
		return openS3(t, srv.Name, spec)
	})

	t.Run("no incomplete uploads left", func(t *testing.T) {
		// The suite's cancelled and failed multipart uploads must have been aborted, or
		// their parts would sit in the bucket, invisible and billed.
		var left []string
		for u := range rawClient(t, srv).ListIncompleteUploads(context.Background(), bucket, "", true) {
			if u.Err != nil {
				t.Fatalf("list incomplete uploads: %v", u.Err)
			}
			left = append(left, u.Key)
		}
		if len(left) != 0 {
			t.Errorf("incomplete multipart uploads left in %s: %q", bucket, left)
		}
	})
	t.Run("prefix", func(t *testing.T) { testS3Prefix(t, srv, bucket) })
	t.Run("bad credentials", func(t *testing.T) { testS3BadCredentials(t, srv, bucket) })
	t.Run("missing bucket", func(t *testing.T) { testS3MissingBucket(t, srv) })
}

func testS3Prefix(t *testing.T, srv testenv.S3, bucket string) {
	ctx := context.Background()
	// No trailing slash: the prefix still means a folder.
	tgt := openS3(t, srv.Name, s3Spec(srv, bucket, "pre fix/ünï"))
	if err := tgt.Put(ctx, "k", bytes.NewReader([]byte("v")), 1); err != nil {
		t.Fatal(err)
	}
	if _, err := rawClient(t, srv).StatObject(ctx, bucket, "pre fix/ünï/k", minio.StatObjectOptions{}); err != nil {
		t.Errorf("object under the prefix: %v", err)
	}
	var got []string
	if err := tgt.List(ctx, "", func(oi targets.ObjectInfo) error { got = append(got, oi.Key); return nil }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []string{"k"}) {
		t.Errorf("list through the prefixed target: got %q, want [k]", got)
	}
	whole := openS3(t, srv.Name, s3Spec(srv, bucket, ""))
	got = nil
	if err := whole.List(ctx, "pre fix/", func(oi targets.ObjectInfo) error { got = append(got, oi.Key); return nil }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []string{"pre fix/ünï/k"}) {
		t.Errorf("list of the bucket: got %q, want [pre fix/ünï/k]", got)
	}
}

// ops runs each Target operation once and returns what it returned, by op name.
func ops(tgt targets.Target) map[string]error {
	ctx := context.Background()
	errs := map[string]error{}
	errs["put"] = tgt.Put(ctx, "nightly/x", bytes.NewReader([]byte("data")), 4)
	rc, err := tgt.Get(ctx, "nightly/x")
	if err == nil {
		rc.Close()
	}
	errs["get"] = err
	_, errs["stat"] = tgt.Stat(ctx, "nightly/x")
	errs["list"] = tgt.List(ctx, "nightly/", func(targets.ObjectInfo) error { return nil })
	errs["delete"] = tgt.Delete(ctx, "nightly/x")
	return errs
}

func testS3BadCredentials(t *testing.T, srv testenv.S3, bucket string) {
	for _, tc := range []struct{ name, access, secret string }{
		{"wrong secret", srv.AccessKey, "wrong-secret-0123456789"},
		{"unknown access key", "nobody-has-this-key", srv.SecretKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := s3Spec(srv, bucket, "")
			spec.AccessKey, spec.SecretKey = tc.access, tc.secret
			opts, reg := testOptionsReg(t)
			tgt, err := targets.Open(srv.Name, spec, opts)
			if err != nil {
				t.Fatal(err)
			}
			for op, err := range ops(tgt) {
				if !errors.Is(err, targets.ErrAccessDenied) {
					t.Errorf("%s: got %v, want an error wrapping ErrAccessDenied", op, err)
					continue
				}
				msg := err.Error()
				for _, want := range []string{srv.Name, op, "access_key", "secret_key"} {
					if !strings.Contains(msg, want) {
						t.Errorf("%s: error %q does not mention %q", op, msg, want)
					}
				}
				if strings.Contains(msg, tc.secret) {
					t.Errorf("%s: error %q contains the secret key", op, msg)
				}
			}
			if n := metricSum(t, reg, "backupd_target_retries_total", nil); n != 0 {
				t.Errorf("retries after access denied: got %v, want 0 (a 4xx is not transient)", n)
			}
			if n := metricSum(t, reg, "backupd_target_operations_total", map[string]string{"result": "error"}); n != 5 {
				t.Errorf("operations counted as errors: got %v, want 5", n)
			}
		})
	}
}

func testS3MissingBucket(t *testing.T, srv testenv.S3) {
	bucket := randomName("backupd-missing-")
	opts, reg := testOptionsReg(t)
	tgt, err := targets.Open(srv.Name, s3Spec(srv, bucket, ""), opts)
	if err != nil {
		t.Fatal(err)
	}
	errs := ops(tgt)
	for _, op := range []string{"put", "get", "stat", "list", "delete"} {
		err := errs[op]
		if !errors.Is(err, targets.ErrBucketNotFound) {
			t.Errorf("%s: got %v, want an error wrapping ErrBucketNotFound", op, err)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, bucket) || !strings.Contains(msg, "create it") {
			t.Errorf("%s: error %q should name bucket %s and say to create it", op, msg, bucket)
		}
	}
	if n := metricSum(t, reg, "backupd_target_retries_total", nil); n != 0 {
		t.Errorf("retries for a missing bucket: got %v, want 0", n)
	}
}
