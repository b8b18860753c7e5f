// Package termsafe makes text that came from outside (database, table and object names read
// from a backup set, a server's error message) safe to print on a terminal or to put into a
// report: control characters, and the Unicode characters that reorder or hide text, cannot
// move the cursor, rewrite what was printed before, or make one name look like another.
package termsafe

import (
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Name returns s with every control or invisible formatting character and every invalid UTF-8
// byte written as a Go escape (\n, \x1b, \u202e), and a backslash doubled, so that distinct
// names stay distinct. Text without such characters is returned unchanged.
func Name(s string) string {
	return escape(s, true)
}

// Text is Name for prose (an error message, a reason in a report) rather than a name: a
// backslash is kept as it is, so Text of its own result changes nothing.
func Text(s string) string {
	return escape(s, false)
}

// NewWriter returns a writer that passes text to w with Text's escapes, except that a newline
// stays a newline: for a multi-line listing whose lines hold names from a backup set. A
// name that itself holds a newline should also go through Name, so it cannot start a line.
func NewWriter(w io.Writer) io.Writer { return &writer{w} }

type writer struct{ w io.Writer }

func (t *writer) Write(p []byte) (int, error) {
	lines := strings.Split(string(p), "\n")
	for i := range lines {
		lines[i] = Text(lines[i])
	}
	if _, err := io.WriteString(t.w, strings.Join(lines, "\n")); err != nil {
		return 0, err
	}
	return len(p), nil
}

func escape(s string, names bool) string {
	if clean(s, names) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\\' && names:
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case unsafeRune(r) && r < 0x100:
			fmt.Fprintf(&b, `\x%02x`, r)
		case unsafeRune(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
		i += size
	}
	return b.String()
}

// Line returns the first line of s (without its surrounding spaces) made safe with Text and
// cut to at most max characters, ending in "…" when it was cut. It is for text that may carry
// whatever an attacker put into it, such as a server's error message quoting a value: only the
// first line, and a short one, can get into a report.
func Line(s string, max int) string {
	if i := strings.IndexAny(s, "\n\r"); i >= 0 {
		s = s[:i] + " …"
	}
	s = Text(strings.TrimSpace(s))
	if max > 0 && utf8.RuneCountInString(s) > max {
		r := []rune(s)
		s = string(r[:max-1]) + "…"
	}
	return s
}

func clean(s string, names bool) bool {
	for _, r := range s {
		if r == utf8.RuneError || (r == '\\' && names) || unsafeRune(r) {
			return false
		}
	}
	return utf8.ValidString(s)
}

// unsafeRune: C0, DEL and C1 controls, and the format characters (Cf: bidirectional overrides
// and isolates, zero-width characters, …) plus the line and paragraph separators.
func unsafeRune(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == '\u2028' || r == '\u2029'
}
