package targets

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"time"
)

// RetryPolicy says how often and how patiently transient failures are retried.
type RetryPolicy struct {
	MaxAttempts    int           // attempts in all, including the first; 0 means 5, 1 disables retries
	InitialBackoff time.Duration // wait before the first retry, doubled each time; 0 means 500ms
	MaxBackoff     time.Duration // cap on one wait; 0 means 30s
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = 5
	}
	if p.InitialBackoff <= 0 {
		p.InitialBackoff = 500 * time.Millisecond
	}
	if p.MaxBackoff <= 0 {
		p.MaxBackoff = 30 * time.Second
	}
	return p
}

// backoff returns the wait after the given failed attempt (1-based): exponential, capped,
// with the upper half jittered so that many uploads failing together do not retry in step.
func (p RetryPolicy) backoff(attempt int) time.Duration {
	d := p.InitialBackoff
	for i := 1; i < attempt && d < p.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, p.MaxBackoff)
	half := d / 2
	return half + rand.N(d-half+1)
}

// Transient marks err as a failure that may succeed if the same operation is tried again
// (a 5xx, a timeout, a reset connection, throttling). Backends decide this at the edge,
// where they still know what the error was; the retry wrapper retries only marked errors.
func Transient(err error) error {
	if err == nil {
		return nil
	}
	return &transientError{err: err}
}

// IsTransient reports whether err was marked by Transient.
func IsTransient(err error) bool {
	var t *transientError
	return errors.As(err, &t)
}

type transientError struct{ err error }

func (e *transientError) Error() string { return e.err.Error() }
func (e *transientError) Unwrap() error { return e.err }

// permanent shields an error that must end the operation even if something inside it is
// marked transient, such as the error returned by a List callback.
type permanent struct{ err error }

func (e *permanent) Error() string { return e.err.Error() }
func (e *permanent) Unwrap() error { return e.err }

// retrying retries operations that failed transiently. It is the only place retries
// happen above the HTTP client, so backends stay simple and every target behaves alike.
type retrying struct {
	next    Target
	policy  RetryPolicy
	onRetry func(op, key string, attempt int, delay time.Duration, err error)
}

var _ Target = (*retrying)(nil)

func (r *retrying) do(ctx context.Context, op, key string, f func() error) error {
	for attempt := 1; ; attempt++ {
		err := f()
		if err == nil {
			return nil
		}
		var p *permanent
		if errors.As(err, &p) {
			return p.err
		}
		if !IsTransient(err) || ctx.Err() != nil {
			return err
		}
		if attempt >= r.policy.MaxAttempts {
			if attempt == 1 {
				return err
			}
			return fmt.Errorf("gave up after %d attempts: %w", attempt, err)
		}
		delay := r.policy.backoff(attempt)
		if r.onRetry != nil {
			r.onRetry(op, key, attempt, delay, err)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w while waiting to retry; last error: %w", ctx.Err(), err)
		case <-t.C:
		}
	}
}

// Put retries only when it can send the same bytes again: r must be an io.ReadSeeker that
// can seek back to where it was when Put was called. A stream (a dump pipe) cannot be
// replayed, so its failure is final and the caller decides what to do.
func (r *retrying) Put(ctx context.Context, key string, rd io.Reader, size int64) error {
	seeker, ok := rd.(io.ReadSeeker)
	if !ok {
		return r.next.Put(ctx, key, rd, size)
	}
	start, err := seeker.Seek(0, io.SeekCurrent)
	if err != nil {
		// An *os.File on a pipe claims to seek and cannot.
		return r.next.Put(ctx, key, rd, size)
	}
	first := true
	return r.do(ctx, "put", key, func() error {
		if !first {
			if _, err := seeker.Seek(start, io.SeekStart); err != nil {
				return &permanent{fmt.Errorf("rewind the reader to retry: %w", err)}
			}
		}
		first = false
		return r.next.Put(ctx, key, rd, size)
	})
}

// Get retries opening the object; a failure while the caller reads the body is the
// caller's to handle, since only it knows how much it has consumed.
func (r *retrying) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	var rc io.ReadCloser
	err := r.do(ctx, "get", key, func() error {
		var err error
		rc, err = r.next.Get(ctx, key)
		return err
	})
	return rc, err
}

func (r *retrying) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	var oi ObjectInfo
	err := r.do(ctx, "stat", key, func() error {
		var err error
		oi, err = r.next.Stat(ctx, key)
		return err
	})
	return oi, err
}

// List resumes after a transient failure instead of starting over: keys arrive in lexical
// order, so every key up to the last one delivered has been seen and is skipped, and fn is
// called once per object even when a long listing fails halfway.
func (r *retrying) List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	var (
		last      string
		delivered bool
	)
	return r.do(ctx, "list", prefix, func() error {
		return r.next.List(ctx, prefix, func(oi ObjectInfo) error {
			if delivered && oi.Key <= last {
				return nil
			}
			if err := fn(oi); err != nil {
				return &permanent{err}
			}
			last, delivered = oi.Key, true
			return nil
		})
	})
}

func (r *retrying) Delete(ctx context.Context, key string) error {
	return r.do(ctx, "delete", key, func() error { return r.next.Delete(ctx, key) })
}
