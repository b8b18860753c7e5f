package storage

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"github.com/restic/chunker"

	"github.com/backupd/backupd/internal/targets"
)

// Small objects are fetched ahead, bucketPrefetch at a time, in batches of at most
// bucketBatchBytes, because a bucket source is latency-bound: one GET after another would
// take hours for a million uploads. They are stored in listing order all the same.
const (
	bucketPrefetch   = 8
	bucketBatchLen   = 64
	bucketBatchBytes = 16 << 20
)

type prefetched struct {
	done bool
	data []byte
	err  error
}

func (sn *snapshotter) walkBucket(ctx context.Context) error {
	s3 := sn.spec.S3
	src, err := targets.Open("storage "+sn.spec.Name, targets.Spec{
		Type: "s3", Endpoint: s3.Endpoint, Region: s3.Region, Bucket: s3.Bucket, Prefix: s3.Prefix,
		AccessKey: s3.AccessKey, SecretKey: s3.SecretKey, BucketLookup: s3.BucketLookup, CAFile: s3.CAFile,
	}, sn.opts.SourceTargetOptions)
	if err != nil {
		return fmt.Errorf("storage source %s: %w", sn.spec.Name, err)
	}
	var (
		batch      []targets.ObjectInfo
		batchBytes int64
	)
	flush := func() error {
		pre := make([]prefetched, len(batch))
		parallel(ctx, bucketPrefetch, len(batch), func(i int) {
			if oi := batch[i]; oi.Size < chunker.MinSize {
				pre[i].data, pre[i].err = readSmall(ctx, src, oi)
				pre[i].done = true
			}
		})
		for i, oi := range batch {
			if err := sn.object(ctx, src, oi, pre[i]); err != nil {
				return err
			}
			pre[i].data = nil
		}
		batch, batchBytes = batch[:0], 0
		return ctx.Err()
	}
	err = src.List(ctx, "", func(oi targets.ObjectInfo) error {
		if err := checkRelPath(oi.Key); err != nil {
			sn.warn(fmt.Sprintf("skipped object %q: the key cannot be a path (%v)", oi.Key, err))
			return nil
		}
		if sn.match.excluded(oi.Key, false) {
			return nil
		}
		batch = append(batch, oi)
		if oi.Size < chunker.MinSize {
			batchBytes += oi.Size
		}
		if len(batch) >= bucketBatchLen || batchBytes >= bucketBatchBytes {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil && ctx.Err() == nil && sn.st.failed() == nil {
		return fmt.Errorf("storage source %s (bucket %s): %w", sn.spec.Name, s3.Bucket, err)
	}
	return err
}

// readSmall reads a small object whole; one byte more than listed shows it was replaced.
func readSmall(ctx context.Context, src targets.Target, oi targets.ObjectInfo) ([]byte, error) {
	rc, err := src.Get(ctx, oi.Key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(io.LimitReader(rc, oi.Size+1))
}

func (sn *snapshotter) object(ctx context.Context, src targets.Target, oi targets.ObjectInfo, pre prefetched) error {
	var reason string
	for attempt := 1; attempt <= changeAttempts; attempt++ {
		var (
			r   io.Reader
			rc  io.ReadCloser
			err error
		)
		if attempt == 1 && pre.done {
			r, err = bytes.NewReader(pre.data), pre.err
		} else {
			rc, err = src.Get(ctx, oi.Key)
			r = rc
		}
		if errors.Is(err, targets.ErrNotFound) {
			sn.warn(fmt.Sprintf("%s %v", oi.Key, errVanished))
			return nil
		}
		if err != nil {
			return fmt.Errorf("read object %s of storage source %s: %w", oi.Key, sn.spec.Name, err)
		}
		chunks, sum, n, err := sn.storeStream(ctx, r, oi.Size)
		if rc != nil {
			rc.Close()
		}
		if err != nil {
			return fmt.Errorf("read object %s of storage source %s: %w", oi.Key, sn.spec.Name, err)
		}
		if n == oi.Size {
			return sn.emit(ctx, &Entry{
				Path: oi.Key, Type: TypeFile, Mode: 0o644, MTime: oi.ModTime.UnixNano(), UID: -1, GID: -1,
				Size: n, SHA256: hex.EncodeToString(sum[:]), Chunks: chunks,
			})
		}
		// Replaced between the listing and the read: describe the object as it is now.
		reason = fmt.Sprintf("listed with %d bytes, read %d", oi.Size, n)
		info, err := src.Stat(ctx, oi.Key)
		if errors.Is(err, targets.ErrNotFound) {
			sn.warn(fmt.Sprintf("%s %v", oi.Key, errVanished))
			return nil
		}
		if err != nil {
			return fmt.Errorf("stat object %s of storage source %s: %w", oi.Key, sn.spec.Name, err)
		}
		oi = info
	}
	return sn.skip(ctx, oi.Key, "changed while being read: "+reason)
}
