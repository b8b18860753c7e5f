package dump

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Sink receives the dump's objects. The backup job implements it (seal with zstd and age,
// upload to the targets); DirSink writes plain files.
type Sink interface {
	// Create starts the object named name, a relative '/'-separated path (see FORMAT.md) that
	// is safe for any database or table name. Plain SQL is written to the returned writer;
	// Close finishes the object and returns the error of sealing or uploading it. Create is
	// called concurrently from several workers.
	//
	// When the dump fails after Create, the writer is closed with CloseWithError(err) if it has
	// that method (as *io.PipeWriter does), so the sink can discard the partial object;
	// otherwise with Close.
	Create(ctx context.Context, name string) (io.WriteCloser, error)
}

// Options configures Run.
type Options struct {
	DSN           string   // go-sql-driver DSN; the dump sets the session settings it needs
	Databases     []string // empty: all databases except mysql, sys, information_schema, performance_schema
	ExcludeTables []string // "db.table"
	Threads       int      // worker connections, >= 1 (default 2)
	ChunkBytes    int64    // target plain-SQL size of one data object (default 64 MiB)
	// LockWaitTimeout is the longest the consistency lock may wait for running statements
	// before the job fails (default 30s). No single lock attempt stalls writers for more than
	// about a second.
	LockWaitTimeout time.Duration
	IncludeUsers    bool // users, roles and grants, off by default
	Logger          *slog.Logger
}

// Defaults.
const (
	DefaultChunkBytes      = 64 << 20
	DefaultLockWaitTimeout = 30 * time.Second
	DefaultThreads         = 2
	// statementTarget is the usual size of one INSERT statement: large enough for fast loading,
	// far below any server's max_allowed_packet.
	statementTarget = 1 << 20
	// packetMargin leaves room for the protocol header below max_allowed_packet.
	packetMargin = 1024
)

// RowTooLargeError is returned when one row, as an INSERT statement, does not fit in the
// server's max_allowed_packet.
type RowTooLargeError struct {
	Database, Table string
	Key             string // the row's chunk-key value, when the table has one
	StatementBytes  int
	MaxAllowed      int64
}

func (e *RowTooLargeError) Error() string {
	key := ""
	if e.Key != "" {
		key = " (key " + e.Key + ")"
	}
	return fmt.Sprintf("table %s: a row%s needs a %d-byte INSERT statement but max_allowed_packet is %d bytes; raise max_allowed_packet to at least %d on this server and on every server you restore to",
		qualified(e.Database, e.Table), key, e.StatementBytes, e.MaxAllowed, e.StatementBytes+packetMargin)
}

// session is one server connection owned by the dump.
type session struct {
	conn *sql.Conn
	id   int64
}

type dumper struct {
	opts    Options
	sink    Sink
	log     *slog.Logger
	db      *sql.DB
	info    serverInfo
	control *session
	workers []*session
	ownIDs  map[int64]bool
	exclude map[string]bool
	dbs     []*dbInfo

	maxStmt    int // hard limit of one statement
	stmtTarget int

	mu     sync.Mutex // guards res.Warnings, res.MaxStatementBytes and dumped
	res    *Result
	dumped map[*table]bool
}

// Run dumps the databases selected by opts into sink and returns what it wrote. The dump is one
// point in time (see Consistency in DESIGN.md and the package documentation); every table's
// rows are checksummed as they are written. On error, ctx cancellation or a failing sink, every
// worker stops and Run returns the first error.
func Run(ctx context.Context, opts Options, sink Sink) (*Result, error) {
	if sink == nil {
		return nil, errors.New("dump: no sink")
	}
	if opts.Threads <= 0 {
		opts.Threads = DefaultThreads
	}
	if opts.ChunkBytes <= 0 {
		opts.ChunkBytes = DefaultChunkBytes
	}
	if opts.LockWaitTimeout <= 0 {
		opts.LockWaitTimeout = DefaultLockWaitTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	d := &dumper{
		opts:    opts,
		sink:    sink,
		log:     opts.Logger,
		ownIDs:  map[int64]bool{},
		exclude: map[string]bool{},
		dumped:  map[*table]bool{},
		res:     &Result{FormatVersion: FormatVersion, StartedAt: time.Now().UTC()},
	}
	for _, t := range opts.ExcludeTables {
		d.exclude[t] = true
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	if err := d.run(ctx, cancel); err != nil {
		if ctx.Err() != nil && context.Cause(ctx) != nil && !errors.Is(err, context.Cause(ctx)) && errors.Is(err, context.Canceled) {
			err = context.Cause(ctx)
		}
		return nil, fmt.Errorf("dump: %w", err)
	}
	return d.res, nil
}

func (d *dumper) run(ctx context.Context, cancel context.CancelCauseFunc) error {
	db, cfg, err := openDB(d.opts.DSN)
	if err != nil {
		return err
	}
	d.db = db
	defer db.Close()
	db.SetMaxOpenConns(d.opts.Threads + 1)
	db.SetMaxIdleConns(d.opts.Threads + 1)
	d.log.Info("dump starting", "server", cfg.Addr, "user", cfg.User, "threads", d.opts.Threads)

	if d.control, err = d.openSession(ctx, ""); err != nil {
		return err
	}
	defer d.control.conn.Close()
	if d.info, err = queryServerInfo(ctx, d.control.conn); err != nil {
		return err
	}
	if err := setupSession(ctx, d.control.conn, d.info.Flavor); err != nil {
		return err
	}
	d.res.Server = Server{Flavor: d.info.Flavor, Version: d.info.Version, Host: d.info.Host}
	// Fail before any lock or upload if the server would hide objects from the dump.
	dbs, err := listDatabases(ctx, d.control.conn, d.opts.Databases)
	if err != nil {
		return err
	}
	names := make([]string, len(dbs))
	for i, db := range dbs {
		names[i] = db.Name
	}
	if err := checkVisibility(ctx, d.control.conn, d.info.Flavor, names); err != nil {
		return err
	}
	d.maxStmt = int(d.info.MaxPacket) - packetMargin
	d.stmtTarget = int(min(statementTarget, int64(d.maxStmt), d.opts.ChunkBytes))

	for i := 0; i < d.opts.Threads; i++ {
		s, err := d.openSession(ctx, d.info.Flavor)
		if err != nil {
			return err
		}
		d.workers = append(d.workers, s)
	}
	defer func() {
		for _, w := range d.workers {
			w.conn.Close()
		}
	}()

	if err := d.takeSnapshot(ctx); err != nil {
		return err
	}

	// The snapshot is taken and every lock released. The control connection plans the chunks,
	// then writes the schema objects while the workers dump the data.
	if _, err := d.control.conn.ExecContext(ctx, fmt.Sprintf("SET SESSION lock_wait_timeout = %d", max(1, int(d.opts.LockWaitTimeout.Seconds())))); err != nil {
		return fmt.Errorf("set lock_wait_timeout: %w", err)
	}
	var rest []*table
	for _, db := range d.dbs {
		for _, t := range db.tables {
			if t.typ == TypeTable && !d.dumped[t] {
				rest = append(rest, t)
			}
		}
	}
	chunks, err := d.planTables(ctx, d.control, rest)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	var schemaErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := d.writeDefinitions(ctx); err != nil {
			schemaErr = err
			cancel(err)
		}
	}()
	dataErr := d.dumpChunks(ctx, d.workers, chunks)
	if dataErr != nil {
		cancel(dataErr)
	}
	wg.Wait()
	if dataErr != nil {
		return dataErr
	}
	if schemaErr != nil {
		return schemaErr
	}
	for _, w := range d.workers {
		// Everything is written; a worker that sat idle past wait_timeout may be gone, which
		// ends its snapshot just the same.
		if _, err := w.conn.ExecContext(ctx, "COMMIT"); err != nil {
			d.log.Warn("end snapshot", "error", err)
		}
	}
	d.assemble()
	d.log.Info("dump finished", "databases", len(d.res.Databases), "rows", d.res.Rows, "bytes", d.res.Bytes, "duration", d.res.FinishedAt.Sub(d.res.StartedAt).Round(time.Millisecond))
	return nil
}

// connectHint prefixes connection errors with what to check.
const connectHint = "connect to the server (is it running, and are the address and credentials in mysql.dsn right?)"

// openSession takes a connection from the pool and prepares its session. flavor "" defers the
// setup until the server is known.
func (d *dumper) openSession(ctx context.Context, flavor string) (*session, error) {
	conn, err := d.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", connectHint, err)
	}
	s := &session{conn: conn}
	if err := conn.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&s.id); err != nil {
		conn.Close()
		return nil, fmt.Errorf("%s: %w", connectHint, err)
	}
	if flavor != "" {
		if err := setupSession(ctx, conn, flavor); err != nil {
			conn.Close()
			return nil, err
		}
	}
	d.ownIDs[s.id] = true
	return s, nil
}

func (d *dumper) warn(msg string) {
	d.log.Warn(msg)
	d.mu.Lock()
	d.res.Warnings = append(d.res.Warnings, msg)
	d.mu.Unlock()
}

// nonTransactional returns the non-transactional tables that have data to dump.
func (d *dumper) nonTransactional() []*table {
	var out []*table
	for _, db := range d.dbs {
		for _, t := range db.tables {
			if t.typ == TypeTable && !t.transactional && t.noData == "" {
				out = append(out, t)
			}
		}
	}
	return out
}

// discoverAll lists databases and tables and reads every definition; callers run it while the
// schema cannot change, where the server allows that.
func (d *dumper) discoverAll(ctx context.Context) error {
	dbs, err := listDatabases(ctx, d.control.conn, d.opts.Databases)
	if err != nil {
		return err
	}
	if err := discover(ctx, d.control.conn, dbs, d.exclude); err != nil {
		return err
	}
	d.dbs = dbs
	for _, db := range dbs {
		if strings.ContainsAny(db.Name, "\r\n") {
			d.warn(fmt.Sprintf("database %s has a line break in its name: statements naming it span lines, which line-based loaders must handle", QuoteIdent(db.Name)))
		}
		for _, t := range db.tables {
			if strings.ContainsAny(t.name, "\r\n") || slices.ContainsFunc(t.cols, func(c column) bool { return strings.ContainsAny(c.Name, "\r\n") }) {
				d.warn(fmt.Sprintf("table %s has a line break in its name or a column name: its INSERT statements span lines, which line-based loaders must handle", t.qualified()))
			}
			if t.systemVersioned {
				d.warn(fmt.Sprintf("table %s is system-versioned: only its current rows are dumped, not its history", t.qualified()))
			}
			if t.noData != "" {
				d.warn(fmt.Sprintf("table %s: definition dumped without rows (%s)", t.qualified(), t.noData))
			}
		}
	}
	return d.readDefinitions(ctx)
}

// --- data ---

type task func(ctx context.Context, s *session) error

// runTasks runs tasks on the sessions, one goroutine per session. The first error cancels the
// others and is returned.
func runTasks(ctx context.Context, sessions []*session, tasks []task) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	ch := make(chan task)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for _, s := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for t := range ch {
				if ctx.Err() != nil {
					continue
				}
				if err := t(ctx, s); err != nil {
					once.Do(func() { first = err })
					cancel(err)
				}
			}
		}()
	}
feed:
	for _, t := range tasks {
		select {
		case ch <- t:
		case <-ctx.Done():
			break feed
		}
	}
	close(ch)
	wg.Wait()
	if first != nil {
		return first
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return nil
}

// chunkTask is one key range of one table.
type chunkTask struct {
	t   *table
	r   keyRange
	est int64
}

// dumpTables plans and dumps the data of tables, planning on the first session.
func (d *dumper) dumpTables(ctx context.Context, sessions []*session, tables []*table) error {
	chunks, err := d.planTables(ctx, sessions[0], tables)
	if err != nil {
		return err
	}
	return d.dumpChunks(ctx, sessions, chunks)
}

// planTables splits tables into chunks. It reads MIN and MAX outside any snapshot, so it does
// not leave a metadata lock on every table for the length of the dump (which would make any
// schema change wait for the dump, and the application wait behind it); the first and last
// ranges are open, so rows outside those bounds are still dumped.
func (d *dumper) planTables(ctx context.Context, s *session, tables []*table) ([]chunkTask, error) {
	var chunks []chunkTask
	for _, t := range tables {
		d.dumped[t] = true
		if t.noData != "" {
			continue
		}
		if t.keyIdx < 0 {
			chunks = append(chunks, chunkTask{t: t, est: estimateBytes(t.rows, t.avgRowLength, t.dataLength)})
			continue
		}
		in, err := d.keyBounds(ctx, s, t)
		if err != nil {
			return nil, err
		}
		ranges := planChunks(in)
		est := estimateBytes(t.rows, t.avgRowLength, t.dataLength) / int64(len(ranges))
		for _, r := range ranges {
			chunks = append(chunks, chunkTask{t: t, r: r, est: est})
		}
	}
	return chunks, nil
}

// dumpChunks dumps chunks on the sessions, largest first, so one big table does not finish
// alone at the end.
func (d *dumper) dumpChunks(ctx context.Context, sessions []*session, chunks []chunkTask) error {
	sort.SliceStable(chunks, func(i, j int) bool { return chunks[i].est > chunks[j].est })
	tasks := make([]task, len(chunks))
	for i, c := range chunks {
		tasks[i] = func(ctx context.Context, s *session) error { return d.dumpChunk(ctx, s, c.t, c.r) }
	}
	return runTasks(ctx, sessions, tasks)
}

// keyBounds reads MIN and MAX of the chunk key.
func (d *dumper) keyBounds(ctx context.Context, s *session, t *table) (planInput, error) {
	in := planInput{Rows: t.rows, AvgRowLength: t.avgRowLength, DataLength: t.dataLength, ChunkBytes: d.opts.ChunkBytes}
	k := QuoteIdent(t.cols[t.keyIdx].Name)
	var lo, hi sql.NullString
	if err := s.conn.QueryRowContext(ctx, "SELECT MIN("+k+"), MAX("+k+") FROM "+t.qualified()).Scan(&lo, &hi); err != nil {
		return in, fmt.Errorf("table %s: read key range: %w", t.qualified(), explainDDL(err))
	}
	if !lo.Valid || !hi.Valid {
		in.Empty = true
		return in, nil
	}
	var err error
	if in.Min, err = parseKey(lo.String, t.keyUnsigned); err == nil {
		in.Max, err = parseKey(hi.String, t.keyUnsigned)
	}
	if err != nil {
		return in, fmt.Errorf("table %s: key range: %w", t.qualified(), err)
	}
	return in, nil
}

func parseKey(s string, unsigned bool) (uint64, error) {
	if unsigned {
		var v uint64
		_, err := fmt.Sscan(s, &v)
		return v, err
	}
	var v int64
	_, err := fmt.Sscan(s, &v)
	return keyEncodeSigned(v), err
}

// dumpChunk reads one key range and writes it as data objects, hashing every row it writes.
func (d *dumper) dumpChunk(ctx context.Context, s *session, t *table, r keyRange) error {
	q := "SELECT " + selectColumns(t.cols) + " FROM " + t.qualified()
	if t.keyIdx >= 0 {
		if w := r.where(QuoteIdent(t.cols[t.keyIdx].Name), t.keyUnsigned); w != "" {
			q += " WHERE " + w
		}
	}
	began := time.Now()
	tw := d.newTableWriter(t)
	var acc sumAcc
	h := newRowHasher()
	row := make([]byte, 0, 1024)
	err := rawQuery(ctx, s.conn, q, func(dest []driver.Value) error {
		if err := h.add(&acc, dest, t.cols); err != nil {
			return fmt.Errorf("table %s: %w", t.qualified(), err)
		}
		row = append(row[:0], '(')
		for j, ci := range t.insertIdx {
			if j > 0 {
				row = append(row, ',')
			}
			var err error
			if row, err = appendLiteral(row, dest[ci], &t.cols[ci]); err != nil {
				return fmt.Errorf("table %s: %w", t.qualified(), err)
			}
		}
		row = append(row, ')')
		if err := tw.addRow(ctx, row); err != nil {
			if e, ok := err.(*RowTooLargeError); ok && t.keyIdx >= 0 {
				if k, kerr := appendLiteral(nil, dest[t.keyIdx], &t.cols[t.keyIdx]); kerr == nil {
					e.Key = string(k)
				}
			}
			return err
		}
		if cap(row) > 1<<20 {
			row = make([]byte, 0, 1024)
		}
		return nil
	})
	if err == nil {
		err = tw.finish(ctx)
	}
	if err != nil {
		tw.abort(err)
		if !strings.Contains(err.Error(), t.qualified()) {
			err = fmt.Errorf("table %s: %w", t.qualified(), explainDDL(err))
		}
		return err
	}
	d.log.Debug("chunk dumped", "table", t.qualified(), "range", r.where("key", t.keyUnsigned), "rows", acc.rows, "objects", len(tw.objects), "duration", time.Since(began).Round(time.Millisecond))
	t.mu.Lock()
	t.acc.add(acc)
	t.objects = append(t.objects, tw.objects...)
	t.mu.Unlock()
	return nil
}

// tableWriter turns rows into multi-row INSERT statements and statements into data objects of
// about ChunkBytes each.
type tableWriter struct {
	d        *dumper
	t        *table
	prefix   []byte
	stmt     []byte
	stmtRows int64
	w        io.WriteCloser
	key      string
	objRows  int64
	objBytes int64
	objects  []Object
}

func (d *dumper) newTableWriter(t *table) *tableWriter {
	var b strings.Builder
	b.WriteString("INSERT INTO ")
	b.WriteString(QuoteIdent(t.name))
	b.WriteString(" (")
	for j, ci := range t.insertIdx {
		if j > 0 {
			b.WriteByte(',')
		}
		b.WriteString(QuoteIdent(t.cols[ci].Name))
	}
	b.WriteString(") VALUES ")
	return &tableWriter{d: d, t: t, prefix: []byte(b.String())}
}

func (tw *tableWriter) addRow(ctx context.Context, row []byte) error {
	if n := len(tw.prefix) + len(row) + 2; n > tw.d.maxStmt {
		return &RowTooLargeError{Database: tw.t.db, Table: tw.t.name, StatementBytes: n, MaxAllowed: tw.d.info.MaxPacket}
	}
	if tw.stmtRows > 0 && len(tw.stmt)+1+len(row)+2 > tw.d.stmtTarget {
		if err := tw.flush(ctx); err != nil {
			return err
		}
	}
	if tw.stmtRows == 0 {
		tw.stmt = append(tw.stmt[:0], tw.prefix...)
	} else {
		tw.stmt = append(tw.stmt, ',')
	}
	tw.stmt = append(tw.stmt, row...)
	tw.stmtRows++
	return nil
}

// flush writes the pending statement, opening an object first if none is open.
func (tw *tableWriter) flush(ctx context.Context) error {
	if tw.stmtRows == 0 {
		return nil
	}
	tw.stmt = append(tw.stmt, ";\n"...)
	if tw.w == nil {
		if err := tw.open(ctx); err != nil {
			return err
		}
	}
	if _, err := tw.w.Write(tw.stmt); err != nil {
		return fmt.Errorf("write object %s: %w", tw.key, err)
	}
	tw.d.noteStatement(len(tw.stmt) - 1)
	tw.objBytes += int64(len(tw.stmt))
	tw.objRows += tw.stmtRows
	tw.stmtRows = 0
	if cap(tw.stmt) > 4*tw.d.stmtTarget {
		tw.stmt = nil
	} else {
		tw.stmt = tw.stmt[:0]
	}
	if tw.objBytes >= tw.d.opts.ChunkBytes {
		return tw.closeObject()
	}
	return nil
}

func (tw *tableWriter) open(ctx context.Context) error {
	tw.t.mu.Lock()
	tw.t.seq++
	seq := tw.t.seq
	tw.t.mu.Unlock()
	tw.key = dataObject(tw.t.db, tw.t.name, seq)
	w, err := tw.d.sink.Create(ctx, tw.key)
	if err != nil {
		return fmt.Errorf("create object %s: %w", tw.key, err)
	}
	tw.w = w
	hdr := dataHeader(tw.t)
	if _, err := io.WriteString(w, hdr); err != nil {
		return fmt.Errorf("write object %s: %w", tw.key, err)
	}
	tw.objBytes, tw.objRows = int64(len(hdr)), 0
	return nil
}

func (tw *tableWriter) closeObject() error {
	w := tw.w
	tw.w = nil
	if err := w.Close(); err != nil {
		return fmt.Errorf("finish object %s: %w", tw.key, err)
	}
	tw.objects = append(tw.objects, Object{Key: tw.key, Kind: KindData, Phase: PhaseData, Name: tw.t.name, Rows: tw.objRows, Bytes: tw.objBytes})
	return nil
}

func (tw *tableWriter) finish(ctx context.Context) error {
	if err := tw.flush(ctx); err != nil {
		return err
	}
	if tw.w != nil {
		return tw.closeObject()
	}
	return nil
}

// abort discards the open object, if any.
func (tw *tableWriter) abort(err error) {
	if tw.w == nil {
		return
	}
	if cw, ok := tw.w.(interface{ CloseWithError(error) error }); ok {
		_ = cw.CloseWithError(err)
	} else {
		_ = tw.w.Close()
	}
	tw.w = nil
}

func (d *dumper) noteStatement(n int) {
	d.mu.Lock()
	if int64(n) > d.res.MaxStatementBytes {
		d.res.MaxStatementBytes = int64(n)
	}
	d.mu.Unlock()
}

// dataHeader is the start of every data object: the session a loader needs, as plain SETs that
// MariaDB and MySQL accept, one statement per line. There is no USE, so the object loads into
// whatever database the client selected.
func dataHeader(t *table) string {
	return "-- backupd data: table " + commentSafe(t.qualified()) + "; load with: mariadb DBNAME < this-file\n" +
		"SET NAMES binary;\n" +
		"SET time_zone = '+00:00';\n" +
		"SET sql_mode = 'NO_AUTO_VALUE_ON_ZERO';\n" +
		"SET foreign_key_checks = 0;\n" +
		"SET unique_checks = 0;\n"
}

// commentSafe keeps a name from breaking out of a one-line comment.
func commentSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}

// assemble fills in the Result from the per-database state.
func (d *dumper) assemble() {
	res := d.res
	for _, db := range d.dbs {
		out := Database{Name: db.Name, Charset: db.Charset, Collation: db.Collation}
		out.Objects = append(out.Objects, db.schemaObjects...)
		for _, t := range db.tables {
			tt := Table{Name: t.name, Type: t.typ, Engine: t.engine, NoData: t.noData,
				NonTransactional: t.typ == TypeTable && !t.transactional, SystemVersioned: t.systemVersioned}
			if t.typ == TypeTable && t.noData == "" {
				sum := t.acc.sum()
				tt.Rows, tt.Checksum = sum.Rows, sum.Checksum
				sort.Slice(t.objects, func(i, j int) bool { return t.objects[i].Key < t.objects[j].Key })
				for _, o := range t.objects {
					tt.Chunks = append(tt.Chunks, Chunk{Key: o.Key, Rows: o.Rows})
					out.Objects = append(out.Objects, o)
				}
			}
			out.Tables = append(out.Tables, tt)
		}
		out.Objects = append(out.Objects, db.postObjects...)
		for _, o := range out.Objects {
			res.Bytes += o.Bytes
			if o.Kind == KindData {
				res.Rows += o.Rows
			}
		}
		res.Databases = append(res.Databases, out)
	}
	if res.Users != nil {
		res.Bytes += res.Users.Bytes
	}
	res.FinishedAt = time.Now().UTC()
}

// explainDDL turns the errors a concurrent schema change causes into advice.
func explainDDL(err error) error {
	switch mysqlErrorNumber(err) {
	case 1146, 1412: // ER_NO_SUCH_TABLE, ER_TABLE_DEF_CHANGED
		return fmt.Errorf("%w (the table was dropped, renamed or altered after the snapshot was taken: run the backup again when no schema migration is running)", err)
	}
	return err
}
