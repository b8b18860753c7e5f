package targets

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"syscall"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/s3utils"
)

const (
	// DefaultPartSize is the multipart part size when the spec sets none. An upload holds
	// one part in memory, so this is also the upload's buffer budget.
	DefaultPartSize = 16 << 20
	minPartSize     = 5 << 20 // S3's minimum for every part but the last
	maxPartSize     = 5 << 30
	maxParts        = 10000
)

// minioRetries is how many attempts minio-go makes of one HTTP request. They are kept
// (not disabled) because they are the only retries a streamed upload can have: its part
// (or its whole body, when it fits in one part) is in memory and can be resent, while the
// stream it came from cannot be rewound for a whole-operation retry. Whole operations are
// retried by the retry wrapper, so a request may be tried minioRetries times per attempt.
const minioRetries = 3

// S3 is a Target in a bucket of an S3-compatible service (AWS, MinIO, versitygw, R2, B2,
// Spaces, Wasabi, ...).
type S3 struct {
	client   *minio.Client
	bucket   string
	prefix   string
	region   string
	partSize int64
	endpoint string // redacted URL, for messages

	// unsignedPayload makes requests over http look like requests over https, where
	// minio-go signs headers only (UNSIGNED-PAYLOAD) and Content-MD5 is the only check of
	// the body. Tests set it to show that a body corrupted in transit is refused then too.
	unsignedPayload bool
}

var _ Target = (*S3)(nil)

// NewS3 checks spec and builds the client. It does not contact the server, so a daemon
// can start while a target is down; the first operation reports the problem.
func NewS3(spec Spec) (*S3, error) {
	var problems []string
	if spec.Endpoint == "" {
		problems = append(problems, "endpoint is empty; set it to http://host:port or https://host")
	}
	if spec.Bucket == "" {
		problems = append(problems, "bucket is empty")
	} else if err := s3utils.CheckValidBucketName(spec.Bucket); err != nil {
		problems = append(problems, fmt.Sprintf("bucket %q: %v", spec.Bucket, err))
	}
	if spec.AccessKey == "" || spec.SecretKey == "" {
		problems = append(problems, "access_key and secret_key are both required")
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("s3 target: %s", strings.Join(problems, "; "))
	}

	u, err := url.Parse(spec.Endpoint)
	if err != nil {
		return nil, fmt.Errorf("s3 endpoint is not a URL: %v", redactURLError(err))
	}
	shown := u.Redacted()
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("s3 endpoint %q: scheme must be http or https (it decides TLS), e.g. https://s3.example.com", shown)
	}
	if u.User != nil {
		return nil, fmt.Errorf("s3 endpoint %q contains credentials; use access_key and secret_key instead", shown)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("s3 endpoint %q has no host", shown)
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return nil, fmt.Errorf("s3 endpoint %q: only scheme://host[:port] is allowed; put a path in prefix:", shown)
	}
	secure := u.Scheme == "https"

	var lookup minio.BucketLookupType
	switch spec.BucketLookup {
	case "", "auto":
		lookup = minio.BucketLookupAuto
	case "path":
		lookup = minio.BucketLookupPath
	case "dns":
		lookup = minio.BucketLookupDNS
	default:
		return nil, fmt.Errorf("s3 bucket_lookup %q: use auto, path or dns", spec.BucketLookup)
	}

	partSize := spec.PartSize
	switch {
	case partSize == 0:
		partSize = DefaultPartSize
	case partSize < minPartSize || partSize > maxPartSize:
		return nil, fmt.Errorf("s3 part_size %d: must be between 5 MiB and 5 GiB", partSize)
	}

	transport, err := minio.DefaultTransport(secure)
	if err != nil {
		return nil, err
	}
	if spec.CAFile != "" {
		if !secure {
			return nil, fmt.Errorf("s3 ca_file is set but endpoint %q is http; use https:// to use TLS", shown)
		}
		pool, err := loadCAFile(spec.CAFile)
		if err != nil {
			return nil, err
		}
		transport.TLSClientConfig.RootCAs = pool
	}

	client, err := minio.New(u.Host, &minio.Options{
		Creds:        credentials.NewStaticV4(spec.AccessKey, spec.SecretKey, ""),
		Secure:       secure,
		Transport:    transport,
		Region:       spec.Region,
		BucketLookup: lookup,
		MaxRetries:   minioRetries,
	})
	if err != nil {
		return nil, fmt.Errorf("s3 endpoint %q: %w", shown, err)
	}
	prefix := strings.TrimLeft(spec.Prefix, "/")
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		// "prefix: prod" means a folder to everyone who writes it.
		prefix += "/"
	}
	if err := validatePrefix(prefix); err != nil {
		return nil, fmt.Errorf("s3 prefix: %w", err)
	}
	return &S3{
		client:   client,
		bucket:   spec.Bucket,
		prefix:   prefix,
		region:   spec.Region,
		partSize: partSize,
		endpoint: shown,
	}, nil
}

// redactURLError keeps a password in a malformed endpoint out of the message.
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// loadCAFile trusts the bundle in addition to the system roots, so a private CA works
// without breaking public endpoints reached through the same process.
func loadCAFile(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("s3 ca_file: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("s3 ca_file %s: no PEM certificate found in it", path)
	}
	return pool, nil
}

func (s *S3) String() string { return fmt.Sprintf("s3 %s bucket %s", s.endpoint, s.bucket) }

// EnsureBucket creates the bucket if it does not exist. The daemon never calls it on its
// own (a typo in bucket: must not silently create a new bucket); tests and an explicit
// setup command do.
func (s *S3) EnsureBucket(ctx context.Context) error {
	ok, err := s.client.BucketExists(ctx, s.bucket)
	if err != nil {
		return s.translateError(err)
	}
	if ok {
		return nil
	}
	err = s.client.MakeBucket(ctx, s.bucket, minio.MakeBucketOptions{Region: s.region})
	if err != nil {
		code := minio.ToErrorResponse(err).Code
		if code == "BucketAlreadyOwnedByYou" {
			return nil
		}
		return fmt.Errorf("create bucket %s: %w", s.bucket, s.translateError(err))
	}
	return nil
}

func (s *S3) object(key string) string { return s.prefix + key }

// uploadPartSize grows the part size for objects too large for maxParts parts of the
// configured size, rather than failing a backup of a huge table; memory grows with it, but
// only for such objects.
func (s *S3) uploadPartSize(size int64) int64 {
	ps := s.partSize
	if need := (size + maxParts - 1) / maxParts; need > ps {
		const mib = 1 << 20
		ps = (need + mib - 1) / mib * mib
	}
	return ps
}

// Put uploads with the size known up front, which makes minio-go either send one PUT
// (size <= part size) or a multipart upload, and memory stays at one part either way:
//
//   - An object that fits in one part is read into memory first. That costs no more than
//     a multipart part, checks the size before anything is sent, and gives minio-go a body
//     it can resend, so a transient failure of the request is retried even when the
//     source is a stream that the retry wrapper cannot rewind.
//   - A larger object streams through minio-go's sequential multipart path, one part
//     buffer at a time, each part retried on its own. The reader is wrapped so that
//     minio-go sees neither io.ReaderAt nor io.Seeker: with them it would read parts in
//     parallel at absolute offsets (ignoring where the reader stands) and hold several
//     parts at once.
//
// An object becomes visible only when the upload completes; a failed or cancelled
// multipart upload is aborted by minio-go (with a context of its own), so no parts are
// left behind.
func (s *S3) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if err := validateKey(key); err != nil {
		return err
	}
	if err := checkSize(size); err != nil {
		return err
	}
	partSize := s.uploadPartSize(size)
	src := newExactReader(r, size)
	var body io.Reader = newCtxReader(ctx, src)
	if size <= partSize {
		buf := make([]byte, size)
		if _, err := io.ReadFull(body, buf); err != nil {
			return err
		}
		if size == 0 {
			// ReadFull reads nothing into an empty buffer; r must be empty too.
			if err := src.checkEnd(); err != io.EOF {
				return err
			}
		}
		body = &memBody{cancelled: ctx.Err, r: bytes.NewReader(buf)}
	}
	info, err := s.client.PutObject(ctx, s.bucket, s.object(key), body, size,
		minio.PutObjectOptions{
			PartSize:    uint64(partSize),
			ContentType: "application/octet-stream",
			// Content-MD5 on the single PUT and on every part: the provider recomputes it
			// and refuses a body that changed on the way (BadDigest), and the header is
			// signed. It is the most portable checksum (AWS, MinIO, versitygw, R2, B2, ...);
			// x-amz-checksum-* needs trailing headers or a second pass over the body, and
			// over https minio-go otherwise sends the body unchecked (UNSIGNED-PAYLOAD).
			// It costs one MD5 pass over the part already in memory, no extra buffer.
			SendContentMd5:       true,
			DisableContentSha256: s.unsignedPayload,
		})
	if err != nil {
		if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
			return fmt.Errorf("%w: %v", cerr, err)
		}
		if rerr := src.Err(); rerr != nil && ctx.Err() == nil {
			return rerr // the source failed, not the server
		}
		return s.translateError(err)
	}
	return s.confirmPut(ctx, key, info.ETag, size)
}

// confirmPut asks the provider what it stored, one HEAD per object. minio-go's answer to
// the upload repeats our own byte count, so it can never disagree; the HEAD can, if the
// server or something in front of it stored another object than the one we sent. The ETag
// is not compared with the MD5: with SSE-KMS or SSE-C, and for every multipart object, it
// is not the MD5 of the body, and each request's body was already checked by Content-MD5.
// It tells our object from one that another writer put under the same key after us (last
// writer wins, which is not a fault): only an object with the ETag our upload got must
// have our size. One HEAD per object is cheap next to the object's PUTs and later GETs.
func (s *S3) confirmPut(ctx context.Context, key, etag string, size int64) error {
	oi, err := s.client.StatObject(ctx, s.bucket, s.object(key), minio.StatObjectOptions{})
	if err != nil {
		return fmt.Errorf("%s: uploaded %s but cannot confirm it: %w", s.endpoint, key, s.translateError(err))
	}
	if oi.Size != size && (etag == "" || oi.ETag == etag) {
		return fmt.Errorf("%s stored %s as %d bytes, want %d; the provider or a proxy in front of it changed the object",
			s.endpoint, key, oi.Size, size)
	}
	return nil
}

// memBody is a single-request upload body that minio-go can rewind (it needs io.Seeker
// and io.ReaderAt to resend) and that stops at cancellation like ctxReader: a server
// that received every byte commits the object, whatever the client decided meanwhile.
type memBody struct {
	cancelled func() error
	r         *bytes.Reader
}

func (m *memBody) Read(p []byte) (int, error) {
	if err := m.cancelled(); err != nil {
		return 0, err
	}
	return m.r.Read(p)
}

func (m *memBody) ReadAt(p []byte, off int64) (int, error) {
	if err := m.cancelled(); err != nil {
		return 0, err
	}
	return m.r.ReadAt(p, off)
}

func (m *memBody) Seek(offset int64, whence int) (int64, error) { return m.r.Seek(offset, whence) }

// Get returns an error wrapping ErrNotFound if the object does not exist. It uses the
// low-level GET so that errors surface here, not on the first Read.
func (s *S3) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := validateKey(key); err != nil {
		return nil, err
	}
	core := minio.Core{Client: s.client}
	rc, _, _, err := core.GetObject(ctx, s.bucket, s.object(key), minio.GetObjectOptions{})
	if err != nil {
		return nil, s.translateError(err)
	}
	return rc, nil
}

// Stat returns an error wrapping ErrNotFound if the object does not exist.
//
// A 404 to a HEAD request has no body, so it cannot tell a missing object from a missing
// bucket, and some servers (versitygw) answer an unknown access key with 404 too. Stat
// therefore confirms a 404 with a GET, whose error body names the real cause: one extra
// request, only when the object is missing, buys an error a person can act on.
func (s *S3) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	if err := validateKey(key); err != nil {
		return ObjectInfo{}, err
	}
	oi, err := s.client.StatObject(ctx, s.bucket, s.object(key), minio.StatObjectOptions{})
	if err != nil {
		if minio.ToErrorResponse(err).StatusCode != 404 {
			return ObjectInfo{}, s.translateError(err)
		}
		core := minio.Core{Client: s.client}
		rc, goi, _, gerr := core.GetObject(ctx, s.bucket, s.object(key), minio.GetObjectOptions{})
		if gerr != nil {
			return ObjectInfo{}, s.translateError(gerr)
		}
		rc.Close() // the object appeared meanwhile: its headers are the answer
		oi = goi
	}
	return ObjectInfo{Key: key, Size: oi.Size, ModTime: oi.LastModified}, nil
}

// List pages through ListObjectsV2 (1000 keys a page), so memory does not grow with the
// number of objects. S3 returns keys in UTF-8 byte order; List checks that, because the
// retry wrapper resumes listings by key and would skip objects on a server that does not.
// Keys that other tools wrote and that are not valid keys here ("a//b") are listed as they
// are, so that a caller can report them; Get and Stat refuse them with ErrInvalidKey.
func (s *S3) List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	if err := validatePrefix(prefix); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops minio-go's pager when fn ends the listing early
	var prev string
	for oi := range s.client.ListObjectsIter(ctx, s.bucket, minio.ListObjectsOptions{
		Prefix:    s.object(prefix),
		Recursive: true,
	}) {
		if oi.Err != nil {
			return s.translateError(oi.Err)
		}
		key, ok := strings.CutPrefix(oi.Key, s.prefix)
		if !ok || key == "" || strings.HasSuffix(key, "/") {
			continue // a "folder" marker some tools create; not an object
		}
		if prev != "" && key <= prev {
			return fmt.Errorf("%s listed %q after %q: the listing is not in lexical order, which this S3 implementation must provide",
				s.endpoint, key, prev)
		}
		prev = key
		if err := fn(ObjectInfo{Key: key, Size: oi.Size, ModTime: oi.LastModified}); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// Delete is idempotent: S3 reports success for a missing key, and NoSuchKey from servers
// that do not is mapped to success too.
func (s *S3) Delete(ctx context.Context, key string) error {
	if err := validateKey(key); err != nil {
		return err
	}
	err := s.client.RemoveObject(ctx, s.bucket, s.object(key), minio.RemoveObjectOptions{})
	if err != nil {
		err = s.translateError(err)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		return err
	}
	return nil
}

// translateError turns what minio-go and the network report into the package's sentinels,
// with a hint a person can act on, and marks transient failures for the retry wrapper.
// It never includes credentials: minio-go's errors carry the server's code and message,
// and URLs here have no user info.
func (s *S3) translateError(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrSizeMismatch) {
		return err
	}
	var resp minio.ErrorResponse
	if errors.As(err, &resp) {
		detail := resp.Code
		if resp.Message != "" {
			detail += ": " + resp.Message
		}
		switch resp.Code {
		case "NoSuchKey", "NotFound":
			return fmt.Errorf("%w (%s)", ErrNotFound, resp.Code)
		case "NoSuchBucket":
			return fmt.Errorf("%w: %s has no bucket %q; create it or fix bucket: in the config", ErrBucketNotFound, s.endpoint, s.bucket)
		case "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken", "InvalidSecurity",
			"XAdminUserNotFound": // versitygw's answer to an unknown access key
			return fmt.Errorf("%w: %s rejected the credentials (%s); check access_key and secret_key of this target",
				ErrAccessDenied, s.endpoint, detail)
		case "AccessDenied", "AllAccessDisabled":
			return fmt.Errorf("%w: %s refused the request (%s); check access_key and secret_key of this target and that they may use bucket %q",
				ErrAccessDenied, s.endpoint, detail, s.bucket)
		case "AuthorizationHeaderMalformed", "InvalidRegion", "IllegalLocationConstraintException":
			return fmt.Errorf("%s: %s; check region: of this target", s.endpoint, detail)
		case "BadDigest", "InvalidDigest", "XAmzContentChecksumMismatch", "XAmzContentSHA256Mismatch":
			// The body changed between us and the provider, which refused it; sending it
			// again may get through, so it is retried, and the message says what it was.
			return Transient(fmt.Errorf("%s refused the upload because the body it received does not match its checksum (%s): it was corrupted in transit; check proxies and the network between this host and the target",
				s.endpoint, detail))
		case "SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout", "RequestTimeTooSkewed",
			"Throttling", "ThrottlingException", "RequestLimitExceeded", "XMinioServerNotInitialized":
			return Transient(fmt.Errorf("%s: %s", s.endpoint, detail))
		}
		if resp.StatusCode >= 500 || resp.StatusCode == 429 || resp.StatusCode == 408 {
			return Transient(fmt.Errorf("%s: %s (HTTP %d)", s.endpoint, detail, resp.StatusCode))
		}
		if resp.StatusCode != 0 {
			return fmt.Errorf("%s: %s (HTTP %d)", s.endpoint, detail, resp.StatusCode)
		}
		return fmt.Errorf("%s: %s", s.endpoint, detail)
	}

	var certErr *tls.CertificateVerificationError
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	if errors.As(err, &certErr) || errors.As(err, &unknownCA) || errors.As(err, &hostErr) {
		return fmt.Errorf("%s: TLS certificate not accepted: %w; if the server uses a private CA, set ca_file: to its PEM bundle", s.endpoint, err)
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		if dnsErr.IsNotFound {
			return fmt.Errorf("%s: host not found: %w; check endpoint:", s.endpoint, err)
		}
		return Transient(err)
	}
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		return Transient(err)
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		return Transient(err) // refused, reset, unreachable: the server may be restarting
	}
	var urlErr *url.Error
	if errors.As(err, &urlErr) && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		// minio-go replaces any transport error mentioning EOF with this text.
		strings.Contains(urlErr.Err.Error(), "Connection closed by foreign host")) {
		return Transient(err) // the server closed the connection mid-request
	}
	return err
}
