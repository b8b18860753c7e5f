package dump

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/backupd/backupd/internal/ctxtime"
)

// Blocker is a running statement that can make the global lock wait.
type Blocker struct {
	ID      int64         `json:"id"`
	User    string        `json:"user"`
	Host    string        `json:"host"`
	DB      string        `json:"db,omitempty"`
	Command string        `json:"command"`
	Time    time.Duration `json:"time"`
	State   string        `json:"state,omitempty"`
	// Verb is the statement's first keyword (UPDATE, ALTER, ...). The rest of the statement is
	// left out because it may contain row data or secrets.
	Verb string `json:"verb,omitempty"`
}

// LockTimeoutError is returned when the lock that makes the dump consistent could not be taken
// within Options.LockWaitTimeout.
type LockTimeoutError struct {
	Lock     string        // the statement that waited, e.g. "BACKUP STAGE FLUSH"
	Waited   time.Duration // how long the dump waited in total
	Blockers []Blocker     // long-running statements seen when giving up, longest first
}

func (e *LockTimeoutError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "take the consistency lock (%s): gave up after %s so the application's writes are not stalled", e.Lock, e.Waited.Round(time.Millisecond))
	if len(e.Blockers) == 0 {
		b.WriteString("; no long-running statement is visible (another backup may be running, or an idle session holds LOCK TABLES or a table lock; grant PROCESS to see all sessions)")
	} else {
		b.WriteString("; blocked by ")
		for i, bl := range e.Blockers {
			if i == 3 {
				fmt.Fprintf(&b, " and %d more", len(e.Blockers)-3)
				break
			}
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "query id %d (user %s@%s, %s %s running for %s", bl.ID, bl.User, bl.Host, bl.Command, orDash(bl.Verb), bl.Time.Round(time.Second))
			if bl.State != "" {
				fmt.Fprintf(&b, ", state %q", bl.State)
			}
			b.WriteString(")")
		}
	}
	kill := "KILL <id>"
	if len(e.Blockers) > 0 {
		kill = fmt.Sprintf("KILL %d", e.Blockers[0].ID)
	}
	fmt.Fprintf(&b, "; let it finish or stop it (%s), or raise the lock wait timeout, then run the backup again", kill)
	return b.String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// longRunning is how long a statement must have run to count as a blocker; shorter ones finish
// while the lock is attempted.
const longRunning = time.Second

// lockAttemptTimeout is the server-side lock_wait_timeout of one attempt: the longest a single
// attempt can stall writers queued behind it.
const lockAttemptTimeout = 1 // seconds, the minimum the server accepts

// processlist returns other sessions' statements that have run for at least longRunning, longest
// first. writesOnly keeps only statements that are not plainly read-only.
func (d *dumper) processlist(ctx context.Context, writesOnly bool) ([]Blocker, error) {
	timeExpr := "TIME * 1000"
	if d.info.Flavor == FlavorMariaDB {
		timeExpr = "TIME_MS"
	}
	rows, err := d.control.conn.QueryContext(ctx, "SELECT ID, COALESCE(USER,''), COALESCE(HOST,''), COALESCE(DB,''), COALESCE(COMMAND,''), "+timeExpr+", COALESCE(STATE,''), COALESCE(LEFT(INFO, 256),'') FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID()")
	if err != nil {
		return nil, fmt.Errorf("read processlist: %w", err)
	}
	defer rows.Close()
	var out []Blocker
	for rows.Next() {
		var b Blocker
		var ms float64
		var info string
		if err := rows.Scan(&b.ID, &b.User, &b.Host, &b.DB, &b.Command, &ms, &b.State, &info); err != nil {
			return nil, fmt.Errorf("read processlist: %w", err)
		}
		b.Time = time.Duration(ms * float64(time.Millisecond))
		if d.ownIDs[b.ID] || b.Time < longRunning {
			continue
		}
		if b.Command != "Query" && b.Command != "Execute" {
			continue // idle sessions, replication threads, daemons
		}
		if b.User == "system user" || b.User == "event_scheduler" {
			continue
		}
		st := strings.ToLower(b.State)
		if strings.Contains(st, "waiting for backup lock") || strings.Contains(st, "waiting for global read lock") {
			continue // victims of a lock, not holders
		}
		b.Verb = firstKeyword(info)
		if writesOnly && readOnlyVerbs[b.Verb] {
			continue
		}
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read processlist: %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Time > out[j].Time })
	return out, nil
}

// readOnlyVerbs start statements that neither write nor change the schema. BACKUP STAGE waits
// only for writes to non-transactional tables, DDL and commits, never for these.
var readOnlyVerbs = map[string]bool{
	"SELECT": true, "SHOW": true, "DESC": true, "DESCRIBE": true, "EXPLAIN": true, "HELP": true,
	"USE": true, "SET": true, "DO": true, "WITH": true, "VALUES": true, "TABLE": true,
}

// firstKeyword returns a statement's first keyword in upper case, skipping comments, blanks and
// opening parentheses.
func firstKeyword(s string) string {
	for {
		s = strings.TrimLeft(s, " \t\r\n(")
		switch {
		case strings.HasPrefix(s, "/*"):
			if i := strings.Index(s[2:], "*/"); i >= 0 {
				s = s[i+4:]
				continue
			}
			return ""
		case strings.HasPrefix(s, "--") || strings.HasPrefix(s, "#"):
			if i := strings.IndexByte(s, '\n'); i >= 0 {
				s = s[i+1:]
				continue
			}
			return ""
		}
		break
	}
	end := 0
	for end < len(s) && (s[end] >= 'a' && s[end] <= 'z' || s[end] >= 'A' && s[end] <= 'Z' || s[end] == '_') {
		end++
	}
	return strings.ToUpper(s[:end])
}

// blockerFilter selects which running statements a lock step waits for.
type blockerFilter int

const (
	watchNone   blockerFilter = iota // the lock waits for no running statement (BACKUP STAGE START)
	watchWrites                      // writes and DDL (the later BACKUP STAGEs)
	watchAll                         // every statement (FLUSH TABLES WITH READ LOCK)
)

// lockStep runs a statement that takes (part of) the global lock without stalling the
// application for long. It waits, up to LockWaitTimeout, until no long-running statement that
// could block the lock is visible, then attempts the lock with a server-side timeout of one
// second (so writers queued behind the attempt wait at most that long). When the deadline has
// passed it makes one last attempt, because a visible long-running statement may not block at
// all, and otherwise fails with the blockers named. The steps of one lock sequence share start
// and deadline.
func (d *dumper) lockStep(ctx context.Context, stmt string, watch blockerFilter, start, deadline time.Time) error {
	writesOnly := watch != watchAll
	warned := false
	var lastLog time.Time
	for {
		var blockers []Blocker
		if watch != watchNone {
			var err error
			if blockers, err = d.processlist(ctx, writesOnly); err != nil {
				if !warned {
					d.log.Warn("cannot read the processlist; attempting the lock without looking for long-running queries", "error", err)
					warned = true
				}
				blockers = nil
			}
		}
		if len(blockers) > 0 && time.Now().Before(deadline) {
			if time.Since(lastLog) > 5*time.Second {
				lastLog = time.Now()
				d.log.Info("waiting for long-running statements before taking the lock", "lock", stmt, "blocker_id", blockers[0].ID, "blocker_user", blockers[0].User, "blocker_verb", blockers[0].Verb, "blocker_time", blockers[0].Time.Round(time.Second))
			}
			if err := ctxtime.Sleep(ctx, min(250*time.Millisecond, time.Until(deadline))); err != nil {
				return err
			}
			continue
		}
		_, err := d.control.conn.ExecContext(ctx, stmt)
		if err == nil {
			return nil
		}
		if isPrivilegeError(err) {
			return &privilegeError{stmt: stmt, err: err}
		}
		if mysqlErrorNumber(err) != errLockWaitTimeout {
			return fmt.Errorf("%s: %w", stmt, err)
		}
		if !time.Now().Before(deadline) {
			e := &LockTimeoutError{Lock: stmt, Waited: time.Since(start)}
			e.Blockers, _ = d.processlist(context.WithoutCancel(ctx), writesOnly)
			if len(e.Blockers) == 0 {
				e.Blockers, _ = d.processlist(context.WithoutCancel(ctx), false)
			}
			return e
		}
		// Something we cannot see holds the lock (another backup, an idle LOCK TABLES). Back
		// off so repeated attempts do not keep stalling writers.
		d.log.Info("lock attempt timed out; retrying", "lock", stmt)
		if err := ctxtime.Sleep(ctx, min(time.Second, time.Until(deadline))); err != nil {
			return err
		}
	}
}

// waitNoWriters waits, holding no lock, until no long-running write or DDL is visible or the
// deadline has passed.
func (d *dumper) waitNoWriters(ctx context.Context, deadline time.Time) error {
	for time.Now().Before(deadline) {
		blockers, err := d.processlist(ctx, true)
		if err != nil || len(blockers) == 0 {
			return nil
		}
		if err := ctxtime.Sleep(ctx, min(250*time.Millisecond, time.Until(deadline))); err != nil {
			return err
		}
	}
	return nil
}

// privilegeError means the account may not take the global lock.
type privilegeError struct {
	stmt string
	err  error
}

func (e *privilegeError) Error() string { return e.stmt + ": " + e.err.Error() }
func (e *privilegeError) Unwrap() error { return e.err }

// isPrivilegeError reports whether err is a server's "access denied".
func isPrivilegeError(err error) bool {
	switch mysqlErrorNumber(err) {
	case errSpecificAccess, errDBAccessDenied, errTableAccessDenied, 1045:
		return true
	}
	return false
}

// takeSnapshot makes the dump consistent: it blocks what it must for as short as it can, starts
// a consistent snapshot on every worker, records the binlog position, and releases the lock.
// It also discovers the schema (while DDL is blocked, where the server allows) and, in
// backup_stage mode, dumps non-transactional tables while writes to them are blocked.
func (d *dumper) takeSnapshot(ctx context.Context) error {
	if _, err := d.control.conn.ExecContext(ctx, fmt.Sprintf("SET SESSION lock_wait_timeout = %d", lockAttemptTimeout)); err != nil {
		return fmt.Errorf("set lock_wait_timeout: %w", err)
	}
	if d.info.Flavor == FlavorMariaDB && d.info.atLeast(10, 4) {
		err := d.snapshotBackupStage(ctx)
		var pe *privilegeError
		if !errors.As(err, &pe) {
			return err
		}
		d.warn(fmt.Sprintf("the account may not run BACKUP STAGE (%v): dumping with one connection in a single consistent snapshot instead of %d; grant RELOAD for parallel dumps", err, d.opts.Threads))
	} else {
		err := d.snapshotFTWRL(ctx)
		var pe *privilegeError
		if !errors.As(err, &pe) {
			return err
		}
		d.warn(fmt.Sprintf("the account may not run FLUSH TABLES WITH READ LOCK (%v): dumping with one connection in a single consistent snapshot instead of %d; grant RELOAD for parallel dumps", err, d.opts.Threads))
	}
	return d.snapshotSingle(ctx)
}

// snapshotBackupStage is the MariaDB protocol. BACKUP STAGE FLUSH blocks writes to
// non-transactional tables only, BLOCK_DDL blocks schema changes, BLOCK_COMMIT blocks commits;
// InnoDB commits are blocked only between BLOCK_COMMIT and END, for milliseconds.
func (d *dumper) snapshotBackupStage(ctx context.Context) (err error) {
	d.res.Consistency.Mode = ModeBackupStage
	start := time.Now()
	deadline := start.Add(d.opts.LockWaitTimeout)
	held := false
	defer func() {
		if held {
			d.releaseLock("BACKUP STAGE END")
		}
	}()
	var flushAt time.Time
	for {
		if err := d.lockStep(ctx, "BACKUP STAGE START", watchNone, start, deadline); err != nil {
			return err
		}
		held = true
		if err := d.lockStep(ctx, "BACKUP STAGE FLUSH", watchWrites, start, deadline); err != nil {
			return err
		}
		flushAt = time.Now()
		// From FLUSH on, every write to a non-transactional table on the server waits for END
		// (the mysql.* tables included). BLOCK_DDL waits for running writes, so a long write
		// that began after FLUSH must not be waited for while FLUSH is held: let go, wait for
		// it with nothing held, and start over. After the deadline, lockStep's last attempt
		// and its error naming the blockers decide.
		blockers, err := d.processlist(ctx, true)
		if err != nil || len(blockers) == 0 || !time.Now().Before(deadline) {
			break
		}
		if _, err := d.control.conn.ExecContext(ctx, "BACKUP STAGE END"); err != nil {
			return fmt.Errorf("release the backup lock (BACKUP STAGE END) to wait for a long-running write: %w", err)
		}
		held = false
		d.log.Info("a long-running write started after BACKUP STAGE FLUSH; released the lock so other writes are not stalled, and will start over once it has finished",
			"blocker_id", blockers[0].ID, "blocker_user", blockers[0].User, "blocker_verb", blockers[0].Verb, "blocker_time", blockers[0].Time.Round(time.Second))
		if err := d.waitNoWriters(ctx, deadline); err != nil {
			return err
		}
	}
	if err := d.lockStep(ctx, "BACKUP STAGE BLOCK_DDL", watchWrites, start, deadline); err != nil {
		return err
	}
	if err := d.discoverAll(ctx); err != nil {
		return err
	}
	// Writes to non-transactional tables have been blocked since FLUSH and stay blocked until
	// END, so what is read now is what they hold at the snapshot.
	if nt := d.nonTransactional(); len(nt) > 0 {
		d.log.Info("dumping non-transactional tables while their writes are blocked", "tables", len(nt))
		if err := d.dumpTables(ctx, d.workers, nt); err != nil { // planned on a worker: the control connection holds the lock
			return err
		}
	}
	// A fresh budget: the time spent dumping non-transactional tables is not lock waiting.
	start = time.Now()
	if err := d.lockStep(ctx, "BACKUP STAGE BLOCK_COMMIT", watchWrites, start, start.Add(d.opts.LockWaitTimeout)); err != nil {
		return err
	}
	lockedAt := time.Now()
	if err := d.takeSnapshots(ctx, d.readBinlog); err != nil {
		return err
	}
	if _, err := d.control.conn.ExecContext(ctx, "BACKUP STAGE END"); err != nil {
		return fmt.Errorf("release the backup lock (BACKUP STAGE END): %w", err)
	}
	held = false
	d.res.Consistency.LockHeldMS = ms(time.Since(lockedAt))
	d.res.Consistency.NonTransactionalWritesBlockedMS = ms(time.Since(flushAt))
	d.res.Consistency.NonTransactionalConsistent = true
	d.log.Info("consistent snapshot taken", "mode", ModeBackupStage, "commits_blocked", time.Since(lockedAt).Round(time.Microsecond), "non_transactional_writes_blocked", time.Since(flushAt).Round(time.Millisecond))
	if nt := d.nonTransactional(); len(nt) > 0 {
		d.warn(fmt.Sprintf("non-transactional tables (%s) were dumped while writes to non-transactional tables were blocked for %s; they are consistent with the snapshot, but convert them to InnoDB to avoid that stall", tableList(nt), time.Since(flushAt).Round(time.Millisecond)))
	}
	return nil
}

// snapshotFTWRL is the MySQL protocol: FLUSH TABLES WITH READ LOCK blocks all writes for the
// milliseconds it takes to start the snapshots. On MySQL 8, LOCK INSTANCE FOR BACKUP keeps the
// schema from changing between discovery and the snapshot without blocking writes.
func (d *dumper) snapshotFTWRL(ctx context.Context) error {
	d.res.Consistency.Mode = ModeFTWRL
	instanceLocked := false
	if d.info.Flavor == FlavorMySQL && d.info.atLeast(8, 0) {
		if _, err := d.control.conn.ExecContext(ctx, "LOCK INSTANCE FOR BACKUP"); err != nil {
			d.warn(fmt.Sprintf("LOCK INSTANCE FOR BACKUP failed (%v): schema changes between discovery and the snapshot are not prevented", err))
		} else {
			instanceLocked = true
			defer d.releaseLock("UNLOCK INSTANCE")
		}
	}
	if !instanceLocked {
		d.warn("schema changes between reading the schema and the snapshot are not prevented on this server version")
	}
	if err := d.discoverAll(ctx); err != nil {
		return err
	}
	start := time.Now()
	if err := d.lockStep(ctx, "FLUSH TABLES WITH READ LOCK", watchAll, start, start.Add(d.opts.LockWaitTimeout)); err != nil {
		return err
	}
	held := true
	defer func() {
		if held {
			d.releaseLock("UNLOCK TABLES")
		}
	}()
	lockedAt := time.Now()
	if err := d.takeSnapshots(ctx, d.readBinlog); err != nil {
		return err
	}
	if _, err := d.control.conn.ExecContext(ctx, "UNLOCK TABLES"); err != nil {
		return fmt.Errorf("release the global read lock: %w", err)
	}
	held = false
	d.res.Consistency.LockHeldMS = ms(time.Since(lockedAt))
	d.log.Info("consistent snapshot taken", "mode", ModeFTWRL, "writes_blocked", time.Since(lockedAt).Round(time.Microsecond))
	d.warnNonTransactional()
	d.res.Consistency.NonTransactionalConsistent = len(d.nonTransactional()) == 0
	return nil
}

// snapshotSingle is the fallback without the privilege for a global lock: one connection, one
// snapshot, like mysqldump --single-transaction.
func (d *dumper) snapshotSingle(ctx context.Context) error {
	d.res.Consistency.Mode = ModeSingleTransaction
	for _, w := range d.workers[1:] {
		w.conn.Close()
	}
	d.workers = d.workers[:1]
	if err := d.takeSnapshots(ctx, d.readSnapshotBinlog); err != nil {
		return err
	}
	d.warn("schema changes made while the dump runs are not prevented in single_transaction mode; a table altered during the dump fails it")
	if err := d.discoverAll(ctx); err != nil {
		return err
	}
	d.warnNonTransactional()
	d.res.Consistency.NonTransactionalConsistent = len(d.nonTransactional()) == 0
	return nil
}

func (d *dumper) warnNonTransactional() {
	if nt := d.nonTransactional(); len(nt) > 0 {
		d.warn(fmt.Sprintf("non-transactional tables (%s) are read outside the snapshot and may be inconsistent with the other tables; convert them to InnoDB", tableList(nt)))
	}
}

func tableList(ts []*table) string {
	var parts []string
	for i, t := range ts {
		if i == 10 {
			parts = append(parts, fmt.Sprintf("and %d more", len(ts)-10))
			break
		}
		parts = append(parts, t.qualified()+" "+t.engine)
	}
	return strings.Join(parts, ", ")
}

// releaseLock runs an unlock statement even when ctx is cancelled; if that fails the control
// connection is discarded, which releases every lock it holds.
func (d *dumper) releaseLock(stmt string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := d.control.conn.ExecContext(ctx, stmt); err != nil {
		d.log.Warn("release lock failed; closing the connection instead", "stmt", stmt, "error", err)
		_ = d.control.conn.Raw(func(any) error { return driver.ErrBadConn })
	}
}

// takeSnapshots starts every worker's snapshot, records when, and reads the binary log position
// with readPos (under the global lock, or from the snapshot itself in single_transaction mode).
// A position that cannot be read is a warning: the data is still consistent.
func (d *dumper) takeSnapshots(ctx context.Context, readPos func(context.Context) error) error {
	if err := d.startSnapshots(ctx, d.workers); err != nil {
		return err
	}
	d.res.SnapshotAt = time.Now().UTC()
	if d.info.LogBin {
		if err := readPos(ctx); err != nil {
			d.warn(fmt.Sprintf("binary log position not recorded: %v", err))
		}
	}
	return nil
}

// startSnapshots starts a consistent snapshot on every worker connection.
func (d *dumper) startSnapshots(ctx context.Context, ws []*session) error {
	for _, w := range ws {
		if _, err := w.conn.ExecContext(ctx, "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY"); err != nil {
			return fmt.Errorf("start a consistent snapshot: %w", err)
		}
	}
	return nil
}

// readBinlog records the binary log position while commits are blocked.
func (d *dumper) readBinlog(ctx context.Context) error {
	b, err := showMasterStatus(ctx, d.control.conn)
	if err != nil {
		return err
	}
	var gtid sql.NullString
	q := "SELECT @@global.gtid_executed"
	if d.info.Flavor == FlavorMariaDB {
		q = "SELECT @@global.gtid_binlog_pos"
	}
	if err := d.control.conn.QueryRowContext(ctx, q).Scan(&gtid); err == nil {
		b.GTID = strings.ReplaceAll(gtid.String, "\n", "")
	}
	d.res.Binlog = b
	return nil
}

// readSnapshotBinlog records the position of the single snapshot: MariaDB reports it exactly
// through binlog_snapshot_file/position; elsewhere it is approximate.
func (d *dumper) readSnapshotBinlog(ctx context.Context) error {
	w := d.workers[0].conn
	if d.info.Flavor == FlavorMariaDB {
		rows, err := w.QueryContext(ctx, "SHOW STATUS LIKE 'binlog_snapshot_%'")
		if err != nil {
			return err
		}
		b := &Binlog{}
		for rows.Next() {
			var k, v string
			if err := rows.Scan(&k, &v); err != nil {
				rows.Close()
				return err
			}
			switch strings.ToLower(k) {
			case "binlog_snapshot_file":
				b.File = v
			case "binlog_snapshot_position":
				fmt.Sscan(v, &b.Position)
			}
		}
		rows.Close()
		if b.File != "" {
			var gtid sql.NullString
			if err := w.QueryRowContext(ctx, "SELECT BINLOG_GTID_POS("+quoteString(b.File)+", "+fmt.Sprint(b.Position)+")").Scan(&gtid); err == nil {
				b.GTID = gtid.String
			}
			d.res.Binlog = b
			return nil
		}
	}
	b, err := showMasterStatus(ctx, d.control.conn)
	if err != nil {
		return err
	}
	d.res.Binlog = b
	d.warn("the binary log position is approximate: it was read without a lock after the snapshot started")
	return nil
}

func showMasterStatus(ctx context.Context, q querier) (*Binlog, error) {
	m, err := showOne(ctx, q, "SHOW MASTER STATUS")
	if err != nil && (mysqlErrorNumber(err) == errParse || mysqlErrorNumber(err) == errCommandNotSupported) {
		m, err = showOne(ctx, q, "SHOW BINARY LOG STATUS") // MySQL 8.4 renamed it
	}
	if err != nil {
		return nil, err
	}
	b := &Binlog{File: string(m["file"])}
	fmt.Sscan(string(m["position"]), &b.Position)
	if g := m["executed_gtid_set"]; len(g) > 0 {
		b.GTID = strings.ReplaceAll(string(g), "\n", "")
	}
	return b, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
