// Package shop generates the "shop" benchmark database: a Laravel-like schema of users, orders
// and events whose values exercise what a dump must carry (non-ASCII names, NULLs, quotes,
// newlines and backslashes in text, JSON, DECIMAL, ENUM, BINARY(32) digests, DATETIME(6) and
// TIMESTAMP(3)). The benchmark figures in docs/ and DESIGN.md were measured on it, so its
// tables, column types, indexes and row counts per scale must not change; scale 1 is 0.5 M
// users, 4 M orders and 1.5 M events (about 1.7 GB as SQL text).
//
// With seed 0 (the default) every value is the one the original SQL generator produced (a
// function of the row's id alone, in UTC), so a database made by either compares equal; any
// other seed derives each row's values from a pseudo-random number instead, the same for the
// same seed. Each table's rows go in through one LOAD DATA LOCAL INFILE from an in-process
// reader, the three tables at once on connections of their own.
package shop

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"
)

// Counts are the rows of each table.
type Counts struct {
	Users, Orders, Events int64
}

// CountsFor returns the row counts at scale: int(scale × 500000, 4000000, 1500000), at least 1
// each, computed in float64 exactly as the original generator's awk did.
func CountsFor(scale float64) Counts {
	n := func(base float64) int64 {
		v := int64(scale * base)
		if v < 1 {
			v = 1
		}
		return v
	}
	return Counts{Users: n(500000), Orders: n(4000000), Events: n(1500000)}
}

// Options say what to generate where.
type Options struct {
	DSN      string  // a go-sql-driver DSN of a MariaDB server (its user needs CREATE and DROP)
	Database string  // dropped first if it exists, then created
	Scale    float64 // > 0; see CountsFor
	Seed     uint64  // 0: the original generator's values
}

// schema is the original generator's, index for index, so SHOW CREATE TABLE is the same.
var schema = []string{
	`CREATE TABLE users (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  name VARCHAR(255) NOT NULL,
  email VARCHAR(255) NOT NULL,
  email_verified_at TIMESTAMP NULL,
  password VARCHAR(255) NOT NULL,
  remember_token VARCHAR(100) NULL,
  created_at TIMESTAMP NULL,
  updated_at TIMESTAMP NULL,
  UNIQUE KEY users_email_unique (email)
) ENGINE=InnoDB`,
	`CREATE TABLE orders (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  user_id BIGINT UNSIGNED NOT NULL,
  status ENUM('pending','paid','shipped','refunded') NOT NULL,
  total DECIMAL(12,2) NOT NULL,
  currency CHAR(3) NOT NULL,
  note TEXT NULL,
  meta JSON NULL,
  created_at DATETIME(6) NOT NULL,
  KEY orders_user_id (user_id),
  KEY orders_created (created_at)
) ENGINE=InnoDB`,
	`CREATE TABLE events (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  subject_type VARCHAR(255) NOT NULL,
  subject_id BIGINT UNSIGNED NOT NULL,
  payload LONGTEXT NOT NULL,
  digest BINARY(32) NOT NULL,
  happened_at TIMESTAMP(3) NOT NULL
) ENGINE=InnoDB`,
}

// session is set on every loading connection. With unique and foreign-key checks off, one
// statement into an empty InnoDB table takes MariaDB's bulk path (10.6+): no undo log per row,
// and the secondary indexes are built by sorting once the rows are in, which is what adding
// them after the load would do, without a second pass. Measured here at scale 0.1, that used
// the least server CPU of: one statement per table with the indexes in CREATE TABLE, the same
// with the indexes added afterwards, and 50 000-row statements on four connections. The rows
// are unique by construction and there are no foreign keys. Timestamps are written in UTC
// whatever the server's time zone.
var session = []string{
	"SET SESSION unique_checks = 0",
	"SET SESSION foreign_key_checks = 0",
	"SET SESSION time_zone = '+00:00'",
}

// Generate creates opts.Database and fills it; it returns the rows of each table.
func Generate(ctx context.Context, opts Options) (Counts, error) {
	if opts.Database == "" {
		return Counts{}, errors.New("generate shop: no database name given")
	}
	if !(opts.Scale > 0) || math.IsInf(opts.Scale, 0) {
		return Counts{}, fmt.Errorf("generate shop: scale %v: want a number above 0 (1 = 4 M orders)", opts.Scale)
	}
	counts := CountsFor(opts.Scale)
	cfg, err := mysql.ParseDSN(opts.DSN)
	if err != nil {
		return Counts{}, fmt.Errorf("generate shop: parse DSN: %w", err)
	}
	cfg.DBName = "" // it does not exist yet; statements name it
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		return Counts{}, fmt.Errorf("generate shop: %w", err)
	}
	defer db.Close()

	q := quoteIdent(opts.Database)
	stmts := append([]string{
		"DROP DATABASE IF EXISTS " + q,
		"CREATE DATABASE " + q + " CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
		"USE " + q,
	}, schema...)
	if err := func() error {
		conn, err := db.Conn(ctx)
		if err != nil {
			return fmt.Errorf("generate shop: connect: %w", err)
		}
		defer conn.Close()
		for _, s := range stmts {
			if _, err := conn.ExecContext(ctx, s); err != nil {
				return fmt.Errorf("generate shop: %s: %w", firstLine(s), err)
			}
		}
		return nil
	}(); err != nil {
		return Counts{}, err
	}

	g := gen{seed: opts.Seed, c: counts}
	tables := []table{
		{q + ".orders", "id,user_id,status,total,currency,note,meta,created_at", g.order, counts.Orders},
		{q + ".events", "id,subject_type,subject_id,payload,digest,happened_at", g.event, counts.Events},
		{q + ".users", "id,name,email,email_verified_at,password,remember_token,created_at,updated_at", g.user, counts.Users},
	}
	// One connection per table, all at once; the first error cancels the others.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make([]error, len(tables))
	var wg sync.WaitGroup
	for i, t := range tables {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if errs[i] = load(ctx, db, t); errs[i] != nil {
				cancel()
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		// The table that failed first says why; the others only say they were cancelled.
		if err != nil && !errors.Is(err, context.Canceled) {
			return Counts{}, err
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Counts{}, err
	}
	return counts, nil
}

type table struct {
	name, cols string
	row        func(b []byte, id uint64) []byte
	rows       int64
}

var readerSeq atomic.Uint64

// load sends all rows of t in one LOAD DATA statement, on a connection of its own.
func load(ctx context.Context, db *sql.DB, t table) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("generate shop: connect: %w", err)
	}
	defer conn.Close()
	for _, s := range session {
		if _, err := conn.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("generate shop: %s: %w", s, err)
		}
	}
	name := "shop-" + strconv.FormatUint(readerSeq.Add(1), 10)
	mysql.RegisterReaderHandler(name, func() io.Reader { return &rowReader{row: t.row, next: 1, end: uint64(t.rows)} })
	defer mysql.DeregisterReaderHandler(name)
	// CHARACTER SET binary: every field is stored as the bytes sent (the digest is not UTF-8).
	res, err := conn.ExecContext(ctx, "LOAD DATA LOCAL INFILE 'Reader::"+name+"' INTO TABLE "+t.name+
		" CHARACTER SET binary FIELDS TERMINATED BY 0x09 ESCAPED BY 0x5c LINES TERMINATED BY 0x0a ("+t.cols+")")
	if err != nil {
		// 1148 (MariaDB) and 3948 (MySQL 8): the server refuses LOAD DATA LOCAL.
		var me *mysql.MySQLError
		if errors.As(err, &me) && (me.Number == 1148 || me.Number == 3948) {
			return fmt.Errorf("generate shop: load %s: %w (the server must allow LOAD DATA LOCAL INFILE: SET GLOBAL local_infile = 1)", t.name, err)
		}
		return fmt.Errorf("generate shop: load %s: %w", t.name, err)
	}
	// LOAD DATA LOCAL skips rows it cannot store instead of failing; a short count is an error.
	if got, err := res.RowsAffected(); err != nil || got != t.rows {
		return fmt.Errorf("generate shop: load %s: the server stored %d rows, want %d (%v)", t.name, got, t.rows, err)
	}
	return nil
}

// rowReader produces LOAD DATA text for the rows next..end on demand.
type rowReader struct {
	row       func(b []byte, id uint64) []byte
	next, end uint64
	buf       []byte
	off       int
}

func (r *rowReader) Read(p []byte) (int, error) {
	for r.off == len(r.buf) {
		if r.next > r.end {
			return 0, io.EOF
		}
		r.buf, r.off = r.buf[:0], 0
		for r.next <= r.end && len(r.buf) < 256<<10 {
			r.buf = r.row(r.buf, r.next)
			r.next++
		}
	}
	n := copy(p, r.buf[r.off:])
	r.off += n
	return n, nil
}

// gen computes the rows' values.
type gen struct {
	seed uint64
	c    Counts
}

// num is the number a row's values derive from: its id for seed 0 (the original generator's
// seq), else a bijective mix of id and seed, so that values like the e-mail stay unique.
func (g gen) num(id uint64) uint64 {
	if g.seed == 0 {
		return id
	}
	x := id + g.seed*0x9E3779B97F4A7C15
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9
	x = (x ^ (x >> 27)) * 0x94D049BB133111EB
	return x ^ (x >> 31)
}

// secs is the seconds offset a timestamp derives from v: v itself for seed 0, else v bounded
// so that every timestamp stays within TIMESTAMP's range.
func (g gen) secs(v uint64) int64 {
	if g.seed == 0 {
		return int64(v)
	}
	return int64(v % 100_000_000)
}

const (
	fieldSep = '\t'
	rowSep   = '\n'
)

var null = []byte(`\N`)

func (g gen) user(b []byte, id uint64) []byte {
	v := g.num(id)
	s := strconv.FormatUint(v, 10)
	b = strconv.AppendUint(b, id, 10)
	b = append(b, fieldSep)
	b = append(b, "User "+s+" Ñandú ✓"...)
	b = append(b, fieldSep)
	b = append(b, "user"+s+"@example.com"...)
	b = append(b, fieldSep)
	if v%3 == 0 {
		b = append(b, null...)
	} else {
		b = appendUnix(b, 1600000000+g.secs(v))
	}
	b = append(b, fieldSep)
	b = append(b, "$2y$10$"...)
	b = appendSHA256Hex(b, s)
	b = append(b, fieldSep)
	if v%2 == 0 {
		b = append(b, null...)
	} else {
		b = appendMD5Hex(b, s) // LEFT(MD5(seq), 60): all 32 hex digits
	}
	b = append(b, fieldSep)
	b = appendUnix(b, 1500000000+g.secs(v))
	b = append(b, fieldSep)
	b = appendUnix(b, 1600000000+g.secs(v))
	return append(b, rowSep)
}

var statuses = [4]string{"pending", "paid", "shipped", "refunded"}

func (g gen) order(b []byte, id uint64) []byte {
	v := g.num(id)
	s := strconv.FormatUint(v, 10)
	users := uint64(g.c.Users)
	b = strconv.AppendUint(b, id, 10)
	b = append(b, fieldSep)
	b = strconv.AppendUint(b, 1+(v%users)*7919%users, 10) // 1+(seq*7919)%users without overflow
	b = append(b, fieldSep)
	b = append(b, statuses[v%4]...)
	b = append(b, fieldSep)
	cents := v % 100000
	b = strconv.AppendUint(b, cents/100, 10)
	b = append(b, '.', byte('0'+cents%100/10), byte('0'+cents%10))
	b = append(b, fieldSep)
	b = append(b, "EUR"...)
	b = append(b, fieldSep)
	if v%5 == 0 {
		b = append(b, null...)
	} else {
		b = appendEscaped(b, "Note "+s+" with 'quotes' and \"double\" and \\backslash\\ and newline\n and tab\t")
	}
	b = append(b, fieldSep)
	// JSON_OBJECT's own spelling on MariaDB: a space after every colon and comma.
	b = append(b, `{"ip": "10.0.`...)
	b = strconv.AppendUint(b, v%256, 10)
	b = append(b, '.')
	b = strconv.AppendUint(b, v%250, 10)
	b = append(b, `", "ua": "Mozilla/5.0", "n": `...)
	b = append(b, s...)
	b = append(b, '}')
	b = append(b, fieldSep)
	b = appendUnix(b, 1600000000+3*g.secs(v))
	b = append(b, ".123456"...)
	return append(b, rowSep)
}

func (g gen) event(b []byte, id uint64) []byte {
	v := g.num(id)
	s := strconv.FormatUint(v, 10)
	b = strconv.AppendUint(b, id, 10)
	b = append(b, fieldSep)
	b = appendEscaped(b, `App\Models\Order`)
	b = append(b, fieldSep)
	b = strconv.AppendUint(b, v%uint64(g.c.Orders), 10)
	b = append(b, fieldSep)
	var m [md5.Size * 2]byte
	sum := md5.Sum([]byte(s))
	hex.Encode(m[:], sum[:])
	for range 8 {
		b = append(b, `{"k":`...)
		b = append(b, s...)
		b = append(b, `,"v":"`...)
		b = append(b, m[:]...)
		b = append(b, `"}`...)
	}
	b = append(b, fieldSep)
	d := sha256.Sum256([]byte(s))
	b = appendEscaped(b, string(d[:]))
	b = append(b, fieldSep)
	b = appendUnix(b, 1600000000+g.secs(v))
	return append(b, rowSep)
}

func appendUnix(b []byte, sec int64) []byte {
	return time.Unix(sec, 0).UTC().AppendFormat(b, "2006-01-02 15:04:05")
}

func appendSHA256Hex(b []byte, s string) []byte {
	sum := sha256.Sum256([]byte(s))
	return hex.AppendEncode(b, sum[:])
}

func appendMD5Hex(b []byte, s string) []byte {
	sum := md5.Sum([]byte(s))
	return hex.AppendEncode(b, sum[:])
}

// appendEscaped appends s as one LOAD DATA field (ESCAPED BY '\').
func appendEscaped(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			b = append(b, '\\', '\\')
		case '\t':
			b = append(b, '\\', 't')
		case '\n':
			b = append(b, '\\', 'n')
		case 0:
			b = append(b, '\\', '0')
		default:
			b = append(b, c)
		}
	}
	return b
}

func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
