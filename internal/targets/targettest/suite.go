// Package targettest is the conformance suite that every targets.Target implementation
// must pass. One suite for all backends is what lets the rest of backupd treat a local
// directory, MinIO and any other S3 implementation as the same thing.
package targettest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/targets"
)

const mib = 1 << 20

// Run runs every case against targets made by newTarget. newTarget is called once per case
// and must return an empty target that nothing else uses (a fresh directory, or a fresh
// prefix in a bucket), so that cases can list everything they see.
func Run(t *testing.T, newTarget func(t *testing.T) targets.Target) {
	t.Run("objects", func(t *testing.T) { testObjects(t, newTarget(t)) })
	t.Run("seekable reader not at start", func(t *testing.T) { testSeekable(t, newTarget(t)) })
	t.Run("size mismatch", func(t *testing.T) { testSizeMismatch(t, newTarget(t)) })
	t.Run("reader error", func(t *testing.T) { testReaderError(t, newTarget(t)) })
	t.Run("overwrite", func(t *testing.T) { testOverwrite(t, newTarget(t)) })
	t.Run("list", func(t *testing.T) { testList(t, newTarget(t)) })
	t.Run("list over 1000 keys", func(t *testing.T) { testListMany(t, newTarget(t)) })
	t.Run("not found", func(t *testing.T) { testNotFound(t, newTarget(t)) })
	t.Run("delete", func(t *testing.T) { testDelete(t, newTarget(t)) })
	t.Run("keys with spaces and unicode", func(t *testing.T) { testKeys(t, newTarget(t)) })
	t.Run("invalid keys", func(t *testing.T) { testInvalidKeys(t, newTarget(t)) })
	t.Run("concurrent puts", func(t *testing.T) { testConcurrent(t, newTarget(t)) })
	t.Run("cancelled put", func(t *testing.T) { testCancelled(t, newTarget(t)) })
}

// Data is a deterministic pseudo-random stream: the same seed always gives the same bytes,
// so a test can check an object without keeping a copy of it.
func Data(seed uint64, size int64) io.Reader {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	return io.LimitReader(rand.NewChaCha8(s), size)
}

// streamOnly hides every method but Read, so a target sees a reader it cannot seek or
// read at offsets, like the pipe from a dump.
type streamOnly struct{ r io.Reader }

func (s streamOnly) Read(p []byte) (int, error) { return s.r.Read(p) }

// PutStream stores size bytes of Data(seed) as a non-seekable stream and returns their
// SHA-256.
func PutStream(t testing.TB, ctx context.Context, tgt targets.Target, key string, seed uint64, size int64) [32]byte {
	t.Helper()
	sum, err := putStream(ctx, tgt, key, seed, size)
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

// putStream is PutStream for goroutines, which must not call t.Fatal.
func putStream(ctx context.Context, tgt targets.Target, key string, seed uint64, size int64) ([32]byte, error) {
	h := sha256.New()
	if err := tgt.Put(ctx, key, streamOnly{io.TeeReader(Data(seed, size), h)}, size); err != nil {
		return [32]byte{}, fmt.Errorf("put %q (%d bytes): %w", key, size, err)
	}
	return [32]byte(h.Sum(nil)), nil
}

// GetSum reads the object and returns its SHA-256 and length.
func GetSum(t testing.TB, ctx context.Context, tgt targets.Target, key string) ([32]byte, int64) {
	t.Helper()
	rc, err := tgt.Get(ctx, key)
	if err != nil {
		t.Fatalf("get %q: %v", key, err)
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, rc)
	if err != nil {
		t.Fatalf("read %q: %v", key, err)
	}
	return [32]byte(h.Sum(nil)), n
}

func put(t *testing.T, tgt targets.Target, key string, data []byte) {
	t.Helper()
	if err := tgt.Put(context.Background(), key, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("put %q: %v", key, err)
	}
}

func getBytes(t *testing.T, tgt targets.Target, key string) []byte {
	t.Helper()
	rc, err := tgt.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("get %q: %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %q: %v", key, err)
	}
	return b
}

func listKeys(t *testing.T, tgt targets.Target, prefix string) []targets.ObjectInfo {
	t.Helper()
	var got []targets.ObjectInfo
	if err := tgt.List(context.Background(), prefix, func(oi targets.ObjectInfo) error {
		got = append(got, oi)
		return nil
	}); err != nil {
		t.Fatalf("list %q: %v", prefix, err)
	}
	return got
}

func keysOf(ois []targets.ObjectInfo) []string {
	keys := make([]string, len(ois))
	for i, oi := range ois {
		keys[i] = oi.Key
	}
	return keys
}

func requireNotFound(t *testing.T, tgt targets.Target, key string) {
	t.Helper()
	ctx := context.Background()
	if oi, err := tgt.Stat(ctx, key); !errors.Is(err, targets.ErrNotFound) {
		t.Errorf("stat %q: got (%+v, %v), want an error wrapping ErrNotFound", key, oi, err)
	}
	rc, err := tgt.Get(ctx, key)
	if err == nil {
		rc.Close()
	}
	if !errors.Is(err, targets.ErrNotFound) {
		t.Errorf("get %q: got %v, want an error wrapping ErrNotFound", key, err)
	}
}

func testObjects(t *testing.T, tgt targets.Target) {
	ctx := context.Background()
	for i, tc := range []struct {
		name string
		size int64
	}{
		{"0B", 0},
		{"1B", 1},
		{"5MiB+1", 5*mib + 1},
		{"100MiB", 100 * mib},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := "objects/" + tc.name + ".bin"
			before := time.Now()
			want := PutStream(t, ctx, tgt, key, uint64(i+1), tc.size)

			oi, err := tgt.Stat(ctx, key)
			if err != nil {
				t.Fatalf("stat: %v", err)
			}
			if oi.Size != tc.size {
				t.Errorf("stat size: got %d, want %d", oi.Size, tc.size)
			}
			if oi.Key != key {
				t.Errorf("stat key: got %q, want %q", oi.Key, key)
			}
			if d := oi.ModTime.Sub(before); d < -time.Hour || d > time.Hour {
				t.Errorf("stat modtime: got %v, want close to %v", oi.ModTime, before)
			}

			got, n := GetSum(t, ctx, tgt, key)
			if n != tc.size {
				t.Errorf("get: read %d bytes, want %d", n, tc.size)
			}
			if got != want {
				t.Errorf("get: sha256 %x, want %x", got, want)
			}
			if err := tgt.Delete(ctx, key); err != nil {
				t.Errorf("delete: %v", err)
			}
		})
	}
}

// testSeekable catches backends that read a seekable source from offset 0 (minio-go's
// ReaderAt path does) instead of from where the caller left it.
func testSeekable(t *testing.T, tgt targets.Target) {
	data, _ := io.ReadAll(Data(7, 5*mib+1))
	r := bytes.NewReader(data)
	const skip = 7
	if _, err := r.Seek(skip, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if err := tgt.Put(context.Background(), "seek/obj", r, int64(len(data)-skip)); err != nil {
		t.Fatalf("put: %v", err)
	}
	got, n := GetSum(t, context.Background(), tgt, "seek/obj")
	if want := sha256.Sum256(data[skip:]); got != want || n != int64(len(data)-skip) {
		t.Errorf("get: %d bytes with sha256 %x, want %d bytes with %x", n, got, len(data)-skip, want)
	}
}

func testSizeMismatch(t *testing.T, tgt targets.Target) {
	ctx := context.Background()
	for _, tc := range []struct {
		name     string
		have     int64
		announce int64
	}{
		{"short", 10, 11},
		{"long", 12, 11},
		{"empty but announced", 0, 1},
		{"announced empty", 1, 0},
		{"short multipart", 6 * mib, 6*mib + 1},
		{"long multipart", 6*mib + 1, 6 * mib},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := "mismatch/" + tc.name
			err := tgt.Put(ctx, key, streamOnly{Data(1, tc.have)}, tc.announce)
			if !errors.Is(err, targets.ErrSizeMismatch) {
				t.Errorf("put %d bytes announced as %d: got %v, want an error wrapping ErrSizeMismatch", tc.have, tc.announce, err)
			}
			requireNotFound(t, tgt, key)
		})
	}
	if got := listKeys(t, tgt, ""); len(got) != 0 {
		t.Errorf("list after failed puts: got %q, want nothing", keysOf(got))
	}
}

// failingReader returns data until after bytes, then err.
type failingReader struct {
	r     io.Reader
	after int64
	err   error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.after <= 0 {
		return 0, f.err
	}
	if int64(len(p)) > f.after {
		p = p[:f.after]
	}
	n, err := f.r.Read(p)
	f.after -= int64(n)
	return n, err
}

func testReaderError(t *testing.T, tgt targets.Target) {
	boom := errors.New("the dump failed")
	for _, tc := range []struct {
		name        string
		size, after int64
	}{
		{"single request", 1 * mib, 512 << 10},
		{"multipart", 20 * mib, 12 * mib},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := "readerr/" + tc.name
			r := &failingReader{r: Data(3, tc.size), after: tc.after, err: boom}
			err := tgt.Put(context.Background(), key, r, tc.size)
			if !errors.Is(err, boom) {
				t.Errorf("put from a reader failing after %d bytes: got %v, want an error wrapping %q", tc.after, err, boom)
			}
			requireNotFound(t, tgt, key)
		})
	}
}

func testOverwrite(t *testing.T, tgt targets.Target) {
	put(t, tgt, "over/k", bytes.Repeat([]byte("1"), 100))
	put(t, tgt, "over/k", bytes.Repeat([]byte("2"), 50))
	if got := getBytes(t, tgt, "over/k"); !bytes.Equal(got, bytes.Repeat([]byte("2"), 50)) {
		t.Errorf("get after overwrite: got %q, want 50 x '2'", got)
	}
	oi, err := tgt.Stat(context.Background(), "over/k")
	if err != nil || oi.Size != 50 {
		t.Errorf("stat after overwrite: got (%d, %v), want size 50", oi.Size, err)
	}
}

func testList(t *testing.T, tgt targets.Target) {
	// '-' < '.' < '/' < 'b' in byte order: a naive directory walk lists "a/b" before
	// "a-c", which is wrong for keys.
	all := []string{"list/a-c", "list/a.d", "list/a/b", "list/a/c", "list/ab", "list/b", "other/x"}
	for i, k := range slices.Backward(all) { // insertion order must not matter
		put(t, tgt, k, bytes.Repeat([]byte{'x'}, i+1))
	}
	sizes := map[string]int64{}
	for i, k := range slices.Backward(all) {
		sizes[k] = int64(i + 1)
	}
	for _, tc := range []struct {
		prefix string
		want   []string
	}{
		{"", all},
		{"list/", all[:6]},
		{"list/a", all[:5]},
		{"list/a/", []string{"list/a/b", "list/a/c"}},
		{"list/a/b", []string{"list/a/b"}},
		{"li", all[:6]},
		{"nothing", nil},
		{"nothing/", nil},
		{"list/a/b/", nil},
	} {
		got := listKeys(t, tgt, tc.prefix)
		if !slices.Equal(keysOf(got), tc.want) {
			t.Errorf("list %q: got %q, want %q", tc.prefix, keysOf(got), tc.want)
		}
		for _, oi := range got {
			if oi.Size != sizes[oi.Key] {
				t.Errorf("list %q: %s has size %d, want %d", tc.prefix, oi.Key, oi.Size, sizes[oi.Key])
			}
		}
	}

	stop := errors.New("enough")
	calls := 0
	err := tgt.List(context.Background(), "", func(targets.ObjectInfo) error {
		calls++
		if calls == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || calls != 2 {
		t.Errorf("list with a callback failing on the 2nd object: got %v after %d calls, want %q after 2", err, calls, stop)
	}
}

func testListMany(t *testing.T, tgt targets.Target) {
	const n = 1100 // more than one 1000-key page
	want := make([]string, n)
	for i := range want {
		want[i] = fmt.Sprintf("many/%04d", i)
	}
	parallel(t, 16, n, func(i int) error {
		k := want[i]
		return tgt.Put(context.Background(), k, bytes.NewReader([]byte(k)), int64(len(k)))
	})
	got := listKeys(t, tgt, "many/")
	if !slices.Equal(keysOf(got), want) {
		t.Errorf("list many/: got %d keys (first %q), want %d in order", len(got), keysOf(got)[:min(3, len(got))], n)
	}
	got = listKeys(t, tgt, "many/1")
	if !slices.Equal(keysOf(got), want[1000:]) {
		t.Errorf("list many/1: got %d keys, want %d (many/1000..many/1099)", len(got), n-1000)
	}
}

// parallel runs f(0..n-1) on workers goroutines and fails the test on the first error.
func parallel(t *testing.T, workers, n int, f func(i int) error) {
	t.Helper()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		next = make(chan int)
	)
	for range workers {
		wg.Go(func() {
			for i := range next {
				if err := f(i); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d of %d operations failed, first: %v", len(errs), n, errs[0])
	}
}

func testNotFound(t *testing.T, tgt targets.Target) {
	requireNotFound(t, tgt, "missing/key")
	put(t, tgt, "nf/dir/file", []byte("x"))
	requireNotFound(t, tgt, "nf/dir")        // a "directory" is not an object
	requireNotFound(t, tgt, "nf/dir/file/x") // below an object
	requireNotFound(t, tgt, "nf/dir/fil")
}

func testDelete(t *testing.T, tgt targets.Target) {
	ctx := context.Background()
	put(t, tgt, "del/a/b/x", []byte("x"))
	put(t, tgt, "del/keep", []byte("k"))
	for i := range 2 {
		if err := tgt.Delete(ctx, "del/a/b/x"); err != nil {
			t.Errorf("delete #%d: got %v, want nil", i+1, err)
		}
	}
	requireNotFound(t, tgt, "del/a/b/x")
	if err := tgt.Delete(ctx, "del/never/existed"); err != nil {
		t.Errorf("delete of a key never written: got %v, want nil", err)
	}
	if got := keysOf(listKeys(t, tgt, "del/")); !slices.Equal(got, []string{"del/keep"}) {
		t.Errorf("list after delete: got %q, want [del/keep]", got)
	}
	// The key can be written again where its directories were cleaned up.
	put(t, tgt, "del/a/b/x", []byte("again"))
	if got := getBytes(t, tgt, "del/a/b/x"); string(got) != "again" {
		t.Errorf("get after re-put: got %q, want %q", got, "again")
	}
}

func testKeys(t *testing.T, tgt targets.Target) {
	keys := []string{
		"spaces/a file with spaces.sql.zst.age",
		"spaces/ leading and trailing ",
		"unicode/ünïcødé/日本語 ファイル.sql",
		"unicode/emoji 🙂🚀",
		"chars/plus+percent%20amp&eq=semi;comma,quote'paren(1)",
		"chars/question?hash#star*tilde~at@dollar$",
	}
	for _, k := range keys {
		put(t, tgt, k, []byte(k))
	}
	for _, k := range keys {
		if got := getBytes(t, tgt, k); string(got) != k {
			t.Errorf("get %q: got %q", k, got)
		}
		if oi, err := tgt.Stat(context.Background(), k); err != nil || oi.Size != int64(len(k)) {
			t.Errorf("stat %q: got (%d, %v), want size %d", k, oi.Size, err, len(k))
		}
	}
	want := slices.Clone(keys)
	slices.Sort(want)
	if got := keysOf(listKeys(t, tgt, "")); !slices.Equal(got, want) {
		t.Errorf("list: got %q, want %q", got, want)
	}
	if got := keysOf(listKeys(t, tgt, "unicode/ünïcødé/日本")); !slices.Equal(got, []string{keys[2]}) {
		t.Errorf("list with a unicode prefix: got %q, want %q", got, keys[2:3])
	}
}

func testInvalidKeys(t *testing.T, tgt targets.Target) {
	ctx := context.Background()
	for _, k := range []string{"", "/abs", "a/../b", "..", "../x", "a/..", "a//b", "a/./b", "./a", "dir/", "nul\x00byte", `back\slash`, "bad\xffutf8"} {
		if err := tgt.Put(ctx, k, bytes.NewReader(nil), 0); !errors.Is(err, targets.ErrInvalidKey) {
			t.Errorf("put %q: got %v, want an error wrapping ErrInvalidKey", k, err)
		}
		if _, err := tgt.Get(ctx, k); !errors.Is(err, targets.ErrInvalidKey) {
			t.Errorf("get %q: got %v, want an error wrapping ErrInvalidKey", k, err)
		}
		if _, err := tgt.Stat(ctx, k); !errors.Is(err, targets.ErrInvalidKey) {
			t.Errorf("stat %q: got %v, want an error wrapping ErrInvalidKey", k, err)
		}
		if err := tgt.Delete(ctx, k); !errors.Is(err, targets.ErrInvalidKey) {
			t.Errorf("delete %q: got %v, want an error wrapping ErrInvalidKey", k, err)
		}
	}
	for _, p := range []string{"/abs", "a/../", "a//", "nul\x00"} {
		err := tgt.List(ctx, p, func(targets.ObjectInfo) error { return nil })
		if !errors.Is(err, targets.ErrInvalidKey) {
			t.Errorf("list %q: got %v, want an error wrapping ErrInvalidKey", p, err)
		}
	}
	if got := listKeys(t, tgt, ""); len(got) != 0 {
		t.Errorf("list after invalid puts: got %q, want nothing", keysOf(got))
	}
}

func testConcurrent(t *testing.T, tgt targets.Target) {
	ctx := context.Background()
	t.Run("different keys", func(t *testing.T) {
		sums := make([][32]byte, 8)
		var wg sync.WaitGroup
		for i := range sums {
			wg.Go(func() {
				var err error
				if sums[i], err = putStream(ctx, tgt, fmt.Sprintf("conc/d%d", i), uint64(100+i), mib+int64(i)); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		for i, want := range sums {
			if got, _ := GetSum(t, ctx, tgt, fmt.Sprintf("conc/d%d", i)); got != want {
				t.Errorf("conc/d%d: sha256 %x, want %x", i, got, want)
			}
		}
	})
	t.Run("same key", func(t *testing.T) {
		// Writers race on one key while a reader keeps reading it: every read and the
		// final object must be exactly one writer's whole object.
		const writers = 4
		key := "conc/same"
		size := func(i int) int64 { return 6*mib + int64(i)*1000 } // over a 5 MiB part
		want := map[[32]byte]int64{}
		for i := range writers {
			h := sha256.New()
			io.Copy(h, Data(uint64(200+i), size(i)))
			want[[32]byte(h.Sum(nil))] = size(i)
		}
		done := make(chan struct{})
		var reads, wholeReads int
		var readErr error
		var rwg sync.WaitGroup
		rwg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				reads++
				rc, err := tgt.Get(ctx, key)
				if errors.Is(err, targets.ErrNotFound) {
					continue
				}
				if err != nil {
					readErr = err
					return
				}
				h := sha256.New()
				_, err = io.Copy(h, rc)
				rc.Close()
				if err != nil {
					continue // an object replaced under a reader may end its stream; that is allowed
				}
				if _, ok := want[[32]byte(h.Sum(nil))]; !ok {
					readErr = fmt.Errorf("read %d returned bytes that no writer wrote", reads)
					return
				}
				wholeReads++
			}
		})
		var wg sync.WaitGroup
		for i := range writers {
			wg.Go(func() {
				if _, err := putStream(ctx, tgt, key, uint64(200+i), size(i)); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		close(done)
		rwg.Wait()
		if readErr != nil {
			t.Errorf("concurrent reader: %v", readErr)
		}
		got, n := GetSum(t, ctx, tgt, key)
		wantSize, ok := want[got]
		if !ok || n != wantSize {
			t.Errorf("final object: %d bytes with sha256 %x, which is not one writer's whole object", n, got)
		}
		if oi, err := tgt.Stat(ctx, key); err != nil || oi.Size != n {
			t.Errorf("stat: got (%d, %v), want size %d", oi.Size, err, n)
		}
		t.Logf("%d concurrent reads, %d of them whole objects", reads, wholeReads)
	})
}

// cancellingReader cancels the upload's context after some bytes and then keeps producing
// data, so the only way the upload can end is by noticing the cancellation.
type cancellingReader struct {
	r      io.Reader
	after  int64
	cancel context.CancelFunc
}

func (c *cancellingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.after -= int64(n)
	if c.after <= 0 {
		c.cancel()
	}
	return n, err
}

func testCancelled(t *testing.T, tgt targets.Target) {
	for _, tc := range []struct {
		name        string
		size, after int64
	}{
		{"single request", 4 * mib, 2 * mib},
		{"multipart", 100 * mib, 12 * mib},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			key := "cancel/" + tc.name
			r := &cancellingReader{r: Data(9, tc.size), after: tc.after, cancel: cancel}
			start := time.Now()
			err := tgt.Put(ctx, key, r, tc.size)
			if !errors.Is(err, context.Canceled) {
				t.Errorf("put cancelled after %d bytes: got %v, want an error wrapping context.Canceled", tc.after, err)
			}
			if d := time.Since(start); d > 30*time.Second {
				t.Errorf("cancelled put took %v to return", d)
			}
			requireNotFound(t, tgt, key)
			if got := listKeys(t, tgt, ""); len(got) != 0 {
				t.Errorf("list after a cancelled put: got %q, want nothing", keysOf(got))
			}
		})
	}
}
