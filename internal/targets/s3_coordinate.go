package targets

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
)

var _ Coordinator = (*S3)(nil)

// PutIfAbsent sends If-None-Match: * (S3's conditional write, honoured by AWS since 2024, by
// MinIO and by versitygw): the server creates the object only if the key is free and answers
// 412 Precondition Failed otherwise, which becomes ErrExists. Data is small (a lease), so it
// goes in one request.
func (s *S3) PutIfAbsent(ctx context.Context, key string, data []byte) error {
	if err := validateKey(key); err != nil {
		return err
	}
	opts := minio.PutObjectOptions{ContentType: "application/json", DisableMultipart: true}
	opts.SetMatchETagExcept("*")
	_, err := s.client.PutObject(ctx, s.bucket, s.object(key), bytes.NewReader(data), int64(len(data)), opts)
	if err == nil {
		return nil
	}
	resp := minio.ToErrorResponse(err)
	switch {
	case resp.Code == "PreconditionFailed" || resp.StatusCode == 412:
		return fmt.Errorf("%w (%s)", ErrExists, s.object(key))
	case resp.Code == "ConditionalRequestConflict" || resp.StatusCode == 409:
		// AWS: another conditional write to the key was in flight; asking again gets the
		// definite answer.
		return Transient(fmt.Errorf("%s: %s", s.endpoint, resp.Code))
	}
	return s.translateError(err)
}

// PutMutable is a plain Put: an S3 target writes under object lock only through the
// objectLock wrapper, which does not wrap this method.
func (s *S3) PutMutable(ctx context.Context, key string, data []byte) error {
	return s.Put(ctx, key, bytes.NewReader(data), int64(len(data)))
}

// checkObjectLock returns nil when the bucket has object lock enabled, and otherwise an error
// saying how to fix it: retention can only be set on objects of such a bucket.
func (s *S3) checkObjectLock(ctx context.Context) error {
	enabled, _, _, _, err := s.client.GetObjectLockConfig(ctx, s.bucket)
	if err != nil {
		if minio.ToErrorResponse(err).Code == "ObjectLockConfigurationNotFoundError" {
			enabled = ""
		} else {
			return fmt.Errorf("read the object lock configuration of bucket %s: %w", s.bucket, s.translateError(err))
		}
	}
	if enabled != "Enabled" {
		return fmt.Errorf("%w: object_lock_days is set, but bucket %s on %s does not have object lock enabled; "+
			"object lock can only be enabled when a bucket is created (mc mb --with-lock, or "+
			"aws s3api create-bucket --object-lock-enabled-for-bucket): create a new bucket that way, or remove object_lock_days",
			ErrUnsupported, s.bucket, s.endpoint)
	}
	return nil
}

// setRetention puts an existing object under retention until the given time.
func (s *S3) setRetention(ctx context.Context, key string, mode minio.RetentionMode, until time.Time) error {
	until = until.UTC()
	err := s.client.PutObjectRetention(ctx, s.bucket, s.object(key), minio.PutObjectRetentionOptions{
		Mode:            &mode,
		RetainUntilDate: &until,
	})
	if err != nil {
		return s.translateError(err)
	}
	return nil
}

// RetainedUntil reads the retention from the object's headers (HEAD), which every server
// tested returns; GetObjectRetention's XML differs between implementations.
func (s *S3) RetainedUntil(ctx context.Context, key string) (time.Time, error) {
	if err := validateKey(key); err != nil {
		return time.Time{}, err
	}
	oi, err := s.client.StatObject(ctx, s.bucket, s.object(key), minio.StatObjectOptions{})
	if err != nil {
		return time.Time{}, s.translateError(err)
	}
	v := oi.Metadata.Get("X-Amz-Object-Lock-Retain-Until-Date")
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s: retention date %q of %s does not parse: %w", s.endpoint, v, key, err)
	}
	return t, nil
}

// deleteVersions removes every version of key, delete markers included. In a bucket with
// object lock (always versioned on AWS and MinIO) a plain DELETE only adds a delete marker:
// the data would stay, and be paid for, forever. A version still under retention is refused
// by the server, which becomes ErrLocked.
func (s *S3) deleteVersions(ctx context.Context, key string) error {
	if err := validateKey(key); err != nil {
		return err
	}
	obj := s.object(key)
	var versions []string
	for oi := range s.client.ListObjectsIter(ctx, s.bucket, minio.ListObjectsOptions{Prefix: obj, WithVersions: true}) {
		if oi.Err != nil {
			return s.translateError(oi.Err)
		}
		if oi.Key == obj {
			versions = append(versions, oi.VersionID)
		}
	}
	if len(versions) == 0 {
		return nil
	}
	for _, v := range versions {
		if v == "null" {
			v = "" // an unversioned bucket (versitygw posix) names its one version "null"
		}
		err := s.client.RemoveObject(ctx, s.bucket, obj, minio.RemoveObjectOptions{VersionID: v})
		if err == nil {
			continue
		}
		if isLockRefusal(err) {
			return fmt.Errorf("%w: %s refused to delete %s: %s", ErrLocked, s.endpoint, key, minio.ToErrorResponse(err).Message)
		}
		err = s.translateError(err)
		if !errors.Is(err, ErrNotFound) {
			return err
		}
	}
	return nil
}

// isLockRefusal recognises the answers servers give to deleting a retained object: MinIO
// says "Object is WORM protected" (InvalidRequest), versitygw "protected by object lock"
// (AccessDenied), AWS AccessDenied with an object lock message.
func isLockRefusal(err error) bool {
	msg := strings.ToLower(minio.ToErrorResponse(err).Message)
	return strings.Contains(msg, "worm") || strings.Contains(msg, "object lock") || strings.Contains(msg, "retention")
}
