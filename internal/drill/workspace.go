package drill

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// A drill keeps everything it writes locally in one workspace directory,
// <dir>/backupd-drill-<policy>-<random>/: the embedded server (server/), downloads waiting to
// be loaded (spool/) and the restored storage trees (storage/). It is removed when the drill
// ends, however it ends. A drill killed with SIGKILL cannot remove it; its server dies with it
// (PR_SET_PDEATHSIG), and the next drill on the host removes the directory, whose owner file
// names a process that no longer exists.

const (
	workspacePrefix = "backupd-drill-"
	ownerFile       = "owner" // pid of the backupd that made the workspace
)

// newWorkspace sweeps stale workspaces in parent and makes a new one.
func newWorkspace(parent, policy string, log *slog.Logger) (string, error) {
	if parent == "" {
		parent = os.TempDir()
	}
	sweepStale(parent, log)
	dir, err := os.MkdirTemp(parent, workspacePrefix+cutRunes(policy, 20)+"-")
	if err != nil {
		return "", fmt.Errorf("create the drill's temporary directory: %w (set drill.scratch.embedded.dir to a writable directory with room for the restored data)", err)
	}
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("create the drill's temporary directory: %w", err)
	}
	for _, sub := range []string{"spool", "storage"} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o700); err != nil {
			os.RemoveAll(dir)
			return "", fmt.Errorf("create the drill's temporary directory: %w", err)
		}
	}
	return dir, nil
}

// sweepStale removes the workspaces of drills whose backupd is gone (killed with SIGKILL, or
// the host rebooted), killing a scratch server still running from one.
func sweepStale(parent string, log *slog.Logger) {
	dirs, _ := filepath.Glob(filepath.Join(parent, workspacePrefix+"*"))
	for _, dir := range dirs {
		st, err := os.Lstat(dir)
		if err != nil || !st.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err != nil {
			if time.Since(st.ModTime()) < time.Hour {
				continue // being created right now, or not ours
			}
		} else if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && alive(pid) {
			continue // a drill that is running
		}
		killStaleServer(filepath.Join(dir, "server"))
		if err := os.RemoveAll(dir); err == nil {
			log.Warn("removed the temporary directory of an interrupted drill", "dir", dir)
		}
	}
}

func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// killStaleServer kills the scratch server a dead drill left running in serverDir. Pids are
// reused and the pid file is written by the server's own (unprivileged) account, so the pid is
// killed only if the process runs as the owner of the data directory and its command line has
// exactly this data directory: a process whose arguments merely contain the path is left alone.
func killStaleServer(serverDir string) {
	b, err := os.ReadFile(filepath.Join(serverDir, serverPIDFile))
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || !alive(pid) {
		return
	}
	datadir := filepath.Join(serverDir, "data")
	st, err := os.Lstat(datadir)
	if err != nil {
		return
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok || !isScratchServer(pid, sys.Uid, datadir) {
		return
	}
	syscall.Kill(pid, syscall.SIGKILL)
	for i := 0; i < 50 && alive(pid); i++ {
		time.Sleep(100 * time.Millisecond)
	}
}

// isScratchServer reports whether process pid runs as uid (real and effective) with the
// argument --datadir=datadir.
func isScratchServer(pid int, uid uint32, datadir string) bool {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return false
	}
	owned := false
	for _, line := range strings.Split(string(status), "\n") {
		if f := strings.Fields(line); len(f) >= 3 && f[0] == "Uid:" {
			want := strconv.FormatUint(uint64(uid), 10)
			owned = f[1] == want && f[2] == want
		}
	}
	if !owned {
		return false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	for _, arg := range bytes.Split(cmdline, []byte{0}) {
		if string(arg) == "--datadir="+datadir {
			return true
		}
	}
	return false
}
