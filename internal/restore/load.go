package restore

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync/atomic"
	"unicode/utf8"

	"github.com/backupd/backupd/internal/dump"
)

// DefaultTxBytes is how much INSERT text one loader transaction holds before it commits: large
// enough that commits (a redo log flush each) are rare, small enough that the undo log and a
// rollback stay cheap.
const DefaultTxBytes = 16 << 20

// loadStatements executes the statements of one object on conn, as FORMAT.md describes: split
// with dump.ReadStatements and sent unchanged. With txBytes > 0, runs of INSERTs are grouped into
// transactions of about txBytes; any other statement commits first. transform, when not nil, may
// replace a statement (deferred indexes); counted is advanced by the plain bytes read.
func loadStatements(ctx context.Context, conn *loaderConn, key string, r io.Reader, txBytes int64, counted *atomic.Int64, transform func([]byte) []byte) error {
	cr := &countingReader{r: r, n: counted}
	inTx := false
	var pending int64
	n := 0
	exec := func(q string) error {
		_, err := conn.ExecContext(ctx, q)
		return err
	}
	err := dump.ReadStatements(cr, func(stmt []byte) error {
		n++
		if transform != nil {
			stmt = transform(stmt)
		}
		insert := txBytes > 0 && hasPrefixFold(stmt, "INSERT ")
		if inTx && !insert {
			if err := exec("COMMIT"); err != nil {
				return fmt.Errorf("commit: %w", err)
			}
			inTx, pending = false, 0
		}
		if insert && !inTx {
			if err := exec("BEGIN"); err != nil {
				return fmt.Errorf("begin: %w", err)
			}
			inTx = true
		}
		if err := exec(string(stmt)); err != nil {
			return fmt.Errorf("statement %d (%s): %w", n, excerpt(stmt), err)
		}
		if inTx {
			pending += int64(len(stmt))
			if pending >= txBytes {
				if err := exec("COMMIT"); err != nil {
					return fmt.Errorf("commit: %w", err)
				}
				inTx, pending = false, 0
			}
		}
		return nil
	})
	if err == nil && inTx {
		if err = exec("COMMIT"); err != nil {
			err = fmt.Errorf("commit: %w", err)
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		return fmt.Errorf("load %s: %w", key, err)
	}
	return nil
}

func hasPrefixFold(b []byte, prefix string) bool {
	return len(b) >= len(prefix) && bytes.EqualFold(b[:len(prefix)], []byte(prefix))
}

// excerpt is the start of a statement for an error message: enough to recognise it, never a
// whole row of data.
func excerpt(stmt []byte) string {
	const max = 80
	s := stmt
	if len(s) > max {
		s = s[:max]
		for len(s) > 0 && !utf8.Valid(s) {
			s = s[:len(s)-1]
		}
	}
	out := []rune(string(bytes.ReplaceAll(s, []byte("\n"), []byte(" "))))
	for i, r := range out {
		if r < 0x20 || r == 0x7f {
			out[i] = '?'
		}
	}
	if len(stmt) > max {
		return string(out) + "…"
	}
	return string(out)
}

type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if c.n != nil {
		c.n.Add(int64(n))
	}
	return n, err
}
