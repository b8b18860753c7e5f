package drill

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/backupd/backupd/internal/config"
)

// The embedded scratch: a MariaDB or MySQL server of its own, started from the local binaries
// in a temporary directory with a private socket and no TCP port, tuned for loading speed
// because nothing in it has to survive (no binary log, no doublewrite, no redo log flushing at
// commit, a large buffer pool), shut down and deleted afterwards.
//
// It runs in a process group of its own, so a terminal's Ctrl-C reaches backupd (which shuts
// it down cleanly) rather than the server, and it gets SIGKILL if backupd itself dies
// (PR_SET_PDEATHSIG), so a killed drill leaves no server running. The directory a killed drill
// leaves behind is removed by the next drill (see workspace.go).

const (
	serverPIDFile = "mysqld.pid"  // the server's
	socketName    = "mysqld.sock" // sockets are limited to 107 bytes of path
	errorLogName  = "error.log"

	embeddedStartTimeout = 3 * time.Minute // install and start on a loaded machine
	shutdownWait         = 30 * time.Second
)

// embedded is a running throwaway server.
type embedded struct {
	dir     string
	socket  string
	flavor  string // "mariadb" or "mysql"
	version string
	cmd     *exec.Cmd
	exited  chan struct{} // closed when the server process has been waited for
	acct    *runAs        // the account it runs as; nil: backupd's own
	log     *slog.Logger
}

// serverBinaries finds the server and, for MariaDB, its install script.
func serverBinaries(configured string) (server, install, flavor string, err error) {
	server = configured
	if server == "" {
		server = lookPath("mariadbd", "mysqld")
	}
	if server == "" {
		return "", "", "", errors.New("no mariadbd or mysqld found in PATH or /usr/sbin: install the mariadb-server (or mysql-server) package on this host, " +
			"set drill.scratch.embedded.server to the server binary, or use drill.scratch.dsn with an existing server")
	}
	out, err := exec.Command(server, "--version").CombinedOutput()
	if err != nil {
		return "", "", "", fmt.Errorf("run %s --version: %v: %s", server, err, strings.TrimSpace(string(out)))
	}
	flavor = "mysql"
	if bytes.Contains(bytes.ToLower(out), []byte("mariadb")) {
		flavor = "mariadb"
		install = lookPath("mariadb-install-db", "mysql_install_db")
		if install == "" {
			return "", "", "", errors.New("found " + server + " but not mariadb-install-db, which sets up the scratch server's data directory: install the mariadb-server package")
		}
	}
	return server, install, flavor, nil
}

// lookPath finds the first of names in PATH or in the usual server directories (root's PATH
// has /usr/sbin; a service account's often does not).
func lookPath(names ...string) string {
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	for _, dir := range []string{"/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin", "/usr/local/mysql/bin", "/usr/libexec"} {
		for _, n := range names {
			p := filepath.Join(dir, n)
			if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
				return p
			}
		}
	}
	return ""
}

// startEmbedded creates the server's directory dir (inside the drill's workspace) and starts
// the server there; on error the server is stopped again (the caller removes the workspace).
func startEmbedded(ctx context.Context, dir string, cfg *config.EmbeddedScratch, bufferPool int64, log *slog.Logger) (e *embedded, err error) {
	server, install, flavor, err := serverBinaries(cfg.Server)
	if err != nil {
		return nil, err
	}
	e = &embedded{dir: dir, socket: filepath.Join(dir, socketName), flavor: flavor, log: log}
	defer func() {
		if err != nil {
			e.Close()
			e = nil
		}
	}()
	if len(e.socket) > 100 {
		return e, fmt.Errorf("the scratch server's socket path %s is too long for a unix socket: set drill.scratch.embedded.dir to a shorter directory", e.socket)
	}
	acct, err := scratchAccount()
	if err != nil {
		return e, err
	}
	if acct != nil {
		// The workspace stays backupd's; the server only needs to pass through it to its own
		// directory.
		if err := os.Chmod(filepath.Dir(dir), 0o711); err != nil {
			return e, fmt.Errorf("create the scratch server's directory: %w", err)
		}
	}
	var own []string
	for _, sub := range []string{"", "data", "tmp", scratchFilesDir} {
		p := filepath.Join(dir, sub)
		if err := os.Mkdir(p, 0o700); err != nil {
			return e, fmt.Errorf("create the scratch server's directory: %w", err)
		}
		own = append(own, p)
	}
	if err := acct.give(own...); err != nil {
		return e, err
	}
	if err := acct.checkReachable(dir); err != nil {
		return e, err
	}
	e.acct = acct

	// Initialise the data directory.
	var initArgs []string
	var initCmd string
	if flavor == "mariadb" {
		initCmd = install
		initArgs = []string{"--no-defaults", "--datadir=" + filepath.Join(dir, "data"),
			"--auth-root-authentication-method=normal", "--skip-test-db", "--skip-name-resolve"}
	} else {
		initCmd = server
		initArgs = []string{"--no-defaults", "--initialize-insecure", "--datadir=" + filepath.Join(dir, "data"),
			"--tmpdir=" + filepath.Join(dir, "tmp"), "--log-error=" + filepath.Join(dir, "init.log")}
	}
	start := time.Now()
	if out, err := runGroup(ctx, initCmd, initArgs, dir, acct); err != nil {
		if ctx.Err() != nil {
			return e, ctx.Err()
		}
		return e, fmt.Errorf("initialise the scratch server's data directory (%s): %v: %s", filepath.Base(initCmd), err, lastLines(out, 5))
	}
	log.Debug("scratch data directory initialised", "dir", dir, "duration", time.Since(start).Round(time.Millisecond))

	// Start the server.
	args := []string{"--no-defaults",
		"--datadir=" + filepath.Join(dir, "data"),
		"--socket=" + e.socket,
		"--pid-file=" + filepath.Join(dir, serverPIDFile),
		"--log-error=" + filepath.Join(dir, errorLogName),
		"--tmpdir=" + filepath.Join(dir, "tmp"),
		"--skip-networking",
		"--skip-log-bin",
		"--innodb-flush-log-at-trx-commit=0",
		"--innodb-doublewrite=0",
		"--innodb-buffer-pool-size=" + strconv.FormatInt(bufferPool, 10),
		"--innodb-log-file-size=" + strconv.FormatInt(logFileSize(bufferPool), 10),
		"--innodb-buffer-pool-load-at-startup=0",
		"--innodb-buffer-pool-dump-at-shutdown=0",
		"--max-allowed-packet=1073741824",
		"--performance-schema=OFF",
		// Restored events must not fire and change the data that is being compared. OFF, not
		// DISABLED: a server started with DISABLED refuses CREATE EVENT (error 1577), so every
		// set with an event failed its drill.
		"--event-scheduler=OFF",
		"--local-infile=0",
		// Files only inside the server's own directory: LOAD_FILE, SELECT … INTO OUTFILE and
		// LOAD DATA INFILE in a hostile set cannot read backupd's keys or write anywhere else.
		"--secure-file-priv=" + filepath.Join(dir, scratchFilesDir),
	}
	if flavor == "mariadb" {
		args = append(args, "--innodb-flush-method=nosync", "--skip-name-resolve")
	} else {
		args = append(args, "--loose-mysqlx=OFF", "--skip-name-resolve")
	}
	cmd := exec.Command(server, args...)
	cmd.Dir = dir
	cmd.Env = scratchEnv(dir)
	// Setpgid: signals to backupd's terminal group do not reach the server. Pdeathsig: the server
	// dies with backupd (Go sets it after the credential, which would otherwise clear it).
	// Credential: the server never runs as root, not even before it would drop privileges.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: acct.credential()}
	console, err := os.Create(filepath.Join(dir, "console.log"))
	if err != nil {
		return e, fmt.Errorf("start the scratch server: %w", err)
	}
	cmd.Stdout, cmd.Stderr = console, console
	if err := cmd.Start(); err != nil {
		console.Close()
		return e, fmt.Errorf("start the scratch server %s: %w", server, err)
	}
	console.Close()
	e.cmd = cmd
	e.exited = make(chan struct{})
	go func() {
		cmd.Wait()
		close(e.exited)
	}()
	if err := e.waitReady(ctx); err != nil {
		return e, err
	}
	log.Info("scratch server started", "server", e.version, "dir", dir, "buffer_pool", bufferPool,
		"duration", time.Since(start).Round(time.Millisecond))
	return e, nil
}

// logFileSize sizes the redo log after the buffer pool: a small log makes InnoDB flush pages
// early during a bulk load.
func logFileSize(bufferPool int64) int64 {
	return min(max(bufferPool/2, 96<<20), 1<<30)
}

// runGroup runs a command in its own process group, killing the whole group (a bootstrap
// server included) when ctx ends.
func runGroup(ctx context.Context, name string, args []string, dir string, acct *runAs) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = scratchEnv(dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: acct.credential()}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	// Whatever it started in its group goes too.
	if cmd.Process != nil {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	return out.Bytes(), err
}

// DSN connects as root through the private socket.
func (e *embedded) DSN() string {
	c := mysql.NewConfig()
	c.User = "root"
	c.Net = "unix"
	c.Addr = e.socket
	return c.FormatDSN()
}

// waitReady polls the socket until the server answers, fails or takes too long.
func (e *embedded) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(embeddedStartTimeout)
	db, err := sql.Open("mysql", e.DSN()+"?timeout=2s")
	if err != nil {
		return err
	}
	defer db.Close()
	for {
		select {
		case <-e.exited:
			return fmt.Errorf("the scratch server stopped while starting: %s", e.errorLogTail())
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if _, err := os.Stat(e.socket); err == nil {
			pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			err := db.QueryRowContext(pctx, "SELECT VERSION()").Scan(&e.version)
			cancel()
			if err == nil {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the scratch server did not answer within %s: %s", embeddedStartTimeout, e.errorLogTail())
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		case <-e.exited:
		}
	}
}

func (e *embedded) errorLogTail() string {
	b, _ := os.ReadFile(filepath.Join(e.dir, errorLogName))
	if len(b) == 0 {
		b, _ = os.ReadFile(filepath.Join(e.dir, "console.log"))
	}
	if len(b) == 0 {
		return "(no error log)"
	}
	return lastLines(b, 5)
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// Close shuts the server down (SHUTDOWN, then SIGKILL to its process group if it does not stop
// in time) and removes its directory. It is safe on a partly started server, and it never uses
// a caller's context: it must run after a cancellation too.
func (e *embedded) Close() error {
	if e == nil {
		return nil
	}
	if e.cmd != nil {
		e.shutdown()
	}
	if err := os.RemoveAll(e.dir); err != nil {
		return fmt.Errorf("remove the scratch server's directory %s: %w", e.dir, err)
	}
	return nil
}

func (e *embedded) shutdown() {
	select {
	case <-e.exited:
		return
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if db, err := sql.Open("mysql", e.DSN()+"?timeout=2s"); err == nil {
		// 3 (MariaDB) and 2 (MySQL) skip flushing and purging: the data is thrown away.
		fast := "3"
		if e.flavor == "mysql" {
			fast = "2"
		}
		db.ExecContext(ctx, "SET GLOBAL innodb_fast_shutdown = "+fast)
		_, err = db.ExecContext(ctx, "SHUTDOWN")
		db.Close()
		if err != nil {
			e.log.Debug("scratch server SHUTDOWN failed; killing it", "error", err)
		}
	}
	select {
	case <-e.exited:
		return
	case <-time.After(shutdownWait):
		e.log.Warn("scratch server did not shut down in time; killing it", "wait", shutdownWait)
	}
	syscall.Kill(-e.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-e.exited:
	case <-time.After(10 * time.Second):
		e.log.Error("scratch server did not die after SIGKILL", "pid", e.cmd.Process.Pid)
	}
}

// scratchEnv is backupd's environment with TMPDIR set to the server's own tmp directory: the
// install script makes temporary files there, and backupd's TMPDIR may be one the server's
// unprivileged account cannot write to.
func scratchEnv(dir string) []string {
	env := []string{}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TMPDIR=") {
			env = append(env, kv)
		}
	}
	return append(env, "TMPDIR="+filepath.Join(dir, "tmp"))
}
