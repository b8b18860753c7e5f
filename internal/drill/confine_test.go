package drill

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/backupd/backupd/internal/config"
)

// reachableTempDir is a test directory the scratch server's unprivileged account can pass
// through (t.TempDir's top directory is 0700 root).
func reachableTempDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestEmbeddedConfined starts a real embedded scratch and tries, as a hostile set's
// statements would, to read a file outside its directory, write one, and reach it over TCP;
// it also creates an event, which a scratch started with the event scheduler DISABLED refused
// (error 1577), failing every drill of a database with an event.
func TestEmbeddedConfined(t *testing.T) {
	ctx := context.Background()
	parent := reachableTempDir(t)
	// A world-readable file outside the scratch's own directory, as an identity file with
	// loose permissions would be.
	secret := filepath.Join(parent, "readable.txt")
	if err := os.WriteFile(secret, []byte("AGE-SECRET-KEY-1NOTAREALKEY\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	ws, err := newWorkspace(parent, "confine", log)
	if err != nil {
		t.Fatal(err)
	}
	e, err := startEmbedded(ctx, filepath.Join(ws, "server"), &config.EmbeddedScratch{}, 128<<20, log)
	if err != nil {
		t.Fatalf("start the embedded scratch: %v", err)
	}
	t.Cleanup(func() { e.Close() })
	db, err := sql.Open("mysql", e.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)

	for _, file := range []string{"/etc/passwd", secret} {
		var got sql.NullString
		if err := db.QueryRow("SELECT LOAD_FILE(?)", file).Scan(&got); err != nil {
			t.Fatalf("LOAD_FILE(%s): %v", file, err)
		}
		if got.Valid {
			t.Errorf("LOAD_FILE(%s) returned %d bytes, want NULL", file, len(got.String))
		}
	}
	for _, file := range []string{filepath.Join(os.TempDir(), fmt.Sprintf("backupd-outfile-%d", os.Getpid())), filepath.Join(ws, "outfile")} {
		_, err := db.Exec("SELECT 'x' INTO OUTFILE '" + file + "'")
		var me *mysql.MySQLError
		if err == nil {
			os.Remove(file)
			t.Errorf("SELECT … INTO OUTFILE %s succeeded, want it refused", file)
		} else if !errors.As(err, &me) || me.Number != 1290 {
			t.Errorf("SELECT … INTO OUTFILE %s: got %v, want error 1290 (secure_file_priv)", file, err)
		}
	}

	pid := e.cmd.Process.Pid
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if f := strings.Fields(line); len(f) == 5 && f[0] == "Uid:" && slices.Contains(f[1:], "0") {
			t.Errorf("the scratch server runs with uid 0 (%s), want an unprivileged account", line)
		}
	}
	if ports := listeningTCP(t, pid); len(ports) > 0 {
		t.Errorf("the scratch server listens on TCP %v, want the socket only", ports)
	}
	var skip int
	if err := db.QueryRow("SELECT @@skip_networking").Scan(&skip); err != nil || skip != 1 {
		t.Errorf("@@skip_networking: got %d (%v), want 1", skip, err)
	}

	for _, q := range []string{
		"CREATE DATABASE ev",
		"CREATE TABLE ev.t (id INT PRIMARY KEY AUTO_INCREMENT)",
		"CREATE EVENT ev.every_second ON SCHEDULE EVERY 1 SECOND DO INSERT INTO ev.t VALUES (NULL)",
		"CREATE EVENT ev.off ON SCHEDULE EVERY 1 DAY DISABLE DO DELETE FROM ev.t",
	} {
		if _, err := db.Exec(q); err != nil {
			t.Errorf("%s: %v", q, err)
		}
	}
	var sched string
	if err := db.QueryRow("SELECT @@event_scheduler").Scan(&sched); err != nil || sched != "OFF" {
		t.Errorf("@@event_scheduler: got %q (%v), want OFF", sched, err)
	}
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = 'event_scheduler'").Scan(&n); err != nil || n != 0 {
		t.Errorf("event scheduler threads: got %d (%v), want none", n, err)
	}
}

// listeningTCP lists the local addresses of the TCP sockets process pid listens on.
func listeningTCP(t *testing.T, pid int) []string {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if err == nil && strings.HasPrefix(link, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] = true
		}
	}
	if len(inodes) == 0 {
		t.Fatalf("process %d has no socket at all: the check would prove nothing", pid)
	}
	var out []string
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(table)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			// sl local rem st tx:rx tr:when retrnsmt uid timeout inode
			if len(f) >= 10 && f[3] == "0A" && inodes[f[9]] {
				out = append(out, f[1])
			}
		}
	}
	return out
}

// TestSweepKillsOnlyItsServer: the workspace sweeper kills the pid in a dead drill's pid file
// only when that process runs as the owner of the data directory with exactly that data
// directory; the pid file is written by the server's own account, and pids are reused.
func TestSweepKillsOnlyItsServer(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test starts processes as another user and must run as root (as CI does)")
	}
	const nobody = 65534
	for _, tc := range []struct {
		name   string
		uid    uint32
		suffix string // appended to the data directory in the process's argument
		killed bool
	}{
		{"its server", nobody, "", true},
		{"path only contained in an argument", nobody, "-other", false},
		{"another owner", 0, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			ws := filepath.Join(parent, workspacePrefix+"p-1")
			datadir := filepath.Join(ws, "server", "data")
			if err := os.MkdirAll(datadir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(datadir, nobody, nobody); err != nil {
				t.Fatal(err)
			}
			gone := exec.Command("true")
			if err := gone.Run(); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(ws, ownerFile), []byte(fmt.Sprint(gone.Process.Pid)), 0o600); err != nil {
				t.Fatal(err)
			}
			proc := exec.Command("sh", "-c", "sleep 600; :", "sh", "--datadir="+datadir+tc.suffix)
			proc.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: tc.uid, Gid: tc.uid}}
			if err := proc.Start(); err != nil {
				t.Fatal(err)
			}
			waited := make(chan struct{})
			go func() { proc.Wait(); close(waited) }()
			t.Cleanup(func() { proc.Process.Kill(); <-waited })
			pid := proc.Process.Pid
			if err := os.WriteFile(filepath.Join(ws, "server", serverPIDFile), []byte(fmt.Sprint(pid)), 0o644); err != nil {
				t.Fatal(err)
			}

			sweepStale(parent, slog.New(slog.DiscardHandler))
			killed := true
			if tc.killed {
				select { // the sweeper saw it die; this only waits for the reaper goroutine
				case <-waited:
				case <-time.After(10 * time.Second):
					killed = false
				}
			} else {
				select {
				case <-waited:
				default:
					killed = false
				}
			}
			if killed != tc.killed {
				t.Errorf("process with uid %d and argument --datadir=%s%s: killed %v, want %v", tc.uid, datadir, tc.suffix, killed, tc.killed)
			}
			if _, err := os.Stat(ws); !os.IsNotExist(err) {
				t.Errorf("the dead drill's workspace is still there (%v)", err)
			}
		})
	}
}
