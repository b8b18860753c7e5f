package restore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/go-sql-driver/mysql"

	"github.com/backupd/backupd/internal/countio"
	"github.com/backupd/backupd/internal/ctxtime"
	"github.com/backupd/backupd/internal/dump"
)

// DefaultTxBytes is how much INSERT text one loader transaction holds before it commits: large
// enough that commits (a redo log flush each) are rare, small enough that the undo log, a
// rollback and the copy kept for a replay (below) stay cheap.
const DefaultTxBytes = 8 << 20

// maxAttempts bounds how often one transaction is replayed after a deadlock or lock wait
// timeout.
const maxAttempts = 6

// loadStatements executes the statements of one object on conn, as FORMAT.md describes: split
// with dump.ReadStatements and sent unchanged. With txBytes > 0, runs of INSERTs are grouped into
// transactions of about txBytes; any other statement commits first. Two loaders filling the same
// table can deadlock on its secondary indexes; InnoDB then rolls one transaction back, and it
// is replayed from a copy of its statements. transform, when not nil, may replace a statement
// (deferred indexes); counted is advanced by the plain bytes read. With bulk, the INSERTs it can
// convert go in as LOAD DATA batches of about txBytes of SQL each (loaddata.go). check, when not
// nil, sees every statement before anything is done with it (allow.go), and statements are at
// most maxStmt bytes.
func loadStatements(ctx context.Context, conn *loaderConn, key string, r io.Reader, check func([]byte) error, maxStmt int, txBytes int64, counted *atomic.Int64, transform func([]byte) []byte, bulk *bulkPlan, log *slog.Logger) error {
	cr := &countio.Reader{R: r}
	if counted != nil {
		cr.Add = func(n int64) { counted.Add(n) }
	}
	inTx := false
	var pending int64
	var batch [][]byte // the open transaction's statements, for a replay
	n := 0
	exec := func(q string) error {
		_, err := conn.ExecContext(ctx, q)
		return err
	}
	commit := func() error {
		if err := exec("COMMIT"); err != nil {
			return fmt.Errorf("commit: %w", err)
		}
		inTx, pending, batch = false, 0, batch[:0]
		return nil
	}
	// restart rolls the open transaction back and runs its statements again.
	restart := func() error {
		if !inTx {
			return nil
		}
		exec("ROLLBACK")
		if err := exec("BEGIN"); err != nil {
			return err
		}
		for _, s := range batch {
			if err := exec(string(s)); err != nil {
				return err
			}
		}
		return nil
	}
	run := func(stmt []byte) error {
		err := exec(string(stmt))
		for attempt := 1; err != nil; attempt++ {
			if !retryable(err) || attempt >= maxAttempts {
				return err
			}
			log.Warn("replaying a transaction", "object", key, "attempt", attempt, "error", err)
			if err := ctxtime.Sleep(ctx, time.Duration(attempt*attempt)*50*time.Millisecond); err != nil {
				return err
			}
			if err = restart(); err == nil {
				err = exec(string(stmt))
			}
		}
		return nil
	}
	var rows *rowSender
	if bulk != nil && txBytes > 0 {
		rows = newRowSender(ctx, conn, key, bulk, log)
		defer rows.release()
	}
	err := dump.ReadStatementsLimit(cr, maxStmt, func(stmt []byte) error {
		n++
		if check != nil {
			if err := check(stmt); err != nil {
				return err
			}
		}
		if transform != nil {
			stmt = transform(stmt)
		}
		if rows != nil {
			// Rows collected for LOAD DATA: an INSERT transaction still open ends first, so the
			// batch is sent (later, on this connection) outside it.
			added := func() error {
				if inTx {
					if err := commit(); err != nil {
						return err
					}
				}
				if rows.pending() >= txBytes {
					return rows.flush(n)
				}
				return nil
			}
			if rows.add(stmt) {
				return added()
			}
			// Another table or column list, or not convertible: send what is collected, then
			// try this statement in a batch of its own before executing it as written.
			if err := rows.flush(n); err != nil {
				return err
			}
			if rows.add(stmt) {
				return added()
			}
			if err := rows.wait(); err != nil {
				return err
			}
			rows.observe(stmt)
		}
		insert := txBytes > 0 && hasPrefixFold(stmt, "INSERT ")
		if inTx && !insert {
			if err := commit(); err != nil {
				return err
			}
		}
		if insert && !inTx {
			if err := exec("BEGIN"); err != nil {
				return fmt.Errorf("begin: %w", err)
			}
			inTx = true
		}
		if err := run(stmt); err != nil {
			return fmt.Errorf("statement %d (%s): %w", n, excerpt(stmt), err)
		}
		if inTx {
			batch = append(batch, append([]byte(nil), stmt...))
			pending += int64(len(stmt))
			if pending >= txBytes {
				return commit()
			}
		}
		return nil
	})
	if err == nil && rows != nil {
		if err = rows.flush(n); err == nil {
			err = rows.wait()
		}
	}
	if err == nil && inTx {
		err = commit()
	}
	if err != nil {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		if errors.Is(err, ErrRefused) {
			return err // names the object already
		}
		return fmt.Errorf("load %s: %w", key, err)
	}
	return nil
}

// retryable reports a failure that rolling back and trying again resolves: a deadlock (InnoDB
// rolled the transaction back) or a lock wait timeout.
func retryable(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && (me.Number == 1213 || me.Number == 1205)
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
