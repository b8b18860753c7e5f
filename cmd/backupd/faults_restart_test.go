package main

import (
	"database/sql"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/testenv"
)

// throwawayMariaDB is a mariadbd of the test's own (DESIGN.md's recipe), on a loopback
// port, so that the test may kill and restart it; the machine's shared server is never
// touched.
type throwawayMariaDB struct {
	dir, port string
	cmd       *exec.Cmd
}

func newThrowawayMariaDB(t *testing.T) *throwawayMariaDB {
	t.Helper()
	dir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := fmt.Sprint(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	out, err := exec.Command("mariadb-install-db", "--no-defaults", "--datadir="+filepath.Join(dir, "data"),
		"--auth-root-authentication-method=normal", "--skip-test-db", "--user=root").CombinedOutput()
	if err != nil {
		t.Fatalf("mariadb-install-db: %v\n%s", err, out)
	}
	m := &throwawayMariaDB{dir: dir, port: port}
	m.start(t)
	t.Cleanup(func() {
		if m.cmd != nil {
			m.cmd.Process.Kill()
			m.cmd.Wait()
		}
	})
	return m
}

func (m *throwawayMariaDB) dsn() string { return "root@tcp(127.0.0.1:" + m.port + ")/" }

func (m *throwawayMariaDB) start(t *testing.T) {
	t.Helper()
	m.cmd = exec.Command("mariadbd", "--no-defaults", "--datadir="+filepath.Join(m.dir, "data"),
		"--socket="+filepath.Join(m.dir, "sock"), "--port="+m.port, "--bind-address=127.0.0.1",
		"--user=root", "--skip-log-bin", "--innodb-flush-log-at-trx-commit=0", "--innodb-doublewrite=0")
	logf, err := os.Create(filepath.Join(m.dir, "error.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	m.cmd.Stdout, m.cmd.Stderr = logf, logf
	if err := m.cmd.Start(); err != nil {
		t.Fatalf("start mariadbd: %v", err)
	}
	db, err := sql.Open("mysql", m.dsn())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for deadline := time.Now().Add(30 * time.Second); ; {
		if err = db.Ping(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(m.dir, "error.log"))
			t.Fatalf("throwaway mariadbd not ready: %v\n%s", err, log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// crash kills the server as a crash or an OOM kill would; start brings it back.
func (m *throwawayMariaDB) crash() {
	m.cmd.Process.Kill()
	m.cmd.Wait()
	m.cmd = nil
}

// TestFaultMariaDBRestartedMidDump crashes and restarts the source server while the dump
// reads a table. The backup fails naming a table, commits nothing, and the next backup,
// after the restart, succeeds and verifies.
func TestFaultMariaDBRestartedMidDump(t *testing.T) {
	srv := testenv.MinIO(t)
	m := newThrowawayMariaDB(t)
	e := newFaultEnv(t)
	e.dsn = m.dsn()
	e.db = testenv.SmallDatabase(t, e.dsn, "restart")
	randomTable(t, e.dsn, e.db, 8)
	cfg := e.config(t, "\n  minio:"+s3TargetYAML(srv, testenv.NewBucket(t, srv)), []string{"minio"}, 0)

	admin := testenv.OpenDB(t, e.dsn)
	crashed := make(chan struct{})
	stop := make(chan struct{})
	go func() {
		defer close(crashed)
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			var id int64
			if admin.QueryRow("SELECT id FROM information_schema.processlist WHERE info LIKE ? AND info NOT LIKE '%processlist%' LIMIT 1",
				"SELECT %"+quoteIdent(e.db)+".`blobs`%").Scan(&id) == nil {
				m.crash()
				return
			}
		}
	}()
	code, _, errOut := runCLI(t, "backup", "--config", cfg, "--policy", e.policy)
	close(stop)
	<-crashed
	t.Logf("backup: exit %d; last line of stderr: %s", code, lastLine([]byte(errOut)))
	if m.cmd != nil {
		t.Fatalf("the dump's SELECT on blobs was never seen, so the server was not restarted (backup exit %d)", code)
	}
	m.start(t)
	if code != exitJobFailed {
		t.Fatalf("backup with the server restarted mid-dump: exit %d, want %d\n%s", code, exitJobFailed, errOut)
	}
	// Every connection is gone, so whichever table a dump thread was reading is named.
	if want := "dump: table " + quoteIdent(e.db) + "."; !strings.Contains(errOut, want) {
		t.Errorf("backup stderr: got %q, want it to name a table (%q)", errOut, want)
	}
	checkListedSetsVerify(t, cfg, e.policy, nil)
	if code, _, errOut := runCLI(t, "backup", "--config", cfg, "--policy", e.policy); code != exitOK {
		t.Fatalf("backup after the restart: exit %d, want 0\n%s", code, errOut)
	}
	checkListedSetsVerify(t, cfg, e.policy, [][]string{{"minio"}})
}
