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

// ReadStatements splits an object written by Run into the statements to execute, in order, as
// FORMAT.md describes: "-- " comment lines and blank lines between statements are skipped,
// "DELIMITER x" lines switch the delimiter and are not statements, and a statement ends at the
// first line that ends with the current delimiter. fn receives each statement without its
// delimiter, byte for byte as written (routine bodies keep their comments and line ends); the
// slice is valid only during the call. A loader executes the statements in one session.
func ReadStatements(r io.Reader, fn func(stmt []byte) error) error {
	br := bufio.NewReaderSize(r, 256<<10)
	delim := []byte(";")
	var stmt []byte
	inStmt := false
	lineNo := 0
	for {
		line, err := readLine(br)
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

// readLine returns the next line without its '\n', of any length; nil and io.EOF at the end.
func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		buf := append([]byte{}, line...)
		for err == bufio.ErrBufferFull {
			line, err = br.ReadSlice('\n')
			buf = append(buf, line...)
		}
		line = buf
	}
	if err == io.EOF && len(line) == 0 {
		return nil, io.EOF
	}
	if err != nil && err != io.EOF {
		return nil, err
	}
	return bytes.TrimSuffix(line, []byte("\n")), err
}
