package termsafe

import (
	"fmt"
	"strings"
	"testing"
)

func TestName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"shop", "shop"},
		{"tåble ñ 中文 😀", "tåble ñ 中文 😀"},
		{"evil\x1b[2J\x1b[Hdb", `evil\x1b[2J\x1b[Hdb`},
		{"two\nlines\r\ttab", `two\nlines\r\ttab`},
		{"del\x7f c1\u0085", `del\x7f c1\x85`},
		{"rtl\u202etxt.sql zero\u200bwidth", `rtl\u202etxt.sql zero\u200bwidth`},
		{"line\u2028sep", `line\u2028sep`},
		{"bad\xffutf8", `bad\xffutf8`},
		{`back\slash`, `back\\slash`},
		{"", ""},
	} {
		if got := Name(tc.in); got != tc.want {
			t.Errorf("Name(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	// Distinct names stay distinct: a name spelling an escape differs from the character.
	if a, b := Name("a\x1b"), Name(`a\x1b`); a == b {
		t.Errorf("Name printed %q for both a name with ESC and one spelling \\x1b", a)
	}
}

func TestLine(t *testing.T) {
	for _, tc := range []struct {
		in   string
		max  int
		want string
	}{
		{"Duplicate entry 'x' for key 'PRIMARY'", 0, "Duplicate entry 'x' for key 'PRIMARY'"},
		{"Duplicate entry '# created: 2026\n# public key: age1…\nAGE-SECRET-KEY-1QQQ' for key 'PRIMARY'", 0, "Duplicate entry '# created: 2026 …"},
		{"cr\rAGE-SECRET-KEY", 0, "cr …"},
		{"  esc \x1b[31mred  ", 0, `esc \x1b[31mred`},
		{strings.Repeat("a", 20), 10, strings.Repeat("a", 9) + "…"},
		{"short", 10, "short"},
	} {
		got := Line(tc.in, tc.max)
		if got != tc.want {
			t.Errorf("Line(%q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
		}
		if strings.Contains(got, "AGE-SECRET-KEY") {
			t.Errorf("Line(%q) kept a later line: %q", tc.in, got)
		}
	}
}

func TestText(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`path C:\dir`, `path C:\dir`},
		{"esc\x1b[0m", `esc\x1b[0m`},
	} {
		got := Text(tc.in)
		if got != tc.want {
			t.Errorf("Text(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if again := Text(got); again != got {
			t.Errorf("Text(Text(%q)) = %q, want it unchanged %q", tc.in, again, got)
		}
	}
}

func TestWriter(t *testing.T) {
	var b strings.Builder
	w := NewWriter(&b)
	fmt.Fprintf(w, "  database:   %s\n", "shop\x1b[1A\x1b[2Kfake line")
	fmt.Fprintf(w, "  contents:   %s\n", Name("a\nb"))
	want := "  database:   shop\\x1b[1A\\x1b[2Kfake line\n  contents:   a\\nb\n"
	if b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}
}
