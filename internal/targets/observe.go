package targets

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/backupd/backupd/internal/countio"
)

// Metrics are the Prometheus series every target reports, labelled by target name and op
// (put, get, stat, list, delete).
type Metrics struct {
	ops      *prometheus.CounterVec
	duration *prometheus.HistogramVec
	bytes    *prometheus.CounterVec
	retries  *prometheus.CounterVec
}

// NewMetrics creates the backupd_target_* series and registers them with reg (unless reg
// is nil). Call it once per registry.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		ops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "backupd_target_operations_total",
			Help: "Target operations by outcome: ok, not_found or error.",
		}, []string{"target", "op", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "backupd_target_operation_duration_seconds",
			Help: "Time a target operation took, retries included. For get, the time to open the object.",
			// From a small stat on loopback to a multi-GiB upload.
			Buckets: prometheus.ExponentialBuckets(0.005, 4, 10),
		}, []string{"target", "op"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "backupd_target_bytes_total",
			Help: "Bytes stored by put and read through get.",
		}, []string{"target", "op"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "backupd_target_retries_total",
			Help: "Attempts repeated after a transient failure.",
		}, []string{"target", "op"}),
	}
	if reg != nil {
		reg.MustRegister(m.ops, m.duration, m.bytes, m.retries)
	}
	return m
}

// The methods accept a nil *Metrics so that callers never have to check.

func (m *Metrics) observe(target, op string, start time.Time, err error) {
	if m == nil {
		return
	}
	result := "ok"
	switch {
	case errors.Is(err, ErrNotFound):
		result = "not_found"
	case err != nil:
		result = "error"
	}
	m.ops.WithLabelValues(target, op, result).Inc()
	m.duration.WithLabelValues(target, op).Observe(time.Since(start).Seconds())
}

func (m *Metrics) addBytes(target, op string, n int64) {
	if m == nil || n == 0 {
		return
	}
	m.bytes.WithLabelValues(target, op).Add(float64(n))
}

func (m *Metrics) retried(target, op string) {
	if m == nil {
		return
	}
	m.retries.WithLabelValues(target, op).Inc()
}

// instrumented is the outermost wrapper: it names the target, op and key in every error,
// logs each operation at debug level and records metrics. Errors are not logged above
// debug here: the caller decides whether a failure matters (a missing manifest during a
// listing is normal) and reports it once, with its own context.
type instrumented struct {
	next    Target
	name    string
	logger  *slog.Logger
	metrics *Metrics
}

var _ Target = (*instrumented)(nil)

func (w *instrumented) done(ctx context.Context, op, key string, start time.Time, size int64, err error) error {
	w.metrics.observe(w.name, op, start, err)
	attrs := []slog.Attr{slog.String("op", op), slog.String("key", key),
		slog.Duration("duration", time.Since(start))}
	if size >= 0 {
		attrs = append(attrs, slog.Int64("bytes", size))
	}
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	w.logger.LogAttrs(ctx, slog.LevelDebug, "target operation", attrs...)
	if err == nil {
		return nil
	}
	return fmt.Errorf("target %s: %s %s: %w", w.name, op, key, err)
}

func (w *instrumented) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	start := time.Now()
	err := w.next.Put(ctx, key, r, size)
	if err == nil {
		w.metrics.addBytes(w.name, "put", size)
	}
	return w.done(ctx, "put", key, start, size, err)
}

func (w *instrumented) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	start := time.Now()
	rc, err := w.next.Get(ctx, key)
	if err != nil {
		return nil, w.done(ctx, "get", key, start, -1, err)
	}
	w.done(ctx, "get", key, start, -1, nil)
	// Count as the body is read, so a long download shows progress in the metrics instead
	// of one jump at the end.
	counted := &countio.Reader{R: rc, Add: func(n int64) { w.metrics.addBytes(w.name, "get", n) }}
	return struct {
		io.Reader
		io.Closer
	}{counted, rc}, nil
}

func (w *instrumented) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	start := time.Now()
	oi, err := w.next.Stat(ctx, key)
	return oi, w.done(ctx, "stat", key, start, -1, err)
}

func (w *instrumented) List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	start := time.Now()
	var fnErr error
	err := w.next.List(ctx, prefix, func(oi ObjectInfo) error {
		fnErr = fn(oi)
		return fnErr
	})
	if err != nil && fnErr != nil && errors.Is(err, fnErr) {
		// The callback's own error is the caller's business, not a target failure: return
		// it as it came and do not count it against the target.
		w.metrics.observe(w.name, "list", start, nil)
		return fnErr
	}
	return w.done(ctx, "list", prefix, start, -1, err)
}

func (w *instrumented) Delete(ctx context.Context, key string) error {
	start := time.Now()
	return w.done(ctx, "delete", key, start, -1, w.next.Delete(ctx, key))
}
