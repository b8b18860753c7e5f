package dump

import (
	"strconv"
	"strings"
)

// encodeName turns a database or table name into one path segment of an object name: bytes
// outside [A-Za-z0-9._-] become %XX (uppercase hex), and so does a leading '.', so a segment is
// never "." or ".." or a hidden file. The mapping is injective, so distinct names never collide.
func encodeName(name string) string {
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		c := name[i]
		if (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
			c == '_' || c == '-' || (c == '.' && i > 0) {
			b.WriteByte(c)
			continue
		}
		const hexdigits = "0123456789ABCDEF"
		b.WriteByte('%')
		b.WriteByte(hexdigits[c>>4])
		b.WriteByte(hexdigits[c&15])
	}
	return b.String()
}

// Object names; the layout is documented in FORMAT.md.
func databaseObject(db string) string { return encodeName(db) + "/database.sql" }
func kindObject(db, dir, name string) string {
	return encodeName(db) + "/" + dir + "/" + encodeName(name) + ".sql"
}
func dataObject(db, table string, seq int) string {
	return encodeName(db) + "/data/" + encodeName(table) + "/" + padInt(seq, 5) + ".sql"
}

// usersObject holds users, roles and grants. '@' is always percent-encoded in database names,
// so this name cannot collide with a database's directory.
const usersObject = "@global/users.sql"

func padInt(n, width int) string {
	s := strconv.Itoa(n)
	for len(s) < width {
		s = "0" + s
	}
	return s
}

// qualified returns `db`.`name`.
func qualified(db, name string) string { return QuoteIdent(db) + "." + QuoteIdent(name) }

// quoteString returns a single-quoted SQL string literal with backslash escapes, on one line.
func quoteString(s string) string {
	return string(appendEscaped(make([]byte, 0, len(s)+2), []byte(s), true))
}
