package backupset

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
)

// committedOnTwo writes one set with a single object to two in-memory targets.
func committedOnTwo(t *testing.T) (a, b *memTarget, m *Manifest, id *age.X25519Identity, plain string) {
	t.Helper()
	id, _ = age.GenerateX25519Identity()
	a, b = newMem(), newMem()
	ctx := context.Background()
	w, err := NewWriter(ctx, "p", NewID(time.Now()), []Dest{{"a", a}, {"b", b}}, WriterOptions{Signer: testSigner, Recipients: []age.Recipient{id.Recipient()}})
	if err != nil {
		t.Fatal(err)
	}
	plain = strings.Repeat("INSERT INTO t VALUES (42);\n", 1000)
	if err := writeObj(t, w, "db/t.00001.sql", []byte(plain)); err != nil {
		t.Fatal(err)
	}
	m = &Manifest{}
	for _, r := range w.Commit(ctx, m) {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	return a, b, m, id, plain
}

func corrupt(mt *memTarget, key string) {
	mt.mu.Lock()
	defer mt.mu.Unlock()
	mt.objs[key][len(mt.objs[key])/2] ^= 0xff
}

func TestFetcherFallsBack(t *testing.T) {
	ctx := context.Background()
	a, b, m, id, plain := committedOnTwo(t)
	obj := m.Objects[0]
	key := ObjectKey(m.Policy, m.SetID, obj.Name)
	f := &Fetcher{Policy: m.Policy, SetID: m.SetID, Sources: []Dest{{"a", a}, {"b", b}}, Identities: []age.Identity{id}, MemLimit: 100}

	for _, tc := range []struct {
		name     string
		damage   func()
		wantFrom string
		wantErr  string
	}{
		{"both good", func() {}, "a", ""},
		{"first corrupt", func() { corrupt(a, key) }, "b", ""},
		{"first missing", func() { a.Delete(ctx, key) }, "b", ""},
		{"all bad", func() { corrupt(b, key) }, "", obj.Name},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.damage()
			rc, from, err := f.Open(ctx, obj)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, ErrObjectBad) {
					t.Fatalf("got %v, want an ErrObjectBad naming %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(rc)
			rc.Close()
			if from != tc.wantFrom || string(got) != plain {
				t.Errorf("got %d bytes from %q, want %d bytes from %q", len(got), from, len(plain), tc.wantFrom)
			}
		})
	}
}

func TestCheckObject(t *testing.T) {
	ctx := context.Background()
	a, b, m, id, _ := committedOnTwo(t)
	obj := m.Objects[0]
	if err := CheckObject(ctx, a, m.Policy, m.SetID, obj, []age.Identity{id}); err != nil {
		t.Fatalf("good copy: %v", err)
	}
	corrupt(b, ObjectKey(m.Policy, m.SetID, obj.Name))
	if err := CheckObject(ctx, b, m.Policy, m.SetID, obj, []age.Identity{id}); !errors.Is(err, ErrObjectBad) {
		t.Errorf("corrupt copy: got %v, want ErrObjectBad", err)
	}
	other, _ := age.GenerateX25519Identity()
	if err := CheckObject(ctx, a, m.Policy, m.SetID, obj, []age.Identity{other}); err == nil || !strings.Contains(err.Error(), "identity") {
		t.Errorf("wrong key: got %v, want an error about the identity", err)
	}
}
