package dump

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"

	"github.com/cespare/xxhash/v2"
)

// TableSum is a table's exact row count and order-independent checksum (see FORMAT.md,
// "Checksums"). Two tables hold the same multiset of rows when both fields are equal.
type TableSum struct {
	Rows     int64  `json:"rows"`
	Checksum string `json:"checksum"`
}

// checksumPrefix names the checksum definition, so a future definition can never be compared
// with this one by mistake.
const checksumPrefix = "bk1:"

// seed2 is the seed of the second, independent row hash.
const seed2 = 0x9E3779B97F4A7C15

// sumAcc accumulates row hashes. Addition modulo 2^64 is commutative (order-independent) and,
// unlike XOR, does not cancel duplicate rows.
type sumAcc struct {
	rows   int64
	s1, s2 uint64
}

func (a *sumAcc) add(b sumAcc) {
	a.rows += b.rows
	a.s1 += b.s1
	a.s2 += b.s2
}

func (a sumAcc) sum() TableSum {
	return TableSum{Rows: a.rows, Checksum: fmt.Sprintf("%s%016x%016x", checksumPrefix, a.s1, a.s2)}
}

// rowHasher hashes rows read with selectColumns.
type rowHasher struct {
	buf []byte
	d2  *xxhash.Digest
}

func newRowHasher() *rowHasher {
	return &rowHasher{buf: make([]byte, 0, 512), d2: xxhash.NewWithSeed(seed2)}
}

// add hashes one row into acc: the canonical encoding of every column, in ordinal order, hashed
// with XXH64 under two seeds.
func (h *rowHasher) add(acc *sumAcc, dest []driver.Value, cols []column) error {
	buf := h.buf[:0]
	var err error
	for i := range cols {
		if buf, err = appendCanonical(buf, dest[i], &cols[i]); err != nil {
			return err
		}
	}
	h.d2.ResetWithSeed(seed2)
	h.d2.Write(buf)
	acc.rows++
	acc.s1 += xxhash.Sum64(buf)
	acc.s2 += h.d2.Sum64()
	if cap(buf) > 1<<20 {
		buf = nil // don't keep a huge row's buffer for the rest of the table
	}
	h.buf = buf
	return nil
}

// DB is what Checksum reads through: a *sql.DB (a connection is taken from its pool for the
// call) or a *sql.Conn (its session settings are changed for the call and then restored).
type DB interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// Checksum recomputes a table's row count and checksum on any server, reading it exactly as
// Run does (same column list, same session settings, same encoding), so for the same rows it
// returns what Run recorded in Result. The table may live in a database of another name than at
// dump time. It reads the whole table once; run it on a table nobody is writing to.
func Checksum(ctx context.Context, db DB, database, table string) (TableSum, error) {
	var conn *sql.Conn
	switch x := db.(type) {
	case *sql.DB:
		c, err := x.Conn(ctx)
		if err != nil {
			return TableSum{}, fmt.Errorf("checksum %s: connect: %w", qualified(database, table), err)
		}
		defer c.Close()
		conn = c
		// The pool's connection goes back with our session settings; make sure it is not reused.
		defer conn.Raw(func(any) error { return driver.ErrBadConn })
	case *sql.Conn:
		conn = x
		restore, err := saveSession(ctx, conn)
		if err != nil {
			return TableSum{}, fmt.Errorf("checksum %s: %w", qualified(database, table), err)
		}
		defer restore()
	default:
		return TableSum{}, fmt.Errorf("checksum %s: need a *sql.DB or *sql.Conn, got %T", qualified(database, table), db)
	}
	for _, s := range canonicalSession {
		if _, err := conn.ExecContext(ctx, s); err != nil {
			return TableSum{}, fmt.Errorf("checksum %s: set up session (%s): %w", qualified(database, table), s, err)
		}
	}
	cols, err := loadTableColumns(ctx, conn, database, table)
	if err != nil {
		return TableSum{}, fmt.Errorf("checksum: %w", err)
	}
	sum, err := checksumQuery(ctx, conn, "SELECT "+selectColumns(cols)+" FROM "+qualified(database, table), cols)
	if err != nil {
		return TableSum{}, fmt.Errorf("checksum %s: %w", qualified(database, table), err)
	}
	return sum, nil
}

func checksumQuery(ctx context.Context, conn *sql.Conn, query string, cols []column) (TableSum, error) {
	var acc sumAcc
	h := newRowHasher()
	err := rawQuery(ctx, conn, query, func(dest []driver.Value) error {
		return h.add(&acc, dest, cols)
	})
	if err != nil {
		return TableSum{}, err
	}
	return acc.sum(), nil
}

// saveSession remembers the session settings Checksum changes and returns a function that
// restores them.
func saveSession(ctx context.Context, conn *sql.Conn) (func(), error) {
	var tz, mode, cs, csr, coll sql.NullString
	err := conn.QueryRowContext(ctx, "SELECT @@session.time_zone, @@session.sql_mode, @@session.character_set_client, @@session.character_set_results, @@session.collation_connection").
		Scan(&tz, &mode, &cs, &csr, &coll)
	if err != nil {
		return nil, fmt.Errorf("read session settings: %w", err)
	}
	return func() {
		ctx := context.WithoutCancel(ctx)
		results := "NULL"
		if csr.Valid {
			results = quoteString(csr.String)
		}
		for _, s := range []string{
			"SET SESSION time_zone = " + quoteString(tz.String),
			"SET SESSION sql_mode = " + quoteString(mode.String),
			"SET SESSION character_set_client = " + quoteString(cs.String),
			"SET SESSION character_set_results = " + results,
			"SET SESSION collation_connection = " + quoteString(coll.String),
		} {
			if _, err := conn.ExecContext(ctx, s); err != nil {
				// The caller's connection is in an unknown state; make sure it is not reused.
				_ = conn.Raw(func(any) error { return driver.ErrBadConn })
				return
			}
		}
	}, nil
}
