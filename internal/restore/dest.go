package restore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/backupd/backupd/internal/dump"
	"github.com/backupd/backupd/internal/humanize"
	"github.com/backupd/backupd/internal/mysqldsn"
)

// Server is what the restore learned about the destination server.
type Server struct {
	Address          string // host:port or socket, never the password
	User             string
	Version          string // VERSION()
	Hostname         string // @@hostname
	MaxAllowedPacket int64
	LowerCaseNames   int  // @@lower_case_table_names
	LogBin           bool // binary logging on: sql_log_bin = 0 is tried per session
	BinlogFormat     string
}

// Existing is an object in the destination that the restore would create too.
type Existing struct {
	Database string
	Kind     string // TABLE, VIEW, SEQUENCE, PROCEDURE, FUNCTION, TRIGGER, EVENT, or MARKER
	Name     string
	Detail   string // for MARKER: what the marker row says
}

func (e Existing) String() string {
	if e.Kind == "MARKER" {
		return fmt.Sprintf("%s (an unfinished restore: %s)", qualified(e.Database, MarkerTable), e.Detail)
	}
	return strings.ToLower(e.Kind) + " " + qualified(e.Database, e.Name)
}

// destination is the server a restore writes to.
type destination struct {
	db     *sql.DB
	server Server
}

// openDestination connects to the destination and reads what the preflight needs. A server that
// cannot be reached is ErrUnreachable; one that refuses the account is ErrDestination. Errors
// never contain the password.
func openDestination(ctx context.Context, dsn string) (*destination, error) {
	cfg, err := mysqldsn.Parse(dsn)
	if errors.Is(err, mysqldsn.ErrAllowAllFiles) {
		return nil, withKind(ErrDestination, err)
	}
	if err != nil {
		return nil, withKind(ErrDestination, fmt.Errorf("parse the destination DSN: %s", dump.RedactDSNError(dsn, err)))
	}
	if cfg.DBName != "" {
		return nil, withKind(ErrSelection, fmt.Errorf("the destination DSN names database %q: end it with \"/\" and use --as %s to restore under that name", cfg.DBName, cfg.DBName))
	}
	// Values must arrive as the server's text (dump.Checksum), statements go out unchanged, and
	// the session is set by each object, not by DSN parameters.
	cfg.ParseTime = false
	cfg.InterpolateParams = false
	cfg.MultiStatements = false
	for _, k := range []string{"time_zone", "sql_mode", "charset", "character_set_results", "collation_connection", "foreign_key_checks", "unique_checks", "autocommit"} {
		delete(cfg.Params, k)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	server := Server{Address: cfg.Addr, User: cfg.User}
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, withKind(ErrDestination, fmt.Errorf("open the destination: %w", err))
	}
	db := sql.OpenDB(connector)
	var logBin, format sql.NullString
	err = db.QueryRowContext(ctx, "SELECT VERSION(), @@hostname, @@global.max_allowed_packet, @@lower_case_table_names, @@log_bin, @@binlog_format").
		Scan(&server.Version, &server.Hostname, &server.MaxAllowedPacket, &server.LowerCaseNames, &logBin, &format)
	if err != nil {
		db.Close()
		return nil, classifyConnectError(ctx, cfg, err)
	}
	server.LogBin = logBin.Valid && (logBin.String == "1" || strings.EqualFold(logBin.String, "ON"))
	server.BinlogFormat = strings.ToUpper(format.String)
	// Let the client send statements as large as the server accepts.
	db.Close()
	cfg.MaxAllowedPacket = int(server.MaxAllowedPacket)
	connector, err = mysql.NewConnector(cfg)
	if err != nil {
		return nil, withKind(ErrDestination, fmt.Errorf("open the destination: %w", err))
	}
	return &destination{db: sql.OpenDB(connector), server: server}, nil
}

func (d *destination) Close() error { return d.db.Close() }

// classifyConnectError turns a failed first query into one actionable line.
func classifyConnectError(ctx context.Context, cfg *mysql.Config, err error) error {
	where := fmt.Sprintf("%s as %s", cfg.Addr, cfg.User)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		switch me.Number {
		case 1045, 1044, 1698:
			return withKind(ErrDestination, fmt.Errorf("the destination server %s refused the login (%s): check the user and password in --to", where, me.Message))
		}
		return withKind(ErrDestination, fmt.Errorf("the destination server %s: %v", where, err))
	}
	var ne net.Error
	var oe *net.OpError
	if errors.As(err, &ne) || errors.As(err, &oe) || errors.Is(err, driver.ErrBadConn) || errors.Is(err, mysql.ErrInvalidConn) {
		return withKind(ErrUnreachable, fmt.Errorf("cannot reach the destination server at %s: %v: check --to and that the server runs and accepts connections", cfg.Addr, err))
	}
	return withKind(ErrUnreachable, fmt.Errorf("cannot connect to the destination server at %s: %v: check --to and that the server runs", cfg.Addr, err))
}

// databaseExists reports whether the destination has the database.
func (d *destination) databaseExists(ctx context.Context, name string) (bool, error) {
	var n int
	err := d.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", name).Scan(&n)
	if err != nil {
		return false, withKind(ErrDestination, fmt.Errorf("look up database %s on the destination: %w", dump.QuoteIdent(name), err))
	}
	return n > 0, nil
}

// inventory is what one destination database holds, by kind; names are as the server reports
// them.
type inventory struct {
	exists   bool
	tables   map[string]string // name -> TABLE_TYPE (BASE TABLE, VIEW, SEQUENCE, SYSTEM VIEW)
	routines map[string]string // "PROCEDURE name" / "FUNCTION name" -> name
	triggers map[string]string // trigger name -> table
	events   map[string]bool
	marker   string // the marker row, when the marker table exists
}

func (d *destination) inventory(ctx context.Context, database string) (*inventory, error) {
	inv := &inventory{tables: map[string]string{}, routines: map[string]string{}, triggers: map[string]string{}, events: map[string]bool{}}
	ok, err := d.databaseExists(ctx, database)
	if err != nil || !ok {
		return inv, err
	}
	inv.exists = true
	wrap := func(what string, err error) error {
		return withKind(ErrDestination, fmt.Errorf("list %s of %s on the destination: %w", what, dump.QuoteIdent(database), err))
	}
	if err := queryPairs(ctx, d.db, "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?", database, func(a, b string) {
		inv.tables[a] = b
	}); err != nil {
		return nil, wrap("tables", err)
	}
	if err := queryPairs(ctx, d.db, "SELECT ROUTINE_TYPE, ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ?", database, func(a, b string) {
		inv.routines[a+" "+strings.ToLower(b)] = b
	}); err != nil {
		return nil, wrap("routines", err)
	}
	if err := queryPairs(ctx, d.db, "SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ?", database, func(a, b string) {
		inv.triggers[a] = b
	}); err != nil {
		return nil, wrap("triggers", err)
	}
	if err := queryPairs(ctx, d.db, "SELECT EVENT_NAME, '' FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ?", database, func(a, _ string) {
		inv.events[strings.ToLower(a)] = true
	}); err != nil {
		return nil, wrap("events", err)
	}
	if _, ok := inv.tables[MarkerTable]; ok {
		inv.marker = d.readMarker(ctx, database)
	}
	return inv, nil
}

func queryPairs(ctx context.Context, db *sql.DB, q, arg string, fn func(a, b string)) error {
	rows, err := db.QueryContext(ctx, q, arg)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var a, b sql.NullString
		if err := rows.Scan(&a, &b); err != nil {
			return err
		}
		fn(a.String, b.String)
	}
	return rows.Err()
}

// conflicts lists what in inv the database plan would create again: same-named tables, views
// and sequences (one namespace), routines, triggers and events, and a marker left by an earlier
// restore. Tables the plan does not restore are not conflicts; they stay as they are.
func conflicts(dp *DatabasePlan, inv *inventory, lowerCase bool) []Existing {
	if !inv.exists {
		return nil
	}
	var out []Existing
	norm := func(s string) string {
		if lowerCase {
			return strings.ToLower(s)
		}
		return s
	}
	tables := map[string]string{}
	for name, typ := range inv.tables {
		tables[norm(name)] = name + "\x00" + typ
	}
	seen := map[string]bool{}
	addTable := func(name string) {
		v, ok := tables[norm(name)]
		if !ok || seen[norm(name)] {
			return
		}
		seen[norm(name)] = true
		real, typ, _ := strings.Cut(v, "\x00")
		kind := "TABLE"
		switch typ {
		case "VIEW", "SYSTEM VIEW":
			kind = "VIEW"
		case "SEQUENCE":
			kind = "SEQUENCE"
		}
		out = append(out, Existing{Database: dp.Dest, Kind: kind, Name: real})
	}
	for _, t := range dp.Tables {
		addTable(t.Name)
	}
	for _, o := range dp.Post {
		switch o.Kind {
		case dump.KindProcedure, dump.KindFunction:
			kind := strings.ToUpper(o.Kind)
			if real, ok := inv.routines[kind+" "+strings.ToLower(o.Name)]; ok {
				out = append(out, Existing{Database: dp.Dest, Kind: kind, Name: real})
			}
		case dump.KindTrigger:
			for name, table := range inv.triggers {
				// A trigger on a table that is dropped anyway goes with it; list it all the same,
				// the person should see it.
				if strings.EqualFold(name, o.Name) {
					_ = table
					out = append(out, Existing{Database: dp.Dest, Kind: "TRIGGER", Name: name})
				}
			}
		case dump.KindEvent:
			if inv.events[strings.ToLower(o.Name)] {
				out = append(out, Existing{Database: dp.Dest, Kind: "EVENT", Name: o.Name})
			}
		}
	}
	if inv.marker != "" || inv.tables[MarkerTable] != "" {
		out = append(out, Existing{Database: dp.Dest, Kind: "MARKER", Name: MarkerTable, Detail: inv.marker})
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Kind != out[j].Kind {
			return kindOrder(out[i].Kind) < kindOrder(out[j].Kind)
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// kindOrder is the order existing objects are dropped in: views before the tables they read,
// triggers before (or with) their tables.
func kindOrder(kind string) int {
	return strings.Index("VIEW TRIGGER EVENT PROCEDURE FUNCTION TABLE SEQUENCE MARKER", kind)
}

// others lists the tables and views of the destination database that the plan does not touch.
func others(dp *DatabasePlan, inv *inventory, lowerCase bool) []string {
	if !inv.exists {
		return nil
	}
	mine := map[string]bool{MarkerTable: true}
	for _, t := range dp.Tables {
		n := t.Name
		if lowerCase {
			n = strings.ToLower(n)
		}
		mine[n] = true
	}
	var out []string
	for name := range inv.tables {
		n := name
		if lowerCase {
			n = strings.ToLower(n)
		}
		if !mine[n] {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// dropExisting drops what the restore is about to create again, in one session with foreign
// key checks off (another table's foreign key must not stop the drop).
func (d *destination) dropExisting(ctx context.Context, list []Existing) error {
	if len(list) == 0 {
		return nil
	}
	conn, err := d.session(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	for _, e := range list {
		var stmt string
		switch e.Kind {
		case "VIEW":
			stmt = "DROP VIEW IF EXISTS " + qualified(e.Database, e.Name)
		case "SEQUENCE":
			stmt = "DROP SEQUENCE IF EXISTS " + qualified(e.Database, e.Name)
		case "TABLE", "MARKER":
			stmt = "DROP TABLE IF EXISTS " + qualified(e.Database, e.Name)
		case "TRIGGER":
			stmt = "DROP TRIGGER IF EXISTS " + qualified(e.Database, e.Name)
		case "PROCEDURE", "FUNCTION", "EVENT":
			stmt = "DROP " + e.Kind + " IF EXISTS " + qualified(e.Database, e.Name)
		default:
			return fmt.Errorf("drop %s: unknown kind %q", e, e.Kind)
		}
		if _, err := conn.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("drop existing %s: %w", e, err)
		}
	}
	return nil
}

// session returns a fresh connection set up for loading: no foreign key or unique checks, no
// binary logging where the account may turn it off, no statement time limit. The connection is
// never returned to the pool with these settings.
func (d *destination) session(ctx context.Context) (*loaderConn, error) {
	conn, err := d.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect to the destination: %w", err)
	}
	fail := func(stmt string, err error) (*loaderConn, error) {
		conn.Raw(func(any) error { return driver.ErrBadConn })
		conn.Close()
		return nil, fmt.Errorf("set up a loader session (%s): %w", stmt, err)
	}
	for _, stmt := range []string{"SET SESSION foreign_key_checks = 0", "SET SESSION unique_checks = 0"} {
		if _, err := conn.ExecContext(ctx, stmt); err != nil {
			return fail(stmt, err)
		}
	}
	logged := d.server.LogBin
	if logged {
		// Needs SUPER or BINLOG ADMIN; without it the load is logged (and replicated), which is
		// slower but correct.
		if _, err := conn.ExecContext(ctx, "SET SESSION sql_log_bin = 0"); err == nil {
			logged = false
		}
	}
	if !logged || d.server.BinlogFormat != "STATEMENT" {
		// No gap locks, so loaders filling one table deadlock less. (Statement-based binary
		// logging refuses InnoDB writes at this level.)
		if _, err := conn.ExecContext(ctx, "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED"); err != nil {
			return fail("READ COMMITTED", err)
		}
	}
	if strings.Contains(strings.ToLower(d.server.Version), "mariadb") {
		conn.ExecContext(ctx, "SET SESSION max_statement_time = 0") // a global limit must not cut a load short
		// Every row held its table's CHECK constraints when it was dumped; checking them again
		// (json_valid() for every JSON value) cost 7 % of the server's time loading the shop
		// benchmark's orders. Like foreign_key_checks = 0 above.
		conn.ExecContext(ctx, "SET SESSION check_constraint_checks = 0")
	}
	return &loaderConn{conn}, nil
}

// loaderConn is a connection whose session the restore changed: closing it discards it instead
// of returning it to the pool.
type loaderConn struct{ *sql.Conn }

func (c *loaderConn) Close() error {
	c.Conn.Raw(func(any) error { return driver.ErrBadConn })
	return c.Conn.Close()
}

// createMarker creates the marker table in database and records the restore in it.
func (d *destination) createMarker(ctx context.Context, database string, m markerRow) error {
	q := qualified(database, MarkerTable)
	if _, err := d.db.ExecContext(ctx, "CREATE TABLE "+q+` (
  set_id VARCHAR(64) NOT NULL,
  policy VARCHAR(255) NOT NULL,
  source_database VARCHAR(255) NOT NULL,
  started_at DATETIME NOT NULL,
  restored_by VARCHAR(255) NOT NULL,
  status VARCHAR(32) NOT NULL,
  reason TEXT NOT NULL,
  updated_at DATETIME NOT NULL
) DEFAULT CHARSET=utf8mb4 COMMENT='backupd: this database is an INCOMPLETE restore; see docs/restore.md'`); err != nil {
		return fmt.Errorf("create the incomplete-restore marker %s: %w", q, err)
	}
	_, err := d.db.ExecContext(ctx, "INSERT INTO "+q+" VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
		m.SetID, m.Policy, m.Source, m.Started.UTC().Format("2006-01-02 15:04:05"), m.By, "loading",
		"the restore is running or was interrupted", m.Started.UTC().Format("2006-01-02 15:04:05"))
	if err != nil {
		return fmt.Errorf("write the incomplete-restore marker %s: %w", q, err)
	}
	return nil
}

type markerRow struct {
	SetID, Policy, Source, By string
	Started                   time.Time
}

// markFailed records why the restore stopped. It runs on a context of its own: the restore's
// may be cancelled, and the marker must still say so.
func (d *destination) markFailed(ctx context.Context, database string, status string, reason error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	msg := humanize.OneLine(reason).Error()
	if len(msg) > 4000 {
		msg = msg[:4000] + "…"
	}
	d.db.ExecContext(ctx, "UPDATE "+qualified(database, MarkerTable)+" SET status = ?, reason = ?, updated_at = UTC_TIMESTAMP()", status, msg)
}

// dropMarker removes the marker: the database is now a verified copy of the set.
func (d *destination) dropMarker(ctx context.Context, database string) error {
	if _, err := d.db.ExecContext(ctx, "DROP TABLE IF EXISTS "+qualified(database, MarkerTable)); err != nil {
		return fmt.Errorf("remove the incomplete-restore marker from %s: %w", dump.QuoteIdent(database), err)
	}
	return nil
}

// readMarker summarises the marker row of an earlier restore.
func (d *destination) readMarker(ctx context.Context, database string) string {
	var set, status, reason string
	var started string
	err := d.db.QueryRowContext(ctx, "SELECT set_id, status, reason, CAST(started_at AS CHAR) FROM "+qualified(database, MarkerTable)+" LIMIT 1").
		Scan(&set, &status, &reason, &started)
	if err != nil {
		return "marker unreadable"
	}
	return fmt.Sprintf("set %s started %s UTC, %s: %s", set, started, status, reason)
}

// createDatabase creates a database the restore names itself (under --as, or for selected
// tables when it does not exist yet) with the set's character set and collation.
func (d *destination) createDatabase(ctx context.Context, dp *DatabasePlan) error {
	cs, err := charsetClause(dp.Charset, dp.Collation)
	if err != nil {
		return fmt.Errorf("create database %s: %w", dump.QuoteIdent(dp.Dest), err)
	}
	stmt := "CREATE DATABASE IF NOT EXISTS " + dump.QuoteIdent(dp.Dest) + cs
	if _, err := d.db.ExecContext(ctx, stmt); err != nil {
		return fmt.Errorf("create database %s: %w", dump.QuoteIdent(dp.Dest), err)
	}
	return nil
}

// checksum recomputes a restored table's row count and checksum.
func (d *destination) checksum(ctx context.Context, database, table string) (dump.TableSum, error) {
	return dump.Checksum(ctx, d.db, database, table)
}

// bulkColumns returns the columns of a destination table as LOAD DATA needs to know them.
func (d *destination) bulkColumns(ctx context.Context, database, table string) (map[string]bulkColumn, error) {
	rows, err := d.db.QueryContext(ctx, "SELECT COLUMN_NAME, LOWER(DATA_TYPE), COALESCE(CHARACTER_SET_NAME, '') FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?", database, table)
	if err != nil {
		return nil, fmt.Errorf("read the columns of %s: %w", qualified(database, table), err)
	}
	defer rows.Close()
	cols := map[string]bulkColumn{}
	for rows.Next() {
		var name string
		var c bulkColumn
		if err := rows.Scan(&name, &c.DataType, &c.Charset); err != nil {
			return nil, fmt.Errorf("read the columns of %s: %w", qualified(database, table), err)
		}
		cols[name] = c
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the columns of %s: %w", qualified(database, table), err)
	}
	return cols, nil
}

// localInfile reports whether LOAD DATA LOCAL INFILE works between this client and the server
// (MySQL 8 disables it by default; proxies may refuse it), by loading nothing into database's
// marker table. The error says why not.
func (d *destination) localInfile(ctx context.Context, database string) error {
	conn, err := d.session(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	b := bulkBatch{header: []byte("' INTO TABLE " + qualified(database, MarkerTable))}
	return b.send(ctx, conn)
}

// waitAltering returns once the ALTER TABLE running in connection id has reached its build
// phase (PROCESSLIST state "altering table", past the exclusive metadata lock) or has ended (a
// value on done, which is put back). When the state cannot be read, it waits for the end.
func (d *destination) waitAltering(ctx context.Context, id int64, done chan error) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		var state sql.NullString
		err := d.db.QueryRowContext(ctx, "SELECT STATE FROM information_schema.PROCESSLIST WHERE ID = ?", id).Scan(&state)
		if err == nil && state.String == "altering table" {
			return nil
		}
		next := tick.C
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			next = nil // the state cannot be read: wait for the end
		}
		select {
		case e := <-done:
			done <- e
			return nil
		case <-next:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}
