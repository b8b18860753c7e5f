package countio

import (
	"io"
	"strings"
	"testing"
)

func TestReaderCounts(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
	}{
		{"empty", ""},
		{"short", "hello"},
		{"long", strings.Repeat("x", 100_000)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var heard int64
			r := &Reader{R: strings.NewReader(tc.in), Add: func(n int64) { heard += n }}
			got, err := io.ReadAll(r)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.in {
				t.Errorf("got %d bytes through, want the %d given", len(got), len(tc.in))
			}
			if r.N != int64(len(tc.in)) || heard != int64(len(tc.in)) {
				t.Errorf("got N %d and Add total %d, want %d for both", r.N, heard, len(tc.in))
			}
		})
	}
}
