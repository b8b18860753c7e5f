package targets

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
)

// Object lock modes (Spec.ObjectLockMode).
const (
	// ObjectLockCompliance: nobody, not even the account's root user, can delete or shorten
	// the retention of an object before it ends. The default.
	ObjectLockCompliance = "compliance"
	// ObjectLockGovernance: users with s3:BypassGovernanceRetention can; backupd never does.
	ObjectLockGovernance = "governance"
)

// objectLock writes every object of a set under S3 Object Lock retention, so that someone
// holding the backup credentials (ransomware on the database host) cannot delete backups
// younger than the retention, and deletes every version of an object once its retention
// has ended.
//
// Retention is set with a PutObjectRetention right after the upload and before Put returns,
// so the manifest, written last, commits a set only once every object in it is retained; an
// object whose retention could not be set is deleted and the Put fails. Leases and markers go
// through PutMutable and PutIfAbsent, which are never retained: they must stay rewritable.
type objectLock struct {
	next *S3
	days int
	mode minio.RetentionMode
	now  func() time.Time

	mu      sync.Mutex
	checked bool // the bucket has object lock enabled
}

var (
	_ Target      = (*objectLock)(nil)
	_ Coordinator = (*objectLock)(nil)
	_ Retainer    = (*objectLock)(nil)
)

// withObjectLock wraps backend so that objects are written under retention for days days.
func withObjectLock(backend Target, spec Spec) (Target, error) {
	s3, ok := backend.(*S3)
	if !ok {
		return nil, fmt.Errorf("object_lock_days is set on a %s target; object lock exists only on s3 targets", spec.Type)
	}
	var mode minio.RetentionMode
	switch strings.ToLower(spec.ObjectLockMode) {
	case "", ObjectLockCompliance:
		mode = minio.Compliance
	case ObjectLockGovernance:
		mode = minio.Governance
	default:
		return nil, fmt.Errorf("object_lock_mode %q: use %s or %s", spec.ObjectLockMode, ObjectLockCompliance, ObjectLockGovernance)
	}
	return &objectLock{next: s3, days: spec.ObjectLockDays, mode: mode, now: time.Now}, nil
}

func (o *objectLock) String() string { return o.next.String() }

// check asks the bucket once whether it can retain objects at all, so that a bucket created
// without object lock fails the first backup with an error that says what to do, rather
// than with the server's terse answer to PutObjectRetention. A failed check is asked again
// next time: the bucket may be fixed while the daemon runs.
func (o *objectLock) check(ctx context.Context) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.checked {
		return nil
	}
	if err := o.next.checkObjectLock(ctx); err != nil {
		return err
	}
	o.checked = true
	return nil
}

func (o *objectLock) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if err := o.check(ctx); err != nil {
		return err
	}
	if err := o.next.Put(ctx, key, r, size); err != nil {
		return err
	}
	until := o.now().Add(time.Duration(o.days) * 24 * time.Hour)
	if err := o.next.setRetention(ctx, key, o.mode, until); err != nil {
		cleanup, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if derr := o.next.deleteVersions(cleanup, key); derr != nil {
			err = errors.Join(err, fmt.Errorf("and could not delete the unretained object: %w", derr))
		}
		return fmt.Errorf("set object lock retention until %s: %w", until.UTC().Format(time.RFC3339), err)
	}
	return nil
}

func (o *objectLock) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	return o.next.Get(ctx, key)
}

func (o *objectLock) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	return o.next.Stat(ctx, key)
}

func (o *objectLock) List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	return o.next.List(ctx, prefix, fn)
}

// Delete removes every version of the object; it fails with ErrLocked while the object is
// retained. Deleting a missing object is not an error.
func (o *objectLock) Delete(ctx context.Context, key string) error {
	return o.next.deleteVersions(ctx, key)
}

func (o *objectLock) PutIfAbsent(ctx context.Context, key string, data []byte) error {
	return o.next.PutIfAbsent(ctx, key, data)
}

func (o *objectLock) PutMutable(ctx context.Context, key string, data []byte) error {
	return o.next.PutMutable(ctx, key, data)
}

func (o *objectLock) RetainedUntil(ctx context.Context, key string) (time.Time, error) {
	return o.next.RetainedUntil(ctx, key)
}
