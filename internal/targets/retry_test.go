package targets

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// fake is a backend that fails its first `failures` calls with err, then behaves.
type fake struct {
	mu       sync.Mutex
	failures int
	err      error
	calls    int
	stored   []byte   // what the last successful Put read
	keys     []string // what List returns
	listFail int      // on a failing List call, fail after this many keys
}

func (f *fake) fail() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.calls <= f.failures {
		return f.err
	}
	return nil
}

func (f *fake) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	b, err := io.ReadAll(r) // consume like a real upload before failing
	if err != nil {
		return err
	}
	if err := f.fail(); err != nil {
		return err
	}
	f.stored = b
	return nil
}

func (f *fake) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := f.fail(); err != nil {
		return nil, err
	}
	return io.NopCloser(strings.NewReader("data")), nil
}

func (f *fake) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	if err := f.fail(); err != nil {
		return ObjectInfo{}, err
	}
	return ObjectInfo{Key: key, Size: 4}, nil
}

func (f *fake) List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	err := f.fail()
	for i, k := range f.keys {
		if err != nil && i == f.listFail {
			return err
		}
		if ferr := fn(ObjectInfo{Key: k}); ferr != nil {
			return ferr
		}
	}
	return err
}

func (f *fake) Delete(ctx context.Context, key string) error { return f.fail() }

var (
	errFlaky = Transient(errors.New("503 SlowDown"))
	errPerm  = errors.New("403 forbidden")
)

func fastPolicy() RetryPolicy {
	return RetryPolicy{MaxAttempts: 4, InitialBackoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond}
}

func newRetrying(f *fake, retries *int) *retrying {
	return &retrying{next: f, policy: fastPolicy(), onRetry: func(string, string, int, time.Duration, error) { *retries++ }}
}

func TestRetryPut(t *testing.T) {
	data := []byte("0123456789abcdef")
	seekable := func() io.Reader {
		r := bytes.NewReader(data)
		r.Seek(3, io.SeekStart) // the caller's position, not 0, is where a retry starts
		return r
	}
	stream := func() io.Reader { return io.LimitReader(bytes.NewReader(data[3:]), 13) }
	for _, tc := range []struct {
		name      string
		failures  int
		err       error
		reader    func() io.Reader
		wantCalls int
		wantErr   error
	}{
		{"transient then success", 2, errFlaky, seekable, 3, nil},
		{"transient until attempts run out", 10, errFlaky, seekable, 4, errFlaky},
		{"permanent not retried", 10, errPerm, seekable, 1, errPerm},
		{"stream not retried", 10, errFlaky, stream, 1, errFlaky},
		{"stream succeeds", 0, errFlaky, stream, 1, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fake{failures: tc.failures, err: tc.err}
			retries := 0
			err := newRetrying(f, &retries).Put(context.Background(), "k", tc.reader(), 13)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Errorf("put: got %v, want %v", err, tc.wantErr)
			}
			if f.calls != tc.wantCalls {
				t.Errorf("backend calls: got %d, want %d", f.calls, tc.wantCalls)
			}
			if retries != tc.wantCalls-1 {
				t.Errorf("retry hook calls: got %d, want %d", retries, tc.wantCalls-1)
			}
			if tc.wantErr == nil && !bytes.Equal(f.stored, data[3:]) {
				t.Errorf("stored %q, want %q", f.stored, data[3:])
			}
			if tc.wantCalls == 4 && (err == nil || !strings.Contains(err.Error(), "gave up after 4 attempts")) {
				t.Errorf("error after the last attempt should say so: %v", err)
			}
		})
	}
}

func TestRetryOtherOps(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		op string
		do func(Target) error
	}{
		{"get", func(tg Target) error {
			rc, err := tg.Get(ctx, "k")
			if err == nil {
				rc.Close()
			}
			return err
		}},
		{"stat", func(tg Target) error { _, err := tg.Stat(ctx, "k"); return err }},
		{"delete", func(tg Target) error { return tg.Delete(ctx, "k") }},
		{"list", func(tg Target) error { return tg.List(ctx, "", func(ObjectInfo) error { return nil }) }},
	} {
		t.Run(tc.op, func(t *testing.T) {
			f := &fake{failures: 2, err: errFlaky}
			retries := 0
			if err := tc.do(newRetrying(f, &retries)); err != nil || f.calls != 3 {
				t.Errorf("after 2 transient failures: got %v after %d calls, want success after 3", err, f.calls)
			}
			f = &fake{failures: 2, err: errPerm}
			if err := tc.do(newRetrying(f, &retries)); !errors.Is(err, errPerm) || f.calls != 1 {
				t.Errorf("permanent failure: got %v after %d calls, want %v after 1", err, f.calls, errPerm)
			}
		})
	}
}

func TestRetryListResumes(t *testing.T) {
	f := &fake{failures: 1, err: errFlaky, keys: []string{"a", "b", "c", "d", "e"}, listFail: 3}
	retries := 0
	var got []string
	err := newRetrying(f, &retries).List(context.Background(), "", func(oi ObjectInfo) error {
		got = append(got, oi.Key)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := f.keys; !slices.Equal(got, want) {
		t.Errorf("keys seen across a retried listing: got %q, want each once: %q", got, want)
	}
}

func TestRetryListCallbackErrorIsFinal(t *testing.T) {
	f := &fake{keys: []string{"a", "b"}}
	retries := 0
	// Even an error that looks transient (from another target, say) ends the listing.
	cbErr := Transient(errors.New("other target down"))
	err := newRetrying(f, &retries).List(context.Background(), "", func(ObjectInfo) error { return cbErr })
	if !errors.Is(err, cbErr) || f.calls != 1 || retries != 0 {
		t.Errorf("got %v after %d calls and %d retries, want the callback's error after 1 call", err, f.calls, retries)
	}
}

func TestRetryStopsOnCancel(t *testing.T) {
	f := &fake{failures: 100, err: errFlaky}
	ctx, cancel := context.WithCancel(context.Background())
	r := &retrying{next: f, policy: RetryPolicy{MaxAttempts: 100, InitialBackoff: time.Hour, MaxBackoff: time.Hour},
		onRetry: func(string, string, int, time.Duration, error) { cancel() }}
	start := time.Now()
	_, err := r.Stat(ctx, "k")
	if !errors.Is(err, context.Canceled) || !errors.Is(err, errFlaky) {
		t.Errorf("got %v, want an error wrapping context.Canceled and the last failure", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("cancel during a backoff took %v to return", d)
	}
}

func TestBackoff(t *testing.T) {
	p := RetryPolicy{InitialBackoff: 100 * time.Millisecond, MaxBackoff: time.Second}.withDefaults()
	for _, tc := range []struct {
		attempt  int
		min, max time.Duration
	}{
		{1, 50 * time.Millisecond, 100 * time.Millisecond},
		{2, 100 * time.Millisecond, 200 * time.Millisecond},
		{4, 400 * time.Millisecond, 800 * time.Millisecond},
		{5, 500 * time.Millisecond, time.Second}, // capped
		{30, 500 * time.Millisecond, time.Second},
	} {
		for range 50 {
			if d := p.backoff(tc.attempt); d < tc.min || d > tc.max {
				t.Errorf("backoff(%d) = %v, want within [%v, %v]", tc.attempt, d, tc.min, tc.max)
				break
			}
		}
	}
	if d := (RetryPolicy{}).withDefaults(); d.MaxAttempts != 5 || d.InitialBackoff != 500*time.Millisecond || d.MaxBackoff != 30*time.Second {
		t.Errorf("defaults: got %+v", d)
	}
}

// TestWrapped checks the assembled stack: errors name target, op and key and keep their
// sentinel; retries and outcomes reach the metrics.
func TestWrapped(t *testing.T) {
	reg := prometheus.NewRegistry()
	f := &fake{failures: 2, err: errFlaky}
	tgt := wrap("offsite", f, Options{
		Logger:  slog.New(slog.DiscardHandler),
		Metrics: NewMetrics(reg),
		Retry:   fastPolicy(),
	})
	ctx := context.Background()
	if _, err := tgt.Stat(ctx, "nightly/x"); err != nil {
		t.Fatalf("stat after 2 transient failures: %v", err)
	}

	f2 := &fake{failures: 1, err: ErrNotFound}
	tgt2 := wrap("offsite", f2, Options{Logger: slog.New(slog.DiscardHandler), Metrics: nil})
	_, err := tgt2.Stat(ctx, "nightly/y")
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("got %v, want ErrNotFound through the wrappers", err)
	}
	if want := "target offsite: stat nightly/y: "; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error %q should start with %q", err, want)
	}

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			for _, l := range m.GetLabel() {
				name += "," + l.GetName() + "=" + l.GetValue()
			}
			got[name] = m.GetCounter().GetValue()
		}
	}
	for name, want := range map[string]float64{
		"backupd_target_retries_total,op=stat,target=offsite":              2,
		"backupd_target_operations_total,op=stat,result=ok,target=offsite": 1,
	} {
		if got[name] != want {
			t.Errorf("%s: got %v, want %v", name, got[name], want)
		}
	}
}
