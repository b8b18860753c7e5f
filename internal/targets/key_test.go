package targets

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestValidateKey(t *testing.T) {
	for _, k := range []string{
		"a", "nightly/20261127T030000Z-3f9a/shop/orders.00001.sql.zst.age",
		"with space/ünï 日本", "a.b/..c/c..", ".hidden/x", "a-b/c=d&e",
	} {
		if err := validateKey(k); err != nil {
			t.Errorf("validateKey(%q) = %v, want nil", k, err)
		}
	}
	for _, k := range []string{
		"", "/a", "a/", "a//b", "./a", "a/./b", "..", "../a", "a/../b", "a/..",
		"a\x00b", `a\b`, "\xff",
	} {
		err := validateKey(k)
		if !errors.Is(err, ErrInvalidKey) {
			t.Errorf("validateKey(%q) = %v, want ErrInvalidKey", k, err)
		}
	}
	for _, p := range []string{"", "a/", "nightly/2026", "a/b/"} {
		if err := validatePrefix(p); err != nil {
			t.Errorf("validatePrefix(%q) = %v, want nil", p, err)
		}
	}
}

func TestExactReader(t *testing.T) {
	for _, tc := range []struct {
		name     string
		data     string
		size     int64
		mismatch bool
	}{
		{"exact", "hello", 5, false},
		{"empty", "", 0, false},
		{"short", "hell", 5, true},
		{"long", "hello!", 5, true},
		{"extra byte on empty", "x", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// One byte at a time is the hardest case for the end-of-data check.
			r := newExactReader(&oneByte{strings.NewReader(tc.data)}, tc.size)
			got, err := io.ReadAll(r)
			if tc.mismatch {
				if !errors.Is(err, ErrSizeMismatch) {
					t.Fatalf("got (%q, %v), want ErrSizeMismatch", got, err)
				}
				if int64(len(got)) >= tc.size && tc.size > 0 {
					t.Errorf("delivered %d bytes before failing; the consumer must never see all %d", len(got), tc.size)
				}
				if !errors.Is(r.Err(), ErrSizeMismatch) {
					t.Errorf("Err() = %v, want ErrSizeMismatch", r.Err())
				}
				return
			}
			if err != nil || !bytes.Equal(got, []byte(tc.data)) {
				t.Errorf("got (%q, %v), want %q", got, err, tc.data)
			}
		})
	}
}

type oneByte struct{ r io.Reader }

func (o *oneByte) Read(p []byte) (int, error) {
	if len(p) > 1 {
		p = p[:1]
	}
	return o.r.Read(p)
}
