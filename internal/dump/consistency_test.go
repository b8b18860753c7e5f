package dump

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// TestConsistencyUnderConcurrentTransfers: writers move money between accounts and log every
// transfer in a second table while a parallel dump with many small chunks runs. The restored
// total is the constant, and every account's balance matches the ledger exactly.
func TestConsistencyUnderConcurrentTransfers(t *testing.T) {
	db, dsn := openRoot(t)
	ctx := context.Background()
	name := uniqueName("bk_bank")
	dropDatabaseLater(t, db, name)
	const accounts, initial = 5000, 1000
	mustExec(t, db, "CREATE DATABASE "+QuoteIdent(name))
	mustExec(t, db, "CREATE TABLE "+qualified(name, "accounts")+" (id INT NOT NULL PRIMARY KEY, balance BIGINT NOT NULL, pad VARCHAR(100) NOT NULL) ENGINE=InnoDB")
	mustExec(t, db, "CREATE TABLE "+qualified(name, "ledger")+" (id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, src INT NOT NULL, dst INT NOT NULL, amount BIGINT NOT NULL) ENGINE=InnoDB")
	mustExec(t, db, fmt.Sprintf("INSERT INTO %s SELECT seq, %d, REPEAT('p', 100) FROM %s.seq_1_to_%d", qualified(name, "accounts"), initial, QuoteIdent(name), accounts))

	mustExec(t, db, "ANALYZE TABLE "+qualified(name, "accounts")) // statistics for chunk planning

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var transfers atomic.Int64
	var maxLatency atomic.Int64
	var writerErr error
	var errOnce sync.Once
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				a, b, amount := 1+rand.IntN(accounts), 1+rand.IntN(accounts), 1+rand.IntN(50)
				began := time.Now()
				err := func() error {
					tx, err := db.BeginTx(ctx, nil)
					if err != nil {
						return err
					}
					defer tx.Rollback()
					for _, q := range []string{
						fmt.Sprintf("UPDATE %s SET balance = balance - %d WHERE id = %d", qualified(name, "accounts"), amount, a),
						fmt.Sprintf("UPDATE %s SET balance = balance + %d WHERE id = %d", qualified(name, "accounts"), amount, b),
						fmt.Sprintf("INSERT INTO %s (src, dst, amount) VALUES (%d, %d, %d)", qualified(name, "ledger"), a, b, amount),
					} {
						if _, err := tx.ExecContext(ctx, q); err != nil {
							return err
						}
					}
					return tx.Commit()
				}()
				if err != nil {
					if mysqlErrorNumber(err) == 1213 { // deadlock between the two writers: retry
						continue
					}
					errOnce.Do(func() { writerErr = err })
					return
				}
				if l := int64(time.Since(began)); l > maxLatency.Load() {
					maxLatency.Store(l)
				}
				transfers.Add(1)
			}
		}()
	}
	time.Sleep(300 * time.Millisecond) // let the writers get going
	before := transfers.Load()
	res, dir := dumpToDir(t, Options{DSN: dsn, Databases: []string{name}, Threads: 4, ChunkBytes: 8 << 10})
	during := transfers.Load() - before
	close(stop)
	wg.Wait()
	if writerErr != nil {
		t.Fatalf("writer: %v", writerErr)
	}
	if during == 0 {
		t.Fatalf("no transfer committed while the dump ran; the test proves nothing")
	}
	t.Logf("%d transfers committed during the dump; slowest transfer %s; lock held %.2f ms", during, time.Duration(maxLatency.Load()), res.Consistency.LockHeldMS)
	if got := len(findTable(t, res, name, "accounts").Chunks); got < 10 {
		t.Errorf("accounts: got %d data objects, want many (small ChunkBytes)", got)
	}
	if res.Consistency.Mode != ModeBackupStage {
		t.Errorf("mode: got %q, want %q", res.Consistency.Mode, ModeBackupStage)
	}

	restored := uniqueName("bk_bank_restored")
	dropDatabaseLater(t, db, restored)
	restoreManually(t, dsn, dir, res, map[string]string{name: restored})
	var total int64
	if err := db.QueryRow("SELECT SUM(balance) FROM " + qualified(restored, "accounts")).Scan(&total); err != nil {
		t.Fatal(err)
	}
	if want := int64(accounts * initial); total != want {
		t.Errorf("restored total: got %d, want %d", total, want)
	}
	var mismatched int
	err := db.QueryRow(fmt.Sprintf(`SELECT COUNT(*) FROM %[1]s a WHERE a.balance <> %[3]d
		- COALESCE((SELECT SUM(amount) FROM %[2]s l WHERE l.src = a.id), 0)
		+ COALESCE((SELECT SUM(amount) FROM %[2]s l WHERE l.dst = a.id), 0)`,
		qualified(restored, "accounts"), qualified(restored, "ledger"), initial)).Scan(&mismatched)
	if err != nil {
		t.Fatal(err)
	}
	if mismatched != 0 {
		t.Errorf("restored accounts whose balance disagrees with the restored ledger: got %d, want 0", mismatched)
	}
	checkResultChecksums(t, db, res, map[string]string{name: restored})
}

// TestLockWaitTimeoutNamesBlocker: a long write to a MyISAM table makes BACKUP STAGE wait; the
// dump gives up after LockWaitTimeout with the blocker named, and other sessions' writes are
// not stalled meanwhile.
func TestLockWaitTimeoutNamesBlocker(t *testing.T) {
	db, dsn := openRoot(t)
	ctx := context.Background()
	name := uniqueName("bk_lock")
	dropDatabaseLater(t, db, name)
	mustExec(t, db, "CREATE DATABASE "+QuoteIdent(name))
	mustExec(t, db, "CREATE TABLE "+qualified(name, "slow")+" (v INT) ENGINE=MyISAM")
	mustExec(t, db, "INSERT INTO "+qualified(name, "slow")+" VALUES (1)")
	mustExec(t, db, "CREATE TABLE "+qualified(name, "other_myisam")+" (v INT) ENGINE=MyISAM")
	mustExec(t, db, "CREATE TABLE "+qualified(name, "inno")+" (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, v INT) ENGINE=InnoDB")

	blocker, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var blockerID int64
	if err := blocker.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&blockerID); err != nil {
		t.Fatal(err)
	}
	blockerDone := make(chan struct{})
	go func() {
		defer close(blockerDone)
		blocker.ExecContext(ctx, "UPDATE "+qualified(name, "slow")+" SET v = SLEEP(20)")
	}()
	t.Cleanup(func() {
		db.Exec(fmt.Sprintf("KILL QUERY %d", blockerID))
		<-blockerDone
		blocker.Close()
	})
	// Wait until the blocker has run long enough to count as long-running.
	for deadline := time.Now().Add(5 * time.Second); ; {
		var ms float64
		err := db.QueryRow("SELECT TIME_MS FROM information_schema.PROCESSLIST WHERE ID = ?", blockerID).Scan(&ms)
		if err == nil && ms > 1200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the blocking UPDATE did not start: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Writers on other tables measure how long their writes take while the dump tries.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	maxLat := map[string]*atomic.Int64{"InnoDB": {}, "MyISAM": {}}
	for engine, table := range map[string]string{"InnoDB": "inno", "MyISAM": "other_myisam"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				case <-time.After(20 * time.Millisecond):
				}
				began := time.Now()
				if _, err := db.Exec("INSERT INTO " + qualified(name, table) + " (v) VALUES (1)"); err != nil {
					t.Errorf("%s write: %v", engine, err)
					return
				}
				if l := int64(time.Since(began)); l > maxLat[engine].Load() {
					maxLat[engine].Store(l)
				}
			}
		}()
	}

	began := time.Now()
	_, err = Run(ctx, Options{DSN: dsn, Databases: []string{name}, Threads: 2, LockWaitTimeout: 2 * time.Second, Logger: testLogger(t)}, DirSink{Dir: t.TempDir()})
	elapsed := time.Since(began)
	close(stop)
	wg.Wait()

	var lte *LockTimeoutError
	if !errors.As(err, &lte) {
		t.Fatalf("Run: got %v, want a LockTimeoutError", err)
	}
	t.Logf("error: %v", err)
	found := false
	for _, b := range lte.Blockers {
		found = found || b.ID == blockerID
	}
	if !found {
		t.Errorf("blockers: got %+v, want query id %d among them", lte.Blockers, blockerID)
	}
	for _, want := range []string{fmt.Sprintf("query id %d", blockerID), "UPDATE", "KILL", "BACKUP STAGE"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q: want it to mention %q", err, want)
		}
	}
	if elapsed > 6*time.Second {
		t.Errorf("Run gave up after %s, want about LockWaitTimeout (2s) plus one 1s attempt", elapsed)
	}
	if l := time.Duration(maxLat["InnoDB"].Load()); l > 500*time.Millisecond {
		t.Errorf("slowest InnoDB write while the dump waited: got %s, want well under a second", l)
	}
	if l := time.Duration(maxLat["MyISAM"].Load()); l > 1800*time.Millisecond {
		t.Errorf("slowest write to another MyISAM table while the dump waited: got %s, want at most about one lock attempt (1s)", l)
	}
	t.Logf("Run failed after %s; slowest InnoDB write %s, slowest MyISAM write %s", elapsed.Round(time.Millisecond),
		time.Duration(maxLat["InnoDB"].Load()).Round(time.Millisecond), time.Duration(maxLat["MyISAM"].Load()).Round(time.Millisecond))
	// The lock was released: a backup lock is free again right away.
	if _, err := db.Exec(fmt.Sprintf("KILL QUERY %d", blockerID)); err != nil {
		t.Fatal(err)
	}
	<-blockerDone
	if _, err := dumpToDirErr(ctx, t, Options{DSN: dsn, Databases: []string{name}, LockWaitTimeout: 5 * time.Second}); err != nil {
		t.Errorf("dump after the blocker ended: %v", err)
	}
}

func dumpToDirErr(ctx context.Context, t *testing.T, opts Options) (*Result, error) {
	opts.Logger = testLogger(t)
	return Run(ctx, opts, DirSink{Dir: t.TempDir()})
}

// TestFallbackWithoutReloadPrivilege: an account without RELOAD cannot take BACKUP STAGE and
// dumps with one connection in a single snapshot; the Result says so and holds no password.
func TestFallbackWithoutReloadPrivilege(t *testing.T) {
	db, dsn := openRoot(t)
	name := uniqueName("bk_norel")
	dropDatabaseLater(t, db, name)
	mustExec(t, db, "CREATE DATABASE "+QuoteIdent(name))
	mustExec(t, db, "CREATE TABLE "+qualified(name, "t")+" (id INT NOT NULL PRIMARY KEY, v VARCHAR(20)) ENGINE=InnoDB")
	mustExec(t, db, "INSERT INTO "+qualified(name, "t")+" SELECT seq, CONCAT('v', seq) FROM "+QuoteIdent(name)+".seq_1_to_500")
	mustExec(t, db, "CREATE TABLE "+qualified(name, "m")+" (id INT NOT NULL PRIMARY KEY) ENGINE=MyISAM")
	mustExec(t, db, "INSERT INTO "+qualified(name, "m")+" VALUES (1), (2)")

	user := uniqueName("bk_norel")
	password := uniqueName("secret-pw")
	for _, host := range []string{"%", "localhost"} {
		acct := quoteString(user) + "@" + quoteString(host)
		mustExec(t, db, "CREATE USER "+acct+" IDENTIFIED BY "+quoteString(password))
		t.Cleanup(func() { db.Exec("DROP USER IF EXISTS " + acct) })
		mustExec(t, db, "GRANT SELECT, SHOW VIEW, TRIGGER, EVENT ON "+QuoteIdent(name)+".* TO "+acct)
		mustExec(t, db, "GRANT SELECT ON mysql.proc TO "+acct)
	}
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.User, cfg.Passwd = user, password
	res, dir := dumpToDir(t, Options{DSN: cfg.FormatDSN(), Databases: []string{name}, Threads: 3, ChunkBytes: 1024})

	if got, want := res.Consistency.Mode, ModeSingleTransaction; got != want {
		t.Errorf("mode: got %q, want %q", got, want)
	}
	var warned bool
	for _, w := range res.Warnings {
		warned = warned || strings.Contains(w, "RELOAD")
	}
	if !warned {
		t.Errorf("warnings: got %q, want one that says RELOAD is missing", res.Warnings)
	}
	if res.Consistency.NonTransactionalConsistent {
		t.Errorf("non_transactional_consistent: got true, want false in single_transaction mode")
	}
	checkResultChecksums(t, db, res, nil)
	b, _ := json.Marshal(res)
	if strings.Contains(string(b), password) {
		t.Errorf("the Result JSON contains the DSN password")
	}
	if n := len(findTable(t, res, name, "t").Chunks); n < 2 {
		t.Errorf("t: got %d data objects, want several (chunking works with one connection too)", n)
	}
	_ = dir
}

// TestRowTooLarge: a row whose INSERT would exceed max_allowed_packet fails the dump with an
// error naming the table and the row's key, and leaves no partial object.
func TestRowTooLarge(t *testing.T) {
	db, dsn := openRoot(t)
	name := uniqueName("bk_big")
	dropDatabaseLater(t, db, name)
	var maxPacket int64
	if err := db.QueryRow("SELECT @@max_allowed_packet").Scan(&maxPacket); err != nil {
		t.Fatal(err)
	}
	mustExec(t, db, "CREATE DATABASE "+QuoteIdent(name))
	mustExec(t, db, "CREATE TABLE "+qualified(name, "big")+" (id INT NOT NULL PRIMARY KEY, t LONGTEXT) ENGINE=InnoDB")
	// Quotes double when escaped: 0.6 of the packet as a value needs 1.2 of it as SQL.
	mustExec(t, db, fmt.Sprintf("INSERT INTO %s VALUES (1, 'small'), (42, REPEAT('''', %d))", qualified(name, "big"), maxPacket*6/10))
	dir := t.TempDir()
	_, err := Run(context.Background(), Options{DSN: dsn, Databases: []string{name}, Logger: testLogger(t)}, DirSink{Dir: dir})
	var rtl *RowTooLargeError
	if !errors.As(err, &rtl) {
		t.Fatalf("Run: got %v, want a RowTooLargeError", err)
	}
	if rtl.Table != "big" || rtl.Key != "42" || rtl.MaxAllowed != maxPacket {
		t.Errorf("error fields: got table %q key %q max %d, want big, 42, %d", rtl.Table, rtl.Key, rtl.MaxAllowed, maxPacket)
	}
	for _, want := range []string{"`big`", "max_allowed_packet", "key 42"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q: want it to mention %s", err, want)
		}
	}
	t.Logf("error: %v", err)
	files, _ := filepath.Glob(filepath.Join(dir, "*", "data", "big", "*"))
	if len(files) != 0 {
		t.Errorf("data objects of the failed table: got %v, want none", files)
	}
}

// cancelSink cancels the dump when the first data object is created.
type cancelSink struct {
	DirSink
	cancel context.CancelFunc
	once   sync.Once
}

func (s *cancelSink) Create(ctx context.Context, name string) (io.WriteCloser, error) {
	if strings.Contains(name, "/data/") {
		s.once.Do(s.cancel)
	}
	return s.DirSink.Create(ctx, name)
}

// TestCancelStopsPromptly: cancelling ctx in the middle of a large table stops every worker.
func TestCancelStopsPromptly(t *testing.T) {
	db, dsn := openRoot(t)
	name := uniqueName("bk_cancel")
	dropDatabaseLater(t, db, name)
	mustExec(t, db, "CREATE DATABASE "+QuoteIdent(name))
	mustExec(t, db, "CREATE TABLE "+qualified(name, "t")+" (id INT NOT NULL PRIMARY KEY, v VARCHAR(200)) ENGINE=InnoDB")
	mustExec(t, db, "INSERT INTO "+qualified(name, "t")+" SELECT seq, REPEAT('x', 200) FROM "+QuoteIdent(name)+".seq_1_to_300000")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	began := time.Now()
	_, err := Run(ctx, Options{DSN: dsn, Databases: []string{name}, Threads: 2, ChunkBytes: 4 << 20, Logger: testLogger(t)},
		&cancelSink{DirSink: DirSink{Dir: t.TempDir()}, cancel: cancel})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: got %v, want context.Canceled", err)
	}
	if d := time.Since(began); d > 3*time.Second {
		t.Errorf("Run returned %s after the cancel, want promptly", d)
	}
}

// failingSink fails to finish one object.
type failingSink struct{ DirSink }

type failingWriter struct{ io.WriteCloser }

func (w failingWriter) Close() error {
	w.WriteCloser.Close()
	return errors.New("upload refused by target")
}

func (s failingSink) Create(ctx context.Context, name string) (io.WriteCloser, error) {
	w, err := s.DirSink.Create(ctx, name)
	if err != nil || !strings.Contains(name, "/data/") {
		return w, err
	}
	return failingWriter{w}, nil
}

func TestSinkErrorFailsTheDump(t *testing.T) {
	db, dsn := openRoot(t)
	name := uniqueName("bk_sinkerr")
	dropDatabaseLater(t, db, name)
	mustExec(t, db, "CREATE DATABASE "+QuoteIdent(name))
	mustExec(t, db, "CREATE TABLE "+qualified(name, "t")+" (id INT NOT NULL PRIMARY KEY) ENGINE=InnoDB")
	mustExec(t, db, "INSERT INTO "+qualified(name, "t")+" VALUES (1)")
	_, err := Run(context.Background(), Options{DSN: dsn, Databases: []string{name}, Logger: testLogger(t)}, failingSink{DirSink{Dir: t.TempDir()}})
	if err == nil || !strings.Contains(err.Error(), "upload refused by target") || !strings.Contains(err.Error(), "/data/t/00001.sql") {
		t.Errorf("Run: got %v, want an error naming the object and the sink's reason", err)
	}
}

func TestMissingDatabaseIsAnError(t *testing.T) {
	_, dsn := openRoot(t)
	_, err := Run(context.Background(), Options{DSN: dsn, Databases: []string{"bk_no_such_db_ever"}}, DirSink{Dir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "bk_no_such_db_ever") {
		t.Errorf("Run: got %v, want an error naming the missing database", err)
	}
}

// ddlSink runs a statement (in its own session) when the first data object of a table is
// created, and records how long it took.
type ddlSink struct {
	DirSink
	db      *sql.DB
	trigger string // object name prefix
	stmt    string
	once    sync.Once
	took    time.Duration
	err     error
}

func (s *ddlSink) Create(ctx context.Context, name string) (io.WriteCloser, error) {
	if strings.HasPrefix(name, s.trigger) {
		s.once.Do(func() {
			began := time.Now()
			conn, err := s.db.Conn(ctx)
			if err == nil {
				defer conn.Close()
				if _, err = conn.ExecContext(ctx, "SET SESSION lock_wait_timeout = 5"); err == nil {
					_, err = conn.ExecContext(ctx, s.stmt)
				}
			}
			s.took, s.err = time.Since(began), err
		})
	}
	return s.DirSink.Create(ctx, name)
}

// TestSchemaChangeDuringDump: the dump holds no metadata lock on tables it has not read yet, so
// an ALTER on one of them goes through at once (the application is never stuck behind it), and
// the dump then fails with an error that says what happened.
func TestSchemaChangeDuringDump(t *testing.T) {
	db, dsn := openRoot(t)
	name := uniqueName("bk_ddl")
	dropDatabaseLater(t, db, name)
	mustExec(t, db, "CREATE DATABASE "+QuoteIdent(name))
	mustExec(t, db, "CREATE TABLE "+qualified(name, "a_big")+" (id INT NOT NULL PRIMARY KEY, v VARCHAR(200)) ENGINE=InnoDB")
	mustExec(t, db, "INSERT INTO "+qualified(name, "a_big")+" SELECT seq, REPEAT('x', 200) FROM "+QuoteIdent(name)+".seq_1_to_20000")
	mustExec(t, db, "CREATE TABLE "+qualified(name, "b_small")+" (id INT NOT NULL PRIMARY KEY, v INT) ENGINE=InnoDB")
	mustExec(t, db, "INSERT INTO "+qualified(name, "b_small")+" VALUES (1, 1)")
	mustExec(t, db, "ANALYZE TABLE "+qualified(name, "a_big")+", "+qualified(name, "b_small"))
	sink := &ddlSink{DirSink: DirSink{Dir: t.TempDir()}, db: db, trigger: encodeName(name) + "/data/a_big/",
		stmt: "ALTER TABLE " + qualified(name, "b_small") + " ADD COLUMN z INT, ALGORITHM=COPY"}
	_, err := Run(context.Background(), Options{DSN: dsn, Databases: []string{name}, Threads: 1, Logger: testLogger(t)}, sink)
	if sink.err != nil || sink.took > 2*time.Second {
		t.Errorf("ALTER of a table not yet dumped: took %s (%v), want it to go through at once", sink.took, sink.err)
	}
	if err == nil || !strings.Contains(err.Error(), "b_small") || !strings.Contains(err.Error(), "after the snapshot") {
		t.Errorf("Run: got %v, want an error naming b_small and explaining the schema change", err)
	}
	t.Logf("ALTER took %s; Run: %v", sink.took.Round(time.Millisecond), err)
}
