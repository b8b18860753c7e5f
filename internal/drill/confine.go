package drill

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// The embedded scratch loads SQL from a backup set, which is hostile until proven otherwise, so
// the server that executes it is confined: it never runs as root (as the unprivileged account
// of the database packages when backupd is root, else as backupd's own user), it reads and
// writes files only in a directory of its own inside the workspace (secure_file_priv), and it
// listens on a private unix socket only (skip_networking).

// scratchUsers are the accounts the scratch server runs as when backupd is root, in order of
// preference: the database packages' own account, then the classic unprivileged one.
var scratchUsers = []string{"mysql", "nobody"}

// scratchFilesDir is the server's secure_file_priv directory, inside its own directory.
const scratchFilesDir = "files"

// runAs is the account a scratch server process runs as; nil when it is backupd's own.
type runAs struct {
	name     string
	uid, gid uint32
}

// scratchAccount chooses the account for the scratch server: nil (backupd's own user) when
// backupd is not root, else the first of scratchUsers that exists.
func scratchAccount() (*runAs, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, name := range scratchUsers {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil || uid == 0 {
			continue
		}
		return &runAs{name: name, uid: uint32(uid), gid: uint32(gid)}, nil
	}
	return nil, fmt.Errorf("backupd runs as root and the scratch server must not: none of the accounts %v exists on this host; create a system user mysql (the mariadb-server package does) or run backupd as an unprivileged user", scratchUsers)
}

// credential is the SysProcAttr credential that starts a process as a; nil for backupd's own.
func (a *runAs) credential() *syscall.Credential {
	if a == nil {
		return nil
	}
	return &syscall.Credential{Uid: a.uid, Gid: a.gid, Groups: []uint32{}}
}

// give hands the server's own directories to a.
func (a *runAs) give(paths ...string) error {
	if a == nil {
		return nil
	}
	for _, p := range paths {
		if err := os.Chown(p, int(a.uid), int(a.gid)); err != nil {
			return fmt.Errorf("give the scratch server's directory %s to user %s: %w", p, a.name, err)
		}
	}
	return nil
}

// checkReachable makes sure a can walk down to dir: every directory above it must let a search
// it. The server would otherwise fail with a message about its data directory that does not
// say why.
func (a *runAs) checkReachable(dir string) error {
	if a == nil {
		return nil
	}
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("check the scratch server's directory: %w", err)
		}
		sys, ok := st.Sys().(*syscall.Stat_t)
		if !ok {
			return errors.New("check the scratch server's directory: no owner information")
		}
		mode := st.Mode().Perm()
		var can bool
		switch {
		case sys.Uid == a.uid:
			can = mode&0o100 != 0
		case sys.Gid == a.gid:
			can = mode&0o010 != 0
		default:
			can = mode&0o001 != 0
		}
		if !can {
			return fmt.Errorf("the scratch server runs as user %s, which cannot reach its directory %s: %s has mode %04o and belongs to uid %d; "+
				"let others search it (chmod o+x %s) or set drill.scratch.embedded.dir to a directory under one they can search, such as /var/tmp",
				a.name, dir, d, mode, sys.Uid, d)
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}
