package backupset

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/backupd/backupd/internal/seal"
	"github.com/backupd/backupd/internal/targets"
)

// memTarget is an in-memory Target for fast unit tests; the real backends are covered by the
// conformance suite in package targets and by the end-to-end backup tests.
type memTarget struct {
	mu      sync.Mutex
	objs    map[string][]byte
	failPut func(key string) error
}

func newMem() *memTarget { return &memTarget{objs: map[string][]byte{}} }

func (m *memTarget) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if m.failPut != nil {
		if err := m.failPut(key); err != nil {
			return err
		}
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if int64(len(b)) != size {
		return fmt.Errorf("put %s: got %d bytes, want %d", key, len(b), size)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.objs[key] = b
	return nil
}

func (m *memTarget) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.objs[key]
	if !ok {
		return nil, fmt.Errorf("get %s: %w", key, targets.ErrNotFound)
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

func (m *memTarget) List(ctx context.Context, prefix string, fn func(targets.ObjectInfo) error) error {
	m.mu.Lock()
	var keys []string
	for k := range m.objs {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	m.mu.Unlock()
	sort.Strings(keys)
	for _, k := range keys {
		m.mu.Lock()
		n := len(m.objs[k])
		m.mu.Unlock()
		if err := fn(targets.ObjectInfo{Key: k, Size: int64(n)}); err != nil {
			return err
		}
	}
	return nil
}

func (m *memTarget) Delete(ctx context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.objs, key)
	return nil
}

func writeObj(t *testing.T, w *Writer, name string, data []byte) error {
	t.Helper()
	o, err := w.Create(context.Background(), name)
	if err != nil {
		return err
	}
	if _, err := o.Write(data); err != nil {
		return err
	}
	return o.Close()
}

func TestIDs(t *testing.T) {
	at := time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)
	a, b := NewID(at), NewID(at.Add(time.Second))
	if !ValidID(a) || !ValidID(b) {
		t.Fatalf("NewID produced invalid IDs %q %q", a, b)
	}
	if !(a < b) {
		t.Errorf("IDs do not sort by time: %q >= %q", a, b)
	}
	got, err := IDTime(a)
	if err != nil || !got.Equal(at) {
		t.Errorf("IDTime(%q) = %v, %v; want %v", a, got, err, at)
	}
	for _, bad := range []string{"", "20261127T030000Z", "../x", "20261127T030000Z-3F9A"} {
		if ValidID(bad) {
			t.Errorf("ValidID(%q) = true, want false", bad)
		}
	}
}

func TestWriterCommitsOnEveryTarget(t *testing.T) {
	id, _ := age.GenerateX25519Identity()
	a, b := newMem(), newMem()
	ctx := context.Background()
	setID := NewID(time.Now())
	w, err := NewWriter(ctx, "nightly", setID, []Dest{{"a", a}, {"b", b}}, WriterOptions{
		Signer:     testSigner,
		Recipients: []age.Recipient{id.Recipient()}, MemSpool: 1024, SpoolDir: t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("INSERT INTO t VALUES (1,'abc');\n"), 10000) // spills to a file
	if err := writeObj(t, w, "shop/t.00001.sql", big); err != nil {
		t.Fatal(err)
	}
	if err := writeObj(t, w, "shop/t.00000.sql", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := writeObj(t, w, "shop/t.00000.sql", []byte("x")); err == nil {
		t.Error("writing the same object twice: got nil error")
	}
	res := w.Commit(ctx, &Manifest{StartedAt: time.Now()})
	for _, r := range res {
		if r.Err != nil {
			t.Fatalf("target %s: %v", r.Name, r.Err)
		}
	}
	for _, tg := range []*memTarget{a, b} {
		sets, _, err := List(ctx, tg, "nightly", time.Now(), testTrust)
		if err != nil || len(sets) != 1 {
			t.Fatalf("List = %d sets, %v; want 1", len(sets), err)
		}
		m := sets[0]
		if len(m.Objects) != 2 || m.Objects[0].Name != "shop/t.00000.sql" {
			t.Fatalf("manifest objects = %+v", m.Objects)
		}
		o, _ := m.Object("shop/t.00001.sql")
		rc, _ := tg.Get(ctx, ObjectKey("nightly", setID, o.Name))
		r, err := seal.Open(rc, []age.Identity{id})
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(r)
		if !bytes.Equal(got, big) || o.PlainSize != int64(len(big)) {
			t.Fatalf("object round trip: got %d bytes (plain_size %d), want %d", len(got), o.PlainSize, len(big))
		}
	}
}

func TestFailedTargetGetsNoManifest(t *testing.T) {
	id, _ := age.GenerateX25519Identity()
	good, bad := newMem(), newMem()
	bad.failPut = func(key string) error {
		if strings.HasSuffix(key, "two.sql"+SealedSuffix) {
			return errors.New("503 slow down")
		}
		return nil
	}
	ctx := context.Background()
	setID := NewID(time.Now())
	w, err := NewWriter(ctx, "p", setID, []Dest{{"good", good}, {"bad", bad}}, WriterOptions{
		Signer:     testSigner,
		Recipients: []age.Recipient{id.Recipient()}, MinTargets: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"one.sql", "two.sql", "three.sql"} {
		if err := writeObj(t, w, n, []byte(n)); err != nil {
			t.Fatal(err)
		}
	}
	res := w.Commit(ctx, &Manifest{})
	if res[0].Err != nil {
		t.Errorf("good target: %v", res[0].Err)
	}
	if res[1].Err == nil || !strings.Contains(res[1].Err.Error(), "two.sql") {
		t.Errorf("bad target: got %v, want an error naming two.sql", res[1].Err)
	}
	if sets, _, _ := List(ctx, bad, "p", time.Now(), testTrust); len(sets) != 0 {
		t.Errorf("failed target lists %d committed sets, want 0", len(sets))
	}
	// Whether one.sql reached the bad target before two.sql failed depends on scheduling; what
	// must never be there is a manifest.
	entries, _ := SetKeys(ctx, bad, "p")
	for _, e := range entries {
		if e.Committed {
			t.Errorf("failed target holds committed set %+v", e)
		}
	}
}

func TestMinTargetsFailsFast(t *testing.T) {
	id, _ := age.GenerateX25519Identity()
	bad := newMem()
	bad.failPut = func(string) error { return errors.New("access denied") }
	ctx := context.Background()
	w, err := NewWriter(ctx, "p", NewID(time.Now()), []Dest{{"ok", newMem()}, {"bad", bad}}, WriterOptions{
		Signer:     testSigner,
		Recipients: []age.Recipient{id.Recipient()},
	})
	if err != nil {
		t.Fatal(err)
	}
	var lastErr error
	for i := range 50 {
		if lastErr = writeObj(t, w, fmt.Sprintf("o%d.sql", i), []byte("x")); lastErr != nil {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if lastErr == nil || !strings.Contains(lastErr.Error(), "min_targets") {
		t.Errorf("with a dead target and min_targets=all: got %v, want a min_targets error", lastErr)
	}
	w.Abort(ctx)
}
