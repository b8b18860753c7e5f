package drill

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/backupd/backupd/internal/config"
	"github.com/backupd/backupd/internal/dump"
)

// checkTimeout bounds one check query.
const checkTimeout = 10 * time.Minute

// Checks refer to databases by their names in the set ("SELECT … FROM shop.orders"). On an
// embedded scratch the databases keep those names; on a DSN scratch they are restored under
// drill names, and mapSchemas rewrites every qualified reference to a set database (shop.x,
// `shop`.x) into the drill name. A check also runs with a default schema (its database:, or
// the set's only database), so unqualified names work too.

// mapSchemas rewrites the first part of qualified names that name a database in m. It skips
// string literals and comments. A table alias spelled like a set database is rewritten as well:
// give such aliases other names, or use an embedded scratch, where nothing is rewritten.
func mapSchemas(q string, m map[string]string) string {
	if len(m) == 0 {
		return q
	}
	var b strings.Builder
	i := 0
	prevDot := false // the last significant token was '.'
	for i < len(q) {
		c := q[i]
		switch {
		case c == '\'' || c == '"':
			j := skipString(q, i)
			b.WriteString(q[i:j])
			i, prevDot = j, false
		case c == '#' || (c == '-' && strings.HasPrefix(q[i:], "-- ")) || (c == '-' && strings.HasPrefix(q[i:], "--\t")) || (c == '-' && q[i:] == "--"):
			j := strings.IndexByte(q[i:], '\n')
			if j < 0 {
				j = len(q) - i
			}
			b.WriteString(q[i : i+j])
			i += j
		case c == '/' && strings.HasPrefix(q[i:], "/*"):
			j := strings.Index(q[i+2:], "*/")
			end := len(q)
			if j >= 0 {
				end = i + 2 + j + 2
			}
			b.WriteString(q[i:end])
			i = end
		case c == '`':
			j, name := readQuoted(q, i)
			if to, ok := m[name]; ok && !prevDot && nextIsDot(q, j) {
				b.WriteString(dump.QuoteIdent(to))
			} else {
				b.WriteString(q[i:j])
			}
			i, prevDot = j, false
		case isIdentByte(c):
			j := i
			for j < len(q) && isIdentByte(q[j]) {
				j++
			}
			word := q[i:j]
			if to, ok := m[word]; ok && !prevDot && nextIsDot(q, j) {
				b.WriteString(dump.QuoteIdent(to))
			} else {
				b.WriteString(word)
			}
			i, prevDot = j, false
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			b.WriteByte(c)
			i++
		default:
			prevDot = c == '.'
			b.WriteByte(c)
			i++
		}
	}
	return b.String()
}

func isIdentByte(c byte) bool {
	return c == '_' || c == '$' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}

// skipString returns the index after the string literal starting at i (quotes doubled or
// backslash-escaped inside).
func skipString(q string, i int) int {
	quote := q[i]
	j := i + 1
	for j < len(q) {
		switch q[j] {
		case '\\':
			j += 2
			continue
		case quote:
			if j+1 < len(q) && q[j+1] == quote {
				j += 2
				continue
			}
			return j + 1
		}
		j++
	}
	return len(q)
}

// readQuoted reads the backtick-quoted identifier at i; it returns the index after it and the
// name with doubled backticks unescaped.
func readQuoted(q string, i int) (int, string) {
	var b strings.Builder
	j := i + 1
	for j < len(q) {
		if q[j] == '`' {
			if j+1 < len(q) && q[j+1] == '`' {
				b.WriteByte('`')
				j += 2
				continue
			}
			return j + 1, b.String()
		}
		b.WriteByte(q[j])
		j++
	}
	return len(q), b.String()
}

func nextIsDot(q string, j int) bool {
	for j < len(q) && (q[j] == ' ' || q[j] == '\t' || q[j] == '\n' || q[j] == '\r') {
		j++
	}
	return j < len(q) && q[j] == '.'
}

// evaluate decides a check from its value (nil: NULL, or no row). why says what was wrong.
func evaluate(e config.Expect, value *string) (ok bool, why string) {
	var problems []string
	num := func() (float64, bool) {
		if value == nil {
			return 0, false
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(*value), 64)
		return f, err == nil
	}
	if e.NotNull && value == nil {
		problems = append(problems, "the value is NULL (or the query returned no row)")
	}
	if e.Equals != nil {
		switch {
		case value == nil:
			problems = append(problems, fmt.Sprintf("the value is NULL, not %q", *e.Equals))
		default:
			want, errW := strconv.ParseFloat(strings.TrimSpace(*e.Equals), 64)
			got, okG := num()
			equal := *value == *e.Equals || (errW == nil && okG && got == want)
			if !equal {
				problems = append(problems, fmt.Sprintf("%q is not %q", *value, *e.Equals))
			}
		}
	}
	if e.Min != nil || e.Max != nil {
		got, isNum := num()
		switch {
		case value == nil:
			problems = append(problems, "the value is NULL, not a number")
		case !isNum:
			problems = append(problems, fmt.Sprintf("%q is not a number", *value))
		default:
			if e.Min != nil && got < *e.Min {
				problems = append(problems, fmt.Sprintf("%s is below the minimum %s", *value, strconv.FormatFloat(*e.Min, 'f', -1, 64)))
			}
			if e.Max != nil && got > *e.Max {
				problems = append(problems, fmt.Sprintf("%s is above the maximum %s", *value, strconv.FormatFloat(*e.Max, 'f', -1, 64)))
			}
		}
	}
	return len(problems) == 0, strings.Join(problems, "; ")
}

// runCheck runs one check in a read-only transaction on the scratch server. schema is the
// (drill) database it runs in; empty for none.
func runCheck(ctx context.Context, db *sql.DB, ch config.DrillCheck, query, schema string) CheckResult {
	res := CheckResult{Name: ch.Name, Database: ch.Database, SQL: ch.SQL, Expect: ch.Expect.String()}
	start := time.Now()
	defer func() { res.Seconds = time.Since(start).Seconds() }()
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	value, err := queryValue(ctx, db, query, schema)
	if err != nil {
		res.Status, res.Detail = CheckError, "the query failed: "+reportError(err)
		return res
	}
	res.Value = value
	if ok, why := evaluate(ch.Expect, value); ok {
		res.Status = CheckPass
	} else {
		res.Status, res.Detail = CheckFail, why
	}
	return res
}

// queryValue returns the first column of the first row as text; nil for NULL or no row.
func queryValue(ctx context.Context, db *sql.DB, query, schema string) (*string, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if schema != "" {
		if _, err := conn.ExecContext(ctx, "USE "+dump.QuoteIdent(schema)); err != nil {
			return nil, err
		}
	}
	// A check reads; a write by mistake must not change what later checks see.
	if _, err := conn.ExecContext(ctx, "START TRANSACTION READ ONLY"); err != nil {
		return nil, err
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
	rows, err := conn.QueryContext(ctx, query)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	if !rows.Next() {
		return nil, rows.Err()
	}
	dest := make([]any, len(cols))
	var first sql.NullString
	dest[0] = &first
	for i := 1; i < len(cols); i++ {
		dest[i] = new(sql.RawBytes)
	}
	if err := rows.Scan(dest...); err != nil {
		return nil, err
	}
	if !first.Valid {
		return nil, nil
	}
	return &first.String, nil
}
