package dump

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// ErrTruncatedObject is returned by ReadStatements when an object ends inside a statement.
var ErrTruncatedObject = errors.New("object ends inside a statement (truncated?)")

// MaxStatementBytes is the longest statement a dump can write, a format fact: a data statement
// is at most the source server's max_allowed_packet (a longer row fails the dump with
// RowTooLargeError), and MariaDB and MySQL cap max_allowed_packet at 1 GiB. A reader refuses
// anything longer before buffering it.
const MaxStatementBytes = 1 << 30

// MaxDefinitionBytes is the longest schema, post-data or users object a dump writes (the
// CREATE statement of one table, view, routine, trigger or event with its SET lines), a format
// fact the dump enforces: the largest definitions real servers hold (thousands of columns or
// partitions, generated routines) are a few MiB. A loader may read such an object whole.
const MaxDefinitionBytes = 64 << 20

// ErrStatementTooLong is returned by ReadStatementsLimit for a statement above its limit.
var ErrStatementTooLong = errors.New("statement longer than the format allows")

// ReadStatements splits an object written by Run into the statements to execute, in order, as
// FORMAT.md describes: "-- " comment lines and blank lines between statements are skipped,
// "DELIMITER x" lines switch the delimiter and are not statements, and a statement ends at the
// first line that ends with the current delimiter. fn receives each statement without its
// delimiter, byte for byte as written (routine bodies keep their comments and line ends); the
// slice is valid only during the call. A loader executes the statements in one session.
func ReadStatements(r io.Reader, fn func(stmt []byte) error) error {
	return ReadStatementsLimit(r, MaxStatementBytes, fn)
}

// ReadStatementsLimit is ReadStatements with statements (their lines and delimiter included)
// limited to max bytes: a longer one fails with ErrStatementTooLong once max bytes of it are
// read, so a hostile object cannot make the reader buffer more.
func ReadStatementsLimit(r io.Reader, max int, fn func(stmt []byte) error) error {
	br := bufio.NewReaderSize(r, 256<<10)
	delim := []byte(";")
	var stmt []byte
	inStmt := false
	lineNo := 0
	for {
		room := max
		if inStmt {
			room -= len(stmt) + 1
		}
		line, err := readLine(br, room)
		if errors.Is(err, ErrStatementTooLong) {
			return fmt.Errorf("line %d: %w (%d bytes at most)", lineNo+1, err, max)
		}
		if err == io.EOF && line == nil {
			if inStmt {
				return fmt.Errorf("line %d: %w", lineNo, ErrTruncatedObject)
			}
			return nil
		}
		if err != nil && err != io.EOF {
			return err
		}
		lineNo++
		if !inStmt {
			if len(bytes.TrimSpace(line)) == 0 || bytes.HasPrefix(line, []byte("-- ")) || bytes.Equal(line, []byte("--")) {
				continue
			}
			if len(line) > 10 && bytes.EqualFold(line[:10], []byte("DELIMITER ")) {
				d := bytes.TrimSpace(line[10:])
				if len(d) == 0 {
					return fmt.Errorf("line %d: DELIMITER without a delimiter", lineNo)
				}
				delim = append([]byte{}, d...)
				continue
			}
			stmt = stmt[:0]
		} else {
			stmt = append(stmt, '\n')
		}
		stmt = append(stmt, line...)
		inStmt = true
		if bytes.HasSuffix(line, delim) {
			if err := fn(stmt[:len(stmt)-len(delim)]); err != nil {
				return err
			}
			inStmt = false
			if cap(stmt) > 4<<20 {
				stmt = nil
			}
		}
		if err == io.EOF {
			if inStmt {
				return fmt.Errorf("line %d: %w", lineNo, ErrTruncatedObject)
			}
			return nil
		}
	}
}

// readLine returns the next line without its '\n', of up to max bytes (ErrStatementTooLong
// beyond); nil and io.EOF at the end.
func readLine(br *bufio.Reader, max int) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		buf := append([]byte{}, line...)
		for err == bufio.ErrBufferFull {
			if len(buf) > max {
				return nil, ErrStatementTooLong
			}
			line, err = br.ReadSlice('\n')
			buf = append(buf, line...)
		}
		line = buf
	}
	if len(bytes.TrimSuffix(line, []byte("\n"))) > max {
		return nil, ErrStatementTooLong
	}
	if err == io.EOF && len(line) == 0 {
		return nil, io.EOF
	}
	if err != nil && err != io.EOF {
		return nil, err
	}
	return bytes.TrimSuffix(line, []byte("\n")), err
}
