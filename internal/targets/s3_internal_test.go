package targets

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/minio/minio-go/v7"
)

func testS3Target(t *testing.T) *S3 {
	t.Helper()
	s, err := NewS3(Spec{Type: "s3", Endpoint: "http://127.0.0.1:1", Bucket: "backups", AccessKey: "AK", SecretKey: "SECRET"})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestTranslateError(t *testing.T) {
	s := testS3Target(t)
	resp := func(code string, status int) error {
		return minio.ErrorResponse{Code: code, Message: "msg", StatusCode: status}
	}
	for _, tc := range []struct {
		name      string
		in        error
		sentinel  error
		transient bool
		hint      string
	}{
		{"no such key", resp("NoSuchKey", 404), ErrNotFound, false, ""},
		{"no such bucket", resp("NoSuchBucket", 404), ErrBucketNotFound, false, "create it"},
		{"access denied", resp("AccessDenied", 403), ErrAccessDenied, false, "access_key and secret_key"},
		{"unknown key", resp("InvalidAccessKeyId", 403), ErrAccessDenied, false, "access_key and secret_key"},
		{"bad secret", resp("SignatureDoesNotMatch", 403), ErrAccessDenied, false, "access_key and secret_key"},
		{"versitygw unknown key", resp("XAdminUserNotFound", 404), ErrAccessDenied, false, "access_key and secret_key"},
		{"wrong region", resp("AuthorizationHeaderMalformed", 400), nil, false, "region"},
		{"slow down", resp("SlowDown", 503), nil, true, ""},
		{"internal error", resp("InternalError", 500), nil, true, ""},
		{"unknown 5xx", resp("WeirdThing", 502), nil, true, ""},
		{"too many requests", resp("Whatever", 429), nil, true, ""},
		{"request timeout", resp("RequestTimeout", 400), nil, true, ""},
		{"other 4xx", resp("InvalidArgument", 400), nil, false, ""},
		{"connection refused", &url.Error{Op: "Put", URL: "http://x", Err: &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}}, nil, true, ""},
		{"connection reset", &url.Error{Op: "Put", URL: "http://x", Err: syscall.ECONNRESET}, nil, true, ""},
		{"closed mid-response", &url.Error{Op: "Get", URL: "http://x", Err: io.ErrUnexpectedEOF}, nil, true, ""},
		{"closed, as minio-go says it", &url.Error{Op: "Get", URL: "http://x", Err: errors.New("Connection closed by foreign host http://x. Retry again.")}, nil, true, ""},
		{"unknown CA", &url.Error{Op: "Get", URL: "https://x", Err: x509.UnknownAuthorityError{}}, nil, false, "ca_file"},
		{"no such host", &url.Error{Op: "Get", URL: "http://x", Err: &net.DNSError{Err: "no such host", Name: "x", IsNotFound: true}}, nil, false, "endpoint"},
		{"cancelled", fmt.Errorf("put: %w", context.Canceled), context.Canceled, false, ""},
		{"source size mismatch", fmt.Errorf("%w: short", ErrSizeMismatch), ErrSizeMismatch, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := s.translateError(tc.in)
			if got == nil {
				t.Fatal("got nil")
			}
			if tc.sentinel != nil && !errors.Is(got, tc.sentinel) {
				t.Errorf("got %v, want an error wrapping %v", got, tc.sentinel)
			}
			for _, sen := range []error{ErrNotFound, ErrBucketNotFound, ErrAccessDenied} {
				if sen != tc.sentinel && errors.Is(got, sen) {
					t.Errorf("got %v, which wrongly wraps %v", got, sen)
				}
			}
			if IsTransient(got) != tc.transient {
				t.Errorf("transient: got %v, want %v (%v)", IsTransient(got), tc.transient, got)
			}
			if !strings.Contains(got.Error(), tc.hint) {
				t.Errorf("message %q lacks the hint %q", got, tc.hint)
			}
			if strings.Contains(got.Error(), "SECRET") {
				t.Errorf("message %q contains the secret key", got)
			}
		})
	}
	if s.translateError(nil) != nil {
		t.Errorf("translateError(nil) != nil")
	}
}

func TestNewS3Spec(t *testing.T) {
	base := Spec{Type: "s3", Endpoint: "https://s3.example.com", Bucket: "backups", AccessKey: "AK", SecretKey: "SECRET"}
	notPEM := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(notPEM, []byte("not a certificate"), 0o600)
	for _, tc := range []struct {
		name    string
		edit    func(*Spec)
		wantErr string // "" means valid
	}{
		{"valid", func(*Spec) {}, ""},
		{"http", func(s *Spec) { s.Endpoint = "http://127.0.0.1:9000" }, ""},
		{"no endpoint", func(s *Spec) { s.Endpoint = "" }, "endpoint is empty"},
		{"no scheme", func(s *Spec) { s.Endpoint = "s3.example.com" }, "scheme must be http or https"},
		{"path in endpoint", func(s *Spec) { s.Endpoint = "https://s3.example.com/backups" }, "put a path in prefix"},
		{"credentials in endpoint", func(s *Spec) { s.Endpoint = "https://me:hunter2@s3.example.com" }, "contains credentials"},
		{"no bucket", func(s *Spec) { s.Bucket = "" }, "bucket is empty"},
		{"bad bucket", func(s *Spec) { s.Bucket = "my bucket" }, "bucket"},
		{"no secret", func(s *Spec) { s.SecretKey = "" }, "access_key and secret_key"},
		{"bad lookup", func(s *Spec) { s.BucketLookup = "virtual" }, "bucket_lookup"},
		{"dns lookup", func(s *Spec) { s.BucketLookup = "dns" }, ""},
		{"part too small", func(s *Spec) { s.PartSize = 1 << 20 }, "part_size"},
		{"missing CA file", func(s *Spec) { s.CAFile = "/nonexistent/ca.pem" }, "ca_file"},
		{"CA file without PEM", func(s *Spec) { s.CAFile = notPEM }, "no PEM certificate"},
		{"CA file with http", func(s *Spec) { s.Endpoint = "http://x:1"; s.CAFile = notPEM }, "use https"},
		{"bad prefix", func(s *Spec) { s.Prefix = "a/../b" }, "prefix"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := base
			tc.edit(&spec)
			_, err := NewS3(spec)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("got %v, want no error", err)
			case tc.wantErr != "" && err == nil:
				t.Errorf("got no error, want one mentioning %q", tc.wantErr)
			case err != nil && !strings.Contains(err.Error(), tc.wantErr):
				t.Errorf("got %q, want it to mention %q", err, tc.wantErr)
			}
			if err != nil && (strings.Contains(err.Error(), "SECRET") || strings.Contains(err.Error(), "hunter2")) {
				t.Errorf("error %q contains a secret", err)
			}
		})
	}
}

func TestS3Prefix(t *testing.T) {
	for in, want := range map[string]string{"": "", "prod": "prod/", "prod/": "prod/", "/prod/db": "prod/db/"} {
		s, err := NewS3(Spec{Type: "s3", Endpoint: "http://x:1", Bucket: "bkt", AccessKey: "a", SecretKey: "s", Prefix: in})
		if err != nil {
			t.Fatal(err)
		}
		if s.prefix != want {
			t.Errorf("prefix %q: got %q, want %q", in, s.prefix, want)
		}
	}
}

func TestUploadPartSize(t *testing.T) {
	s := &S3{partSize: DefaultPartSize}
	for _, tc := range []struct{ size, want int64 }{
		{0, DefaultPartSize},
		{100 << 20, DefaultPartSize},
		{DefaultPartSize * maxParts, DefaultPartSize},
		{DefaultPartSize*maxParts + 1, DefaultPartSize + 1<<20}, // grows to the next MiB
		{1 << 40, 105 << 20},
	} {
		got := s.uploadPartSize(tc.size)
		if got != tc.want {
			t.Errorf("uploadPartSize(%d) = %d, want %d", tc.size, got, tc.want)
		}
		if got*maxParts < tc.size {
			t.Errorf("uploadPartSize(%d) = %d: %d parts cannot hold the object", tc.size, got, maxParts)
		}
	}
}
