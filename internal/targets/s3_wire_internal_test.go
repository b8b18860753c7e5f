package targets

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/backupd/backupd/internal/testenv"
)

// flipProxy forwards to a real S3 server and flips one byte in the body of every PUT
// that carries data (single PUTs and multipart parts), as a faulty NIC, proxy or memory
// would. Over http minio-go signs every chunk of the body, so a flipped byte would fail
// the signature instead of the checksum; the client under test therefore sends
// UNSIGNED-PAYLOAD, as it does over https, where the signature covers the headers
// (Content-MD5 among them) but not the body. What the proxy changes is then exactly what
// Content-MD5 has to catch, and the request is still validly signed.
type flipProxy struct {
	next    http.Handler
	flipped atomic.Int64
}

func (p *flipProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPut && r.ContentLength > 0 {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		body[len(body)/2] ^= 0x01
		p.flipped.Add(1)
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	p.next.ServeHTTP(w, r)
}

func TestS3PutRefusesCorruptedBody(t *testing.T) {
	for _, srv := range testenv.S3Servers(t) {
		t.Run(srv.Name, func(t *testing.T) {
			ctx := context.Background()
			raw := testenv.S3Client(t, srv)
			var b [6]byte
			rand.Read(b[:])
			bucket := "backupd-wire-" + hex.EncodeToString(b[:])
			if err := raw.MakeBucket(ctx, bucket, minio.MakeBucketOptions{Region: srv.Region}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				for u := range raw.ListIncompleteUploads(ctx, bucket, "", true) {
					raw.RemoveIncompleteUpload(ctx, bucket, u.Key)
				}
				objects := raw.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true})
				for range raw.RemoveObjects(ctx, bucket, objects, minio.RemoveObjectsOptions{}) {
				}
				raw.RemoveBucket(ctx, bucket)
			})
			u, err := url.Parse(srv.Endpoint)
			if err != nil {
				t.Fatal(err)
			}
			fp := &flipProxy{next: httputil.NewSingleHostReverseProxy(u)}
			ps := httptest.NewServer(fp)
			defer ps.Close()
			s, err := NewS3(Spec{Type: "s3", Endpoint: ps.URL, Region: srv.Region, Bucket: bucket,
				AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, BucketLookup: "path", PartSize: minPartSize})
			if err != nil {
				t.Fatal(err)
			}
			s.unsignedPayload = true

			for _, tc := range []struct {
				name string
				size int
			}{
				{"single PUT", 1000},
				{"multipart", minPartSize + 1000},
			} {
				t.Run(tc.name, func(t *testing.T) {
					data := make([]byte, tc.size)
					rand.Read(data)
					key := "flip/" + strings.ReplaceAll(tc.name, " ", "-")
					before := fp.flipped.Load()
					err := s.Put(ctx, key, bytes.NewReader(data), int64(len(data)))
					if fp.flipped.Load() == before {
						t.Fatal("the proxy flipped no byte; the test proves nothing")
					}
					if err == nil || !strings.Contains(err.Error(), "corrupted in transit") {
						t.Errorf("put through a byte-flipping proxy: got %v, want an error saying the body was corrupted in transit", err)
					}
					if !IsTransient(err) {
						t.Errorf("a corrupted body is worth sending again: got a permanent error %v", err)
					}
					_, serr := raw.StatObject(ctx, bucket, key, minio.StatObjectOptions{})
					if code := minio.ToErrorResponse(serr).Code; code != "NoSuchKey" && code != "NotFound" {
						t.Errorf("object after the refused upload: got stat error %v (code %q), want NoSuchKey", serr, code)
					}
					var uploads int
					for u := range raw.ListIncompleteUploads(ctx, bucket, key, true) {
						if !errors.Is(u.Err, nil) {
							t.Fatalf("list incomplete uploads: %v", u.Err)
						}
						uploads++
					}
					if uploads != 0 {
						t.Errorf("incomplete uploads left: got %d, want 0", uploads)
					}
				})
			}
		})
	}
}

// TestS3PutConfirmsStoredSize puts a proxy in front of MinIO that makes the server report
// a shorter object on HEAD, as a server or gateway that stored a truncated object would:
// the upload itself succeeds, and only the confirmation after it can notice.
func TestS3PutConfirmsStoredSize(t *testing.T) {
	srv := testenv.MinIO(t)
	ctx := context.Background()
	raw := testenv.S3Client(t, srv)
	var b [6]byte
	rand.Read(b[:])
	bucket := "backupd-wire-" + hex.EncodeToString(b[:])
	if err := raw.MakeBucket(ctx, bucket, minio.MakeBucketOptions{Region: srv.Region}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		objects := raw.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true})
		for range raw.RemoveObjects(ctx, bucket, objects, minio.RemoveObjectsOptions{}) {
		}
		raw.RemoveBucket(ctx, bucket)
	})
	u, err := url.Parse(srv.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ModifyResponse = func(resp *http.Response) error {
		if resp.Request.Method == http.MethodHead && strings.HasSuffix(resp.Request.URL.Path, "/short") {
			resp.Header.Set("Content-Length", "3")
		}
		return nil
	}
	ps := httptest.NewServer(rp)
	defer ps.Close()
	s, err := NewS3(Spec{Type: "s3", Endpoint: ps.URL, Region: srv.Region, Bucket: bucket,
		AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, BucketLookup: "path"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		key     string
		wantErr string
	}{
		{"whole", ""},
		{"short", "stored short as 3 bytes, want 10"},
	} {
		err := s.Put(ctx, tc.key, strings.NewReader("0123456789"), 10)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("put %s: got %v, want success", tc.key, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("put %s: got %v, want an error containing %q", tc.key, err, tc.wantErr)
		}
	}
}
