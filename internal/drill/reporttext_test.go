package drill

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"
)

// TestReportError: a server error quoting a file (a duplicate key over LOAD_FILE of an identity
// file) reaches a report with its first line only and no control characters; the text around
// it is kept.
func TestReportError(t *testing.T) {
	keyFile := "# created: 2026-12-01T00:00:00Z\n# public key: age1xyz\nAGE-SECRET-KEY-1QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L\n"
	server := &mysql.MySQLError{Number: 1062, Message: "Duplicate entry '" + keyFile + "' for key 'PRIMARY'"}
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"wrapped", fmt.Errorf("load shop/data/t/00001.sql: %w", server),
			"load shop/data/t/00001.sql: Error 1062: Duplicate entry '# created: 2026-12-01T00:00:00Z …"},
		{"joined", errors.Join(errors.New("first"), fmt.Errorf("load x: %w", server)),
			"first; load x: Error 1062: Duplicate entry '# created: 2026-12-01T00:00:00Z …"},
		{"escape sequences", fmt.Errorf("load y: %w", &mysql.MySQLError{Number: 1064, Message: "near '\x1b[2J\x1b]0;pwned\x07' at line 1"}),
			`load y: Error 1064: near '\x1b[2J\x1b]0;pwned\x07' at line 1`},
		{"no server error", errors.New("object a\x1bb is missing"), `object a\x1bb is missing`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := reportError(tc.err)
			if got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
			if strings.Contains(got, "AGE-SECRET-KEY") || strings.ContainsAny(got, "\n\r\x1b\x07") {
				t.Errorf("%q keeps a later line or a control character", got)
			}
		})
	}
}
