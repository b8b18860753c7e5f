package dump

import (
	"bufio"
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"

	"github.com/go-sql-driver/mysql"

	"github.com/backupd/backupd/internal/mysqldsn"
)

// Server flavors.
const (
	FlavorMariaDB = "mariadb"
	FlavorMySQL   = "mysql"
)

// openDB opens a pool for the DSN with the client settings the dump relies on: no default
// database (every name is qualified), no time parsing and no client-side interpolation, so values
// arrive as the server's text.
func openDB(dsn string) (*sql.DB, *mysql.Config, error) {
	cfg, err := mysqldsn.Parse(dsn)
	if errors.Is(err, mysqldsn.ErrAllowAllFiles) {
		return nil, nil, err
	}
	if err != nil {
		return nil, nil, fmt.Errorf("parse DSN: %w", errors.New(RedactDSNError(dsn, err)))
	}
	cfg.DBName = ""
	cfg.ParseTime = false
	cfg.InterpolateParams = false
	cfg.MultiStatements = false
	cfg.ClientFoundRows = false
	// Session settings are made explicitly per connection; drop DSN params that would fight them.
	for _, k := range []string{"time_zone", "sql_mode", "charset", "character_set_results", "collation_connection"} {
		delete(cfg.Params, k)
	}
	// The driver reads the socket 4 KiB at a time; a dump streams gigabytes, so read through a
	// larger buffer (one read system call per 256 KiB instead of per 4 KiB).
	cfg.DialFunc = dialBuffered
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("open connector: %w", err)
	}
	return sql.OpenDB(connector), cfg, nil
}

// serverInfo is what the dump learns about the server once.
type serverInfo struct {
	Flavor      string
	Version     string
	Major       int
	Minor       int
	Host        string
	LogBin      bool
	MaxPacket   int64
	VersionFull string
}

func queryServerInfo(ctx context.Context, q querier) (serverInfo, error) {
	var s serverInfo
	var logBin sql.NullString
	err := q.QueryRowContext(ctx, "SELECT VERSION(), @@hostname, @@log_bin, @@max_allowed_packet").
		Scan(&s.VersionFull, &s.Host, &logBin, &s.MaxPacket)
	if err != nil {
		return s, fmt.Errorf("read server version: %w", err)
	}
	s.Flavor = FlavorMySQL
	if strings.Contains(strings.ToLower(s.VersionFull), "mariadb") {
		s.Flavor = FlavorMariaDB
	}
	s.Version = s.VersionFull
	if i := strings.IndexByte(s.Version, '-'); i >= 0 {
		s.Version = s.Version[:i]
	}
	parts := strings.SplitN(s.Version, ".", 3)
	if len(parts) >= 2 {
		s.Major, _ = strconv.Atoi(parts[0])
		s.Minor, _ = strconv.Atoi(parts[1])
	}
	s.LogBin = logBin.Valid && (logBin.String == "1" || strings.EqualFold(logBin.String, "ON"))
	return s, nil
}

func (s serverInfo) atLeast(major, minor int) bool {
	return s.Major > major || (s.Major == major && s.Minor >= minor)
}

// querier is the subset of *sql.Conn used for metadata.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// canonicalSession is the fixed session every read runs under: the same on the dump side and
// in Checksum, so both see identical values. Strings arrive as stored bytes (binary), temporal
// values in UTC, and sql_mode is neutral (no PAD_CHAR_TO_FULL_LENGTH, no ANSI_QUOTES).
var canonicalSession = []string{
	"SET NAMES binary",
	"SET SESSION time_zone = '+00:00'",
	"SET SESSION sql_mode = ''",
}

// setupSession prepares a connection for reading: the canonical session plus generous network
// timeouts (a slow upload must not make the server drop a half-read result) and no statement
// time limit.
func setupSession(ctx context.Context, conn querier, flavor string) error {
	stmts := append([]string{}, canonicalSession...)
	stmts = append(stmts,
		"SET SESSION net_write_timeout = 3600",
		"SET SESSION net_read_timeout = 3600",
		"SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
	)
	if flavor == FlavorMariaDB {
		stmts = append(stmts, "SET SESSION max_statement_time = 0")
	} else {
		stmts = append(stmts, "SET SESSION max_execution_time = 0")
	}
	for _, s := range stmts {
		if _, err := conn.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("set up session (%s): %w", s, err)
		}
	}
	return nil
}

// badConn makes database/sql discard the connection (rather than drain a half-read result
// set, which could mean reading gigabytes) while keeping the real error.
type badConn struct{ err error }

func (e badConn) Error() string        { return e.err.Error() }
func (e badConn) Unwrap() error        { return e.err }
func (e badConn) Is(target error) bool { return target == driver.ErrBadConn }

// rawQuery runs a text-protocol query and calls fn for every row. The values are the driver's
// (int64, uint64, float64 or []byte); byte slices are valid only until fn returns. Reading
// through the driver directly avoids database/sql's per-value conversions on the hot path.
func rawQuery(ctx context.Context, conn *sql.Conn, query string, fn func(dest []driver.Value) error) error {
	qctx, cancel := context.WithCancel(ctx)
	defer cancel()
	return conn.Raw(func(dc any) error {
		qc, ok := dc.(driver.QueryerContext)
		if !ok {
			return errors.New("driver connection does not support queries")
		}
		rows, err := qc.QueryContext(qctx, query, nil)
		if err != nil {
			return err
		}
		dest := make([]driver.Value, len(rows.Columns()))
		for {
			err := rows.Next(dest)
			if err == io.EOF {
				return rows.Close()
			}
			if err == nil {
				err = fn(dest)
			}
			if err != nil {
				// Stop the server from sending the rest: cancel the query, which closes the
				// connection, and tell database/sql not to reuse it.
				cancel()
				if ctx.Err() != nil {
					err = context.Cause(ctx)
				}
				return badConn{err}
			}
		}
	})
}

// mysqlErrorNumber returns the server error number of err, or 0.
func mysqlErrorNumber(err error) uint16 {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number
	}
	return 0
}

// Server error numbers the dump reacts to.
const (
	errLockWaitTimeout     = 1205 // ER_LOCK_WAIT_TIMEOUT
	errSpecificAccess      = 1227 // ER_SPECIFIC_ACCESS_DENIED_ERROR: needs RELOAD etc.
	errDBAccessDenied      = 1044
	errTableAccessDenied   = 1142
	errParse               = 1064
	errCommandNotSupported = 1235
)

// readBufferSize is the socket read buffer of every dump connection.
const readBufferSize = 256 << 10

func dialBuffered(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer // TCP keep-alive on by default
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return &bufferedConn{Conn: c, r: bufio.NewReaderSize(c, readBufferSize)}, nil
}

// bufferedConn is a net.Conn whose reads go through a buffer; deadlines and writes go to the
// connection itself.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }
