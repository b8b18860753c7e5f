package restore

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/backupd/backupd/internal/ctxtime"
	"github.com/backupd/backupd/internal/dump"
)

// Rows through LOAD DATA LOCAL INFILE.
//
// A data object is a run of multi-row INSERT statements (dump/FORMAT.md), and that is what stays
// on the targets: `age -d | zstd -d | mariadb` must restore it. But the server spends most of a
// restore parsing those statements: on the shop benchmark, its SQL parser and the Items it builds
// for every literal were the top of a profile, and the same rows sent with LOAD DATA cost the
// server 25–45 % less CPU (orders 2.1–2.7 s instead of 3.2 s, events 0.9–1.5 s instead of
// 1.9–2.5 s, per 80 MB). So the loader rewrites the INSERTs it can prove equivalent into LOAD
// DATA's tab-separated rows, in memory, and sends those instead; anything else is executed as
// written.
//
// Equivalence, literal by literal (FORMAT.md "Values"; the object runs under SET NAMES binary,
// so every literal is exactly its bytes, and LOAD DATA … CHARACTER SET binary stores fields the
// same way):
//   - NULL becomes \N;
//   - a number is copied as text, and the server converts the text as it would the literal,
//     except where the column reads text differently from a number: ENUM and SET (a field "2"
//     is first looked up as a member named "2") and YEAR ("0" as text is 2000): those columns
//     go through a user variable and CAST(… AS UNSIGNED), which stores the number;
//   - a quoted string is unescaped (only the escapes dump writes: \0 \n \r \\ \' \Z, and \" \t
//     \b which mean the same in both) and re-escaped for LOAD DATA (\\, \t, \n, \0);
//   - 0x… is decoded to its bytes.
//
// A statement in any other form (`_utf8mb4'…'` introducers, b'…', 0X…, an expression such as
// 1-2, spaces between tokens, an unknown escape) ends the batch and is executed as SQL; so is
// every statement before the object has set NAMES binary and a sql_mode with backslash escapes
// (rowSender.observe), and every statement of a table with a column this reasoning does not
// cover (BIT, spatial, VECTOR, JSON on MySQL, UUID/INET, strings in multi-byte charsets that
// may contain ASCII bytes). LOAD DATA LOCAL turns duplicate-key errors into skipped rows, so
// each batch's affected-row count is compared with the rows sent: a difference fails the load
// as the INSERT would have. The restore's verification compares every table with the manifest
// either way.

// bulkColumn is what the restore must know of a destination column to send it via LOAD DATA.
type bulkColumn struct {
	DataType string // information_schema.COLUMNS.DATA_TYPE, lower case
	Charset  string // CHARACTER_SET_NAME, "" when not a string
}

// bulkPlan decides, for one destination table, how its rows go in.
type bulkPlan struct {
	columns map[string]bulkColumn // by column name; nil when the table must load as SQL

	// For the last target and column list seen: the LOAD DATA statement after the reader name,
	// the number of fields per row, or why these columns cannot go through LOAD DATA.
	seen    string
	header  []byte
	ncols   int
	loadErr error

	sent int64 // rows stored with LOAD DATA (read once the loader is done)
}

// newBulkPlan returns a plan for a table with these columns, or nil when some column's values
// might not come back identical through LOAD DATA.
func newBulkPlan(cols map[string]bulkColumn) *bulkPlan {
	if len(cols) == 0 {
		return nil
	}
	for _, c := range cols {
		if !bulkTypeOK(c) {
			return nil
		}
	}
	return &bulkPlan{columns: cols}
}

func bulkTypeOK(c bulkColumn) bool {
	switch c.DataType {
	case "bit", "geometry", "point", "linestring", "polygon", "multipoint", "multilinestring",
		"multipolygon", "geometrycollection", "geomcollection", "vector", "json", "uuid", "inet4", "inet6":
		return false
	}
	// A column without a charset is not a string, and binary strings are written as escaped
	// text or 0x…: both convert literal by literal. Character strings only in the charsets
	// whose bytes the dump escapes one by one.
	return c.Charset == "" || c.Charset == "binary" || dump.QuotedTextCharset(c.Charset)
}

// numericText reports the column types whose LOAD DATA text is not read as the number.
func numericText(dataType string) bool {
	return dataType == "enum" || dataType == "set" || dataType == "year"
}

// loadDataStatement returns the part of the LOAD DATA statement for rows of INSERT INTO target
// (cols) that follows the reader name, and the number of fields per row.
func (b *bulkPlan) loadDataStatement(target, colList []byte) ([]byte, int, error) {
	if key := string(target) + string(colList); b.seen != key {
		b.seen = key
		b.header, b.ncols, b.loadErr = b.build(target, colList)
	}
	return b.header, b.ncols, b.loadErr
}

func (b *bulkPlan) build(target, colList []byte) ([]byte, int, error) {
	names, ok := splitIdentList(colList)
	if !ok {
		return nil, 0, fmt.Errorf("column list %.80q is not in the expected form", colList)
	}
	var out bytes.Buffer
	out.WriteString("' INTO TABLE ")
	out.Write(target)
	// The separators as hex literals, which mean the same whatever the sql_mode.
	out.WriteString(" CHARACTER SET binary FIELDS TERMINATED BY 0x09 ESCAPED BY 0x5c LINES TERMINATED BY 0x0a (")
	var sets []string
	for i, n := range names {
		c, known := b.columns[n]
		if !known {
			return nil, 0, fmt.Errorf("column %s is not in the destination table", dump.QuoteIdent(n))
		}
		if i > 0 {
			out.WriteByte(',')
		}
		if numericText(c.DataType) {
			v := fmt.Sprintf("@c%d", i)
			out.WriteString(v)
			sets = append(sets, dump.QuoteIdent(n)+" = CAST("+v+" AS UNSIGNED)")
		} else {
			out.WriteString(dump.QuoteIdent(n))
		}
	}
	out.WriteByte(')')
	if len(sets) > 0 {
		out.WriteString(" SET ")
		out.WriteString(strings.Join(sets, ", "))
	}
	return out.Bytes(), len(names), nil
}

// splitIdentList splits "(`a`,`b“c`)" into its names.
func splitIdentList(list []byte) ([]string, bool) {
	if len(list) < 2 || list[0] != '(' || list[len(list)-1] != ')' {
		return nil, false
	}
	s := list[1 : len(list)-1]
	var names []string
	for len(s) > 0 {
		name, n, ok := readIdent(s)
		if !ok {
			return nil, false
		}
		names = append(names, name)
		s = s[n:]
		if len(s) == 0 {
			break
		}
		if s[0] != ',' {
			return nil, false
		}
		s = s[1:]
		if len(s) == 0 {
			return nil, false
		}
	}
	return names, len(names) > 0
}

// readIdent reads a backquoted identifier at the start of s: its name and how many bytes it took.
func readIdent(s []byte) (string, int, bool) {
	if len(s) < 2 || s[0] != '`' {
		return "", 0, false
	}
	var name []byte
	for i := 1; i < len(s); i++ {
		if s[i] != '`' {
			name = append(name, s[i])
			continue
		}
		if i+1 < len(s) && s[i+1] == '`' {
			name = append(name, '`')
			i++
			continue
		}
		return string(name), i + 1, true
	}
	return "", 0, false
}

// splitInsert splits `INSERT INTO <target> <cols> VALUES <tuples>` as dump writes it.
func splitInsert(stmt []byte) (target, cols, tuples []byte, ok bool) {
	const prefix = "INSERT INTO "
	if !bytes.HasPrefix(stmt, []byte(prefix)) {
		return nil, nil, nil, false
	}
	s := stmt[len(prefix):]
	_, n, ok := readIdent(s)
	if !ok || n >= len(s) || s[n] != ' ' {
		return nil, nil, nil, false
	}
	target, s = s[:n], s[n+1:]
	if len(s) == 0 || s[0] != '(' {
		return nil, nil, nil, false
	}
	// The column list: identifiers and commas up to the closing parenthesis.
	i := 1
	for i < len(s) && s[i] != ')' {
		if s[i] != '`' {
			if s[i] != ',' {
				return nil, nil, nil, false
			}
			i++
			continue
		}
		_, n, ok := readIdent(s[i:])
		if !ok {
			return nil, nil, nil, false
		}
		i += n
	}
	if i >= len(s) {
		return nil, nil, nil, false
	}
	cols, s = s[:i+1], s[i+1:]
	const values = " VALUES "
	if !bytes.HasPrefix(s, []byte(values)) {
		return nil, nil, nil, false
	}
	return target, cols, s[len(values):], true
}

// appendRows appends the tuples of an INSERT as LOAD DATA rows of ncols fields to dst. It returns
// the longer slice and the number of rows, or ok false (and dst unchanged in length) when a
// value is not in a form it knows to be equivalent.
func appendRows(dst, tuples []byte, ncols int) (out []byte, rows int64, ok bool) {
	start := len(dst)
	fail := func() ([]byte, int64, bool) { return dst[:start], 0, false }
	s := tuples
	i := 0
	for {
		if i >= len(s) || s[i] != '(' {
			return fail()
		}
		i++
		for col := 0; ; col++ {
			if col >= ncols {
				return fail()
			}
			if col > 0 {
				dst = append(dst, '\t')
			}
			if i >= len(s) {
				return fail()
			}
			switch c := s[i]; {
			case c == '\'':
				j := i + 1
			literal:
				for {
					// Copy the run of bytes that need nothing done.
					k := j
					for k < len(s) && !literalSpecial[s[k]] {
						k++
					}
					dst = append(dst, s[j:k]...)
					if k >= len(s) {
						return fail()
					}
					j = k + 1
					switch s[k] {
					case '\'':
						break literal
					case '\t':
						dst = append(dst, '\\', 't')
					case '\n':
						dst = append(dst, '\\', 'n')
					case 0:
						dst = append(dst, '\\', '0')
					case '\\':
						if j >= len(s) {
							return fail()
						}
						switch e := s[j]; e {
						case '0', 'n', 'r', '\\', 'Z', 't', 'b':
							dst = append(dst, '\\', e) // the same escape in LOAD DATA
						case '\'', '"':
							dst = append(dst, e)
						default:
							return fail() // SQL keeps \% and \_ as two bytes; LOAD DATA does not
						}
						j++
					}
				}
				i = j
			case c == 'N':
				if !bytes.HasPrefix(s[i:], []byte("NULL")) {
					return fail()
				}
				dst = append(dst, '\\', 'N')
				i += 4
			case c == '0' && i+1 < len(s) && s[i+1] == 'x': // 0X… is not a hex literal in SQL
				j := i + 2
				for j < len(s) && isHex(s[j]) {
					j++
				}
				digits := s[i+2 : j]
				if len(digits) == 0 || len(digits)%2 != 0 {
					return fail()
				}
				for k := 0; k < len(digits); k += 2 {
					dst = appendFieldByte(dst, unhex(digits[k])<<4|unhex(digits[k+1]))
				}
				i = j
			case c == '-' || c == '+' || c == '.' || (c >= '0' && c <= '9'):
				n := numberLen(s[i:])
				if n == 0 {
					return fail()
				}
				dst = append(dst, s[i:i+n]...)
				i += n
			default:
				return fail()
			}
			if i >= len(s) {
				return fail()
			}
			if s[i] == ',' {
				i++
				continue
			}
			if s[i] != ')' || col != ncols-1 {
				return fail()
			}
			i++
			break
		}
		dst = append(dst, '\n')
		rows++
		if i == len(s) {
			return dst, rows, true
		}
		if s[i] != ',' {
			return fail()
		}
		i++
	}
}

// literalSpecial marks the bytes of a quoted literal that end it or need a change in a field.
var literalSpecial = [256]bool{'\'': true, '\\': true, '\t': true, '\n': true, 0: true}

// appendFieldByte appends one byte of a field's value, escaped for LOAD DATA.
func appendFieldByte(dst []byte, b byte) []byte {
	switch b {
	case '\\':
		return append(dst, '\\', '\\')
	case '\t':
		return append(dst, '\\', 't')
	case '\n':
		return append(dst, '\\', 'n')
	case 0:
		return append(dst, '\\', '0')
	}
	return append(dst, b)
}

func isHex(b byte) bool {
	return (b >= '0' && b <= '9') || (b >= 'a' && b <= 'f') || (b >= 'A' && b <= 'F')
}

func unhex(b byte) byte {
	switch {
	case b >= 'a':
		return b - 'a' + 10
	case b >= 'A':
		return b - 'A' + 10
	}
	return b - '0'
}

// numberLen returns the length of the number literal at the start of s — [+-]digits[.digits]
// [e[+-]digits], at least one digit before the exponent — or 0 when there is none. A number
// followed by anything else than , or ) is refused by the caller, so 1-2 (an expression in SQL,
// a 1 with a warning in LOAD DATA) never passes.
func numberLen(s []byte) int {
	i := 0
	if i < len(s) && (s[i] == '-' || s[i] == '+') {
		i++
	}
	digits := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i, digits = i+1, digits+1
	}
	if i < len(s) && s[i] == '.' {
		i++
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i, digits = i+1, digits+1
		}
	}
	if digits == 0 {
		return 0
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		j := i + 1
		if j < len(s) && (s[j] == '-' || s[j] == '+') {
			j++
		}
		k := j
		for k < len(s) && s[k] >= '0' && s[k] <= '9' {
			k++
		}
		if k == j {
			return 0
		}
		i = k
	}
	return i
}

// bulkBatch collects the rows of consecutive INSERTs into one table and column list, and sends
// them with one LOAD DATA.
type bulkBatch struct {
	plan   *bulkPlan
	header []byte // LOAD DATA statement after the reader name, for the rows in buf
	buf    []byte
	rows   int64
	sqlLen int64 // bytes of SQL the rows came from, for transaction sizing
}

// add converts stmt into rows for the batch. It returns false when stmt is not an INSERT it can
// convert, or is one for another table or column list than the rows already in the batch (the
// caller then sends the batch and tries again, or executes stmt as SQL).
func (b *bulkBatch) add(stmt []byte) bool {
	target, cols, tuples, ok := splitInsert(stmt)
	if !ok {
		return false
	}
	header, ncols, err := b.plan.loadDataStatement(target, cols)
	if err != nil || (b.rows > 0 && !bytes.Equal(header, b.header)) {
		return false
	}
	out, rows, ok := appendRows(b.buf, tuples, ncols)
	if !ok {
		return false
	}
	b.buf, b.header = out, header
	b.rows += rows
	b.sqlLen += int64(len(stmt))
	return true
}

func (b *bulkBatch) reset() {
	b.buf, b.rows, b.sqlLen, b.header = b.buf[:0], 0, 0, nil
}

// execer is the part of a connection a batch needs.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

var readerSeq atomic.Int64

// send executes the batch's LOAD DATA on conn (one statement, so one transaction under
// autocommit) and checks that every row went in.
func (b *bulkBatch) send(ctx context.Context, conn execer) error {
	name := fmt.Sprintf("backupd-%d", readerSeq.Add(1))
	data := b.buf
	mysql.RegisterReaderHandler(name, func() io.Reader { return bytes.NewReader(data) })
	defer mysql.DeregisterReaderHandler(name)
	res, err := conn.ExecContext(ctx, "LOAD DATA LOCAL INFILE 'Reader::"+name+string(b.header))
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err == nil && n != b.rows {
		return fmt.Errorf("LOAD DATA stored %d of %d rows: the others were refused, most likely as duplicate keys", n, b.rows)
	}
	return nil
}

// rowSender sends LOAD DATA batches on one connection in the background, so the loader converts
// the next batch (client CPU) while the server stores the previous one (server CPU). At most one
// batch is in flight; the connection is the sender's until wait returns.
type rowSender struct {
	ctx       context.Context
	conn      execer
	key       string
	log       *slog.Logger
	cur, free *bulkBatch
	inflight  chan error
	sent      *bulkBatch

	// The session reads literals as the conversion assumes (see add).
	namesBinary, backslashEscapes bool
}

func newRowSender(ctx context.Context, conn execer, key string, plan *bulkPlan, log *slog.Logger) *rowSender {
	return &rowSender{ctx: ctx, conn: conn, key: key, log: log,
		cur: &bulkBatch{plan: plan, buf: getBatchBuffer()}, free: &bulkBatch{plan: plan, buf: getBatchBuffer()}}
}

// Batch buffers are reused from one object to the next: a fresh one per object meant faulting
// in some 20 MiB of new pages per object and the runtime returning them again in between.
var batchBuffers sync.Pool

func getBatchBuffer() []byte {
	if b, ok := batchBuffers.Get().(*[]byte); ok {
		return (*b)[:0]
	}
	return make([]byte, 0, DefaultTxBytes+DefaultTxBytes/4)
}

// release returns the batch buffers; the sender is not used afterwards.
func (s *rowSender) release() {
	s.wait()
	for _, b := range []*bulkBatch{s.cur, s.free} {
		if b != nil && b.buf != nil {
			buf := b.buf[:0]
			batchBuffers.Put(&buf)
			b.buf = nil
		}
	}
}

// add converts stmt into rows of the batch being collected. The object must have set up the
// session as dump writes it (FORMAT.md): SET NAMES binary, and a sql_mode without
// NO_BACKSLASH_ESCAPES. Until then, and after anything else, the statement is refused, so it
// is executed as written.
func (s *rowSender) add(stmt []byte) bool {
	return s.namesBinary && s.backslashEscapes && s.cur.add(stmt)
}

// observe notes a statement executed as SQL that changes how literals are read.
func (s *rowSender) observe(stmt []byte) {
	if !hasPrefixFold(stmt, "SET ") {
		return
	}
	if hasPrefixFold(stmt, "SET NAMES ") {
		s.namesBinary = bytes.EqualFold(bytes.TrimSpace(stmt), []byte("SET NAMES binary"))
		return
	}
	eq := bytes.IndexByte(stmt, '=')
	if eq < 0 {
		return
	}
	name := bytes.ToLower(stmt[:eq])
	switch {
	case bytes.Contains(name, []byte("sql_mode")):
		// Only one plain quoted mode is understood; anything else turns the conversion off.
		v := bytes.TrimSpace(stmt[eq+1:])
		upper := bytes.ToUpper(v)
		s.backslashEscapes = len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'' &&
			bytes.IndexByte(v[1:len(v)-1], '\'') < 0 && bytes.IndexByte(v, '\\') < 0 &&
			!bytes.Contains(upper, []byte("NO_BACKSLASH_ESCAPES")) && !bytes.Contains(upper, []byte("ANSI"))
	case bytes.Contains(name, []byte("character_set")) || bytes.Contains(name, []byte("collation_connection")):
		s.namesBinary = false
	}
}

// pending is how much SQL the rows collected so far came from.
func (s *rowSender) pending() int64 { return s.cur.sqlLen }

// flush starts sending the rows collected so far (after the batch before them is in); stmtNo
// numbers the statement that follows them, for an error message.
func (s *rowSender) flush(stmtNo int) error {
	if s.cur.rows == 0 {
		return nil
	}
	if err := s.wait(); err != nil {
		return err
	}
	b := s.cur
	s.cur, s.free = s.free, nil
	s.sent = b
	s.inflight = make(chan error, 1)
	go func() {
		err := b.send(s.ctx, s.conn)
		// A deadlock or lock wait timeout rolled the whole LOAD DATA back: send it again.
		for attempt := 1; err != nil; attempt++ {
			if !retryable(err) || attempt >= maxAttempts {
				break
			}
			s.log.Warn("sending a LOAD DATA batch again", "object", s.key, "attempt", attempt, "error", err)
			if err = ctxtime.Sleep(s.ctx, time.Duration(attempt*attempt)*50*time.Millisecond); err != nil {
				break
			}
			err = b.send(s.ctx, s.conn)
		}
		if err != nil {
			err = fmt.Errorf("rows of the statements before statement %d, sent with LOAD DATA: %w", stmtNo, err)
		} else {
			b.plan.sent += b.rows
		}
		s.inflight <- err
	}()
	return nil
}

// wait returns once no batch is in flight, with the error of the last one sent.
func (s *rowSender) wait() error {
	if s.inflight == nil {
		return nil
	}
	err := <-s.inflight
	s.inflight = nil
	s.sent.reset()
	s.free, s.sent = s.sent, nil
	return err
}
