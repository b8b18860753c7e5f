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
		if b, err := os.ReadFile(filepath.Join(dir, "server", serverPIDFile)); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && alive(pid) {
				// Only if it really is the server of this directory: pids are reused.
				if cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil && bytes.Contains(cmdline, []byte(dir)) {
					syscall.Kill(pid, syscall.SIGKILL)
					for i := 0; i < 50 && alive(pid); i++ {
						time.Sleep(100 * time.Millisecond)
					}
				}
			}
		}
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
