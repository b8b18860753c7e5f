package dump

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/testenv"
)

// openRoot opens the test server as root.
func openRoot(t testing.TB) (*sql.DB, string) {
	t.Helper()
	dsn := testenv.MariaDBDSN(t)
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatalf("open %s: %v", dsn, err)
	}
	t.Cleanup(func() { db.Close() })
	return db, dsn
}

func mustExec(t testing.TB, db interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}, q string, args ...any) {
	t.Helper()
	if _, err := db.ExecContext(context.Background(), q, args...); err != nil {
		t.Fatalf("exec %q: %v", q, err)
	}
}

// The mariadb client and unique names come from testenv, shared with every package's tests.
var (
	uniqueName = testenv.UniqueName
	cliArgs    = testenv.ClientArgs
	mariadbCLI = testenv.MariaDBCLI
)

// loadFixture loads an SQL file through the mariadb client after replacing strings in it.
func loadFixture(t testing.TB, dsn, path string, replace ...string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read fixture: %v", err)
	}
	b = []byte(strings.NewReplacer(replace...).Replace(string(b)))
	mariadbCLI(t, dsn, b)
}

// dropDatabase drops a database at the end of the test.
func dropDatabaseLater(t testing.TB, db *sql.DB, name string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+QuoteIdent(name))
	})
}

// restoreManually loads a dump from a DirSink directory with the mariadb client, one process
// per object, in the documented order: every database's schema phase, then every data object,
// then every post phase, then users. rename maps a source database to the one to load into
// (the database object is then replaced by a CREATE DATABASE of the new name).
func restoreManually(t testing.TB, dsn, dir string, res *Result, rename map[string]string) {
	t.Helper()
	read := func(key string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(key)))
		if err != nil {
			t.Fatalf("read object: %v", err)
		}
		return b
	}
	target := func(db Database) string {
		if n, ok := rename[db.Name]; ok {
			return n
		}
		return db.Name
	}
	for _, phase := range []string{PhaseSchema, PhaseData, PhasePost} {
		for _, db := range res.Databases {
			for _, o := range db.Objects {
				if o.Phase != phase {
					continue
				}
				if o.Kind == KindDatabase {
					if n := target(db); n != db.Name {
						mariadbCLI(t, dsn, []byte("CREATE DATABASE "+QuoteIdent(n)+" CHARACTER SET "+db.Charset+" COLLATE "+db.Collation+";\n"))
					} else {
						mariadbCLI(t, dsn, read(o.Key))
					}
					continue
				}
				mariadbCLI(t, dsn, read(o.Key), "--database="+target(db))
			}
		}
	}
	if res.Users != nil {
		mariadbCLI(t, dsn, read(res.Users.Key))
	}
}

// dumpToDir runs Run into a fresh directory.
func dumpToDir(t testing.TB, opts Options) (*Result, string) {
	t.Helper()
	dir := t.TempDir()
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	res, err := Run(context.Background(), opts, DirSink{Dir: dir})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return res, dir
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// restoreWithLoader loads a dump the way backupd's own restorer must: every object in its own
// session, split with ReadStatements, statements sent unchanged; data objects in parallel.
func restoreWithLoader(t testing.TB, dsn, dir string, res *Result, rename map[string]string) {
	t.Helper()
	ldb, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer ldb.Close()
	ctx := context.Background()
	load := func(key, database string) error {
		conn, err := ldb.Conn(ctx)
		if err != nil {
			return err
		}
		defer conn.Close()
		defer conn.Raw(func(any) error { return driver.ErrBadConn }) // the session was changed
		if database != "" {
			if _, err := conn.ExecContext(ctx, "USE "+QuoteIdent(database)); err != nil {
				return err
			}
		}
		f, err := os.Open(filepath.Join(dir, filepath.FromSlash(key)))
		if err != nil {
			return err
		}
		defer f.Close()
		return ReadStatements(f, func(s []byte) error {
			if _, err := conn.ExecContext(ctx, string(s)); err != nil {
				return fmt.Errorf("%s: %w in %.200s", key, err, s)
			}
			return nil
		})
	}
	target := func(db Database) string {
		if n, ok := rename[db.Name]; ok {
			return n
		}
		return db.Name
	}
	for _, phase := range []string{PhaseSchema, PhaseData, PhasePost} {
		var wg sync.WaitGroup
		errs := make(chan error, 1000)
		for _, db := range res.Databases {
			for _, o := range db.Objects {
				if o.Phase != phase {
					continue
				}
				if o.Kind == KindDatabase {
					if n := target(db); n != db.Name {
						mustExec(t, ldb, "CREATE DATABASE "+QuoteIdent(n)+" CHARACTER SET "+db.Charset+" COLLATE "+db.Collation)
					} else if err := load(o.Key, ""); err != nil {
						t.Fatal(err)
					}
					continue
				}
				if phase != PhaseData {
					if err := load(o.Key, target(db)); err != nil {
						t.Fatal(err)
					}
					continue
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := load(o.Key, target(db)); err != nil {
						errs <- err
					}
				}()
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
}
