package targets

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// Sentinel errors of the optional operations below.
var (
	// ErrExists means PutIfAbsent found an object under the key already.
	ErrExists = errors.New("object already exists")
	// ErrUnsupported means the target cannot do what was asked, e.g. a conditional write.
	ErrUnsupported = errors.New("not supported by this target")
	// ErrLocked means the object is under object lock retention and cannot be deleted yet.
	ErrLocked = errors.New("object is under object lock retention")
)

// Coordinator is implemented by targets that can hold the small mutable objects hosts use to
// coordinate: leases and protection markers. Every backend implements it and every wrapper
// passes it on; callers reach it through the PutIfAbsent and PutMutable functions.
type Coordinator interface {
	// PutIfAbsent stores data under key only if no object has that key. Of several callers
	// racing for one key exactly one succeeds; the others get an error wrapping ErrExists.
	// (A server that silently ignores the condition would let them all succeed:
	// ProbeConditional finds out before anything relies on it.)
	PutIfAbsent(ctx context.Context, key string, data []byte) error
	// PutMutable stores data under key, replacing any object there. Unlike Put, it never
	// puts the object under object lock retention, so it can be rewritten and deleted.
	PutMutable(ctx context.Context, key string, data []byte) error
}

// Retainer is implemented by targets that write objects under object lock retention.
type Retainer interface {
	// RetainedUntil returns when the object's retention ends; zero when it has none. It
	// returns an error wrapping ErrNotFound when the object does not exist.
	RetainedUntil(ctx context.Context, key string) (time.Time, error)
}

// putter is the one method PutMutable needs of a target that is not a Coordinator.
type putter interface {
	Put(ctx context.Context, key string, r io.Reader, size int64) error
}

// PutIfAbsent stores data under key if no object has that key: see Coordinator. It returns
// an error wrapping ErrUnsupported when t cannot write conditionally.
func PutIfAbsent(ctx context.Context, t any, key string, data []byte) error {
	c, ok := t.(Coordinator)
	if !ok {
		return fmt.Errorf("put %s if absent: %w", key, ErrUnsupported)
	}
	return c.PutIfAbsent(ctx, key, data)
}

// PutMutable stores a small object that must stay rewritable and deletable (a lease, a
// marker): never under object lock retention. A target that is not a Coordinator has no
// object lock either, so its plain Put does.
func PutMutable(ctx context.Context, t putter, key string, data []byte) error {
	if c, ok := t.(Coordinator); ok {
		return c.PutMutable(ctx, key, data)
	}
	return t.Put(ctx, key, bytes.NewReader(data), int64(len(data)))
}

// RetainedUntil returns when the object's object lock retention ends: zero when it has none,
// including on every target that does not write under object lock.
func RetainedUntil(ctx context.Context, t any, key string) (time.Time, error) {
	r, ok := t.(Retainer)
	if !ok {
		return time.Time{}, nil
	}
	return r.RetainedUntil(ctx, key)
}

// ProbeConditional finds out whether t really refuses a second PutIfAbsent of one key, using
// key as a scratch object (deleted afterwards). An S3 implementation that does not know
// If-None-Match ignores the header and overwrites: relying on it would let two hosts hold one
// lease. It reports false with a nil error for such a target, and for one that is not a
// Coordinator; an error means the target could not be asked.
func ProbeConditional(ctx context.Context, t any, key string) (bool, error) {
	c, ok := t.(Coordinator)
	if !ok {
		return false, nil
	}
	del, _ := t.(interface {
		Delete(ctx context.Context, key string) error
	})
	if err := c.PutIfAbsent(ctx, key, []byte("probe 1\n")); err != nil {
		return false, err
	}
	err := c.PutIfAbsent(ctx, key, []byte("probe 2\n"))
	if del != nil {
		if derr := del.Delete(context.WithoutCancel(ctx), key); derr != nil && err != nil && !errors.Is(err, ErrExists) {
			return false, errors.Join(err, derr)
		}
	}
	switch {
	case errors.Is(err, ErrExists):
		return true, nil
	case err == nil:
		return false, nil
	default:
		return false, err
	}
}

// The wrappers pass the optional operations on, with the same logging, metrics and retries
// as the Target methods.

var (
	_ Coordinator = (*instrumented)(nil)
	_ Retainer    = (*instrumented)(nil)
	_ Coordinator = (*retrying)(nil)
	_ Retainer    = (*retrying)(nil)
)

func (w *instrumented) PutIfAbsent(ctx context.Context, key string, data []byte) error {
	start := time.Now()
	err := PutIfAbsent(ctx, w.next, key, data)
	if errors.Is(err, ErrExists) {
		// Losing a race is an answer, not a failure of the target.
		w.metrics.observe(w.name, "put_if_absent", start, nil)
		return fmt.Errorf("target %s: put %s if absent: %w", w.name, key, err)
	}
	if err == nil {
		w.metrics.addBytes(w.name, "put", int64(len(data)))
	}
	return w.done(ctx, "put_if_absent", key, start, int64(len(data)), err)
}

func (w *instrumented) PutMutable(ctx context.Context, key string, data []byte) error {
	start := time.Now()
	err := PutMutable(ctx, w.next, key, data)
	if err == nil {
		w.metrics.addBytes(w.name, "put", int64(len(data)))
	}
	return w.done(ctx, "put", key, start, int64(len(data)), err)
}

func (w *instrumented) RetainedUntil(ctx context.Context, key string) (time.Time, error) {
	start := time.Now()
	t, err := RetainedUntil(ctx, w.next, key)
	return t, w.done(ctx, "retention", key, start, -1, err)
}

// PutIfAbsent is retried on transient failures like any other write. A retry after a lost
// answer may find the caller's own object and fail with ErrExists; callers that must know
// (leases) put a token in data and read the object back.
func (r *retrying) PutIfAbsent(ctx context.Context, key string, data []byte) error {
	return r.do(ctx, "put_if_absent", key, func() error { return PutIfAbsent(ctx, r.next, key, data) })
}

func (r *retrying) PutMutable(ctx context.Context, key string, data []byte) error {
	return r.do(ctx, "put", key, func() error { return PutMutable(ctx, r.next, key, data) })
}

func (r *retrying) RetainedUntil(ctx context.Context, key string) (time.Time, error) {
	var t time.Time
	err := r.do(ctx, "retention", key, func() error {
		var err error
		t, err = RetainedUntil(ctx, r.next, key)
		return err
	})
	return t, err
}
