// Package targets stores backup objects on the places backups go: a local directory or an
// S3-compatible bucket. Everything above this package sees one small Target interface; the
// backends translate their own failures into the sentinel errors below at the edge, and the
// cross-cutting behaviour (retries, logging, metrics, error context) is added once, by Open,
// as wrappers around whichever backend the config names.
//
// Keys are '/'-separated relative names such as
// "nightly/20261127T030000Z-3f9a/shop/orders.00001.sql.zst.age". They may contain spaces and
// any unicode; they may not be absolute, contain empty, "." or ".." segments, or contain NUL,
// so that a key means the same object on every backend and can never escape a directory root.
package targets

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"time"
)

// Sentinel errors. Backends wrap them with context; callers test with errors.Is.
var (
	// ErrNotFound means the object does not exist.
	ErrNotFound = errors.New("object not found")
	// ErrAccessDenied means the target refused the credentials or the operation.
	ErrAccessDenied = errors.New("access denied")
	// ErrBucketNotFound means the S3 bucket named in the config does not exist.
	ErrBucketNotFound = errors.New("bucket does not exist")
)

// ObjectInfo describes one stored object.
type ObjectInfo struct {
	Key     string // relative to the target (and to its prefix, for s3)
	Size    int64
	ModTime time.Time
}

// Target is a flat key/value store of immutable-by-convention objects.
type Target interface {
	// Put stores exactly size bytes from r under key, atomically: a reader sees the whole
	// object or nothing. A reader that ends early or has more than size bytes is an error
	// and leaves nothing behind. If r is an io.ReadSeeker the retry wrapper may seek it back
	// to where it was when Put was called and retry; otherwise a failed Put is not retried.
	Put(ctx context.Context, key string, r io.Reader, size int64) error
	// Get opens the object for reading. It returns an error wrapping ErrNotFound when the
	// object does not exist. The caller closes the reader.
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// Stat describes the object, or returns an error wrapping ErrNotFound.
	Stat(ctx context.Context, key string) (ObjectInfo, error)
	// List calls fn for every object whose key starts with prefix (a plain string prefix,
	// not only a directory), in lexical byte order of the keys. Memory stays bounded
	// whatever the number of objects. An error from fn stops the listing and is returned.
	List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error
	// Delete removes the object. Deleting a missing object is not an error.
	Delete(ctx context.Context, key string) error
}

// Spec is what the config file says about one target.
type Spec struct {
	Type string // "dir" or "s3"

	// dir
	Path string // absolute; the config package resolves relative paths

	// s3
	Endpoint     string // http://host:port or https://host; the scheme decides TLS
	Region       string
	Bucket       string
	Prefix       string // prepended to every key; a missing trailing "/" is added
	AccessKey    string
	SecretKey    string
	BucketLookup string // "auto" (default), "path" or "dns" (virtual-host style)
	CAFile       string // optional PEM bundle trusted in addition to the system roots
	PartSize     int64  // multipart part size; 0 means DefaultPartSize

	// ObjectLockDays > 0 (s3 only) writes every object under S3 Object Lock retention for
	// that many days; the bucket must have been created with object lock enabled.
	ObjectLockDays int
	ObjectLockMode string // ObjectLockCompliance (default) or ObjectLockGovernance
}

// Options are the process-wide parts Open wires around every backend.
type Options struct {
	Logger  *slog.Logger // nil: slog.Default()
	Metrics *Metrics     // nil: no metrics
	Retry   RetryPolicy  // zero: sensible defaults
}

// Open builds the backend that spec describes and wraps it with retries, logging, metrics
// and error context. This is the one place where those wrappers are assembled, so that no
// backend carries its own copy of them. name is the target's name in the config; it labels
// logs, metrics and errors.
func Open(name string, spec Spec, opts Options) (Target, error) {
	var (
		backend Target
		err     error
	)
	switch spec.Type {
	case "dir":
		backend, err = NewDir(spec.Path)
	case "s3":
		backend, err = NewS3(spec)
	case "":
		err = errors.New(`type is empty; set type: dir or type: s3`)
	default:
		err = fmt.Errorf("unknown type %q; use dir or s3", spec.Type)
	}
	if err == nil && spec.ObjectLockDays > 0 {
		backend, err = withObjectLock(backend, spec)
	}
	if err != nil {
		return nil, fmt.Errorf("open target %s: %w", name, err)
	}
	return wrap(name, backend, opts), nil
}

// wrap assembles the wrappers. Retries sit innermost so that logs and metrics describe the
// operation the caller asked for, while each retry is reported through the hook.
func wrap(name string, backend Target, opts Options) Target {
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	logger = logger.With("target", name)
	onRetry := func(op, key string, attempt int, delay time.Duration, err error) {
		logger.Warn("target operation failed, retrying", "op", op, "key", key,
			"attempt", attempt, "delay", delay, "error", err)
		opts.Metrics.retried(name, op)
	}
	retrying := &retrying{next: backend, policy: opts.Retry.withDefaults(), onRetry: onRetry}
	return &instrumented{next: retrying, name: name, logger: logger, metrics: opts.Metrics}
}

// checkAbs rejects relative directory paths: resolving them is the config's job, and a path
// resolved against whatever the daemon's cwd happens to be would put backups somewhere
// nobody looks.
func checkAbs(path string) error {
	if path == "" {
		return errors.New("dir target has no path; set path: to an absolute directory")
	}
	if !filepath.IsAbs(path) {
		return fmt.Errorf("dir target path %q is not absolute", path)
	}
	return nil
}
