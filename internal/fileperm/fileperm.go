// Package fileperm keeps backupd's secret files private: it refuses to read a key that other
// users can read or change, and writes keys so that a crash leaves either no file or a
// complete one.
//
// Rule for reading (CheckPrivate): the file must have no permission bits for group or others
// (chmod 600), with one exception for a daemon that runs as a service account: a file owned by
// root, readable (not writable) by a group the process is in, and nothing for others (root:backupd
// 0640 or 0440). Root then keeps control of the key while the service can only read it, which is
// how packaged services are usually given secrets. The exception does not apply to a process
// running as root: for root, group read means other accounts can read the key.
//
// The same rule covers every file that may hold a secret: config files (they may carry
// credentials inline), policy files, and the files `*_file` config keys read secrets from.
// Files that hold only public keys (age recipients, trusted signing keys, a CA certificate) may
// be readable by anyone, but nobody else may be able to change them (CheckUnwritable): whoever
// can add a recipient reads future backups, and whoever can add a trusted key can sign sets.
package fileperm

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
)

// CheckPrivate returns an error that says `chmod 600 PATH` when the file at path is open to
// group or others beyond the rule in the package comment. what names the file in the message
// ("identity file"). A file that cannot be examined is left to the caller's read to report.
func CheckPrivate(path, what string) error {
	st, err := os.Stat(path)
	if err != nil {
		return nil
	}
	mode := st.Mode().Perm()
	if mode&0o077 == 0 {
		return nil
	}
	groups, _ := os.Getgroups()
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && Private(sys.Uid, sys.Gid, mode, os.Geteuid(), append(groups, os.Getegid())) {
		return nil
	}
	return fmt.Errorf("%s %s is open to other users (mode %04o): run chmod 600 %s (or, for a service account, chown root:GROUP and chmod 640)", what, path, mode, path)
}

// CheckUnwritable returns an error that says `chmod go-w PATH` when group or others may write
// the file at path: for public keys, whose secrecy does not matter but whose content decides
// whom backups are encrypted to or whose signatures are trusted. A file that cannot be examined
// is left to the caller's read to report.
func CheckUnwritable(path, what string) error {
	st, err := os.Stat(path)
	if err != nil {
		return nil
	}
	if mode := st.Mode().Perm(); mode&0o022 != 0 {
		return fmt.Errorf("%s %s can be changed by other users (mode %04o): run chmod go-w %s", what, path, mode, path)
	}
	return nil
}

// Private is the rule of the package comment as a function of a file's owner uid, group gid and
// mode, read by a process with effective uid euid in groups: what CheckPrivate applies to a
// file on disk, and what deployment examples (a Kubernetes Secret's defaultMode with fsGroup,
// say) can be checked against before they run.
func Private(uid, gid uint32, mode os.FileMode, euid int, groups []int) bool {
	return mode.Perm()&0o077 == 0 || groupReadByRoot(uid, gid, mode.Perm(), euid, groups)
}

// groupReadByRoot is the service-account exception for a file of owner uid and group gid, read
// by a process with effective uid euid in groups.
func groupReadByRoot(uid, gid uint32, mode os.FileMode, euid int, groups []int) bool {
	return uid == 0 && euid != 0 && mode&0o027 == 0 && slices.Contains(groups, int(gid))
}

// WriteKey writes data to a new file path with mode 0600, never replacing an existing one
// (os.ErrExist then): the bytes go to a temporary file in the same directory, are synced, and
// the file is linked to its name (an exclusive rename) and the directory synced, so a crash
// leaves either no key or a complete one, never an empty or partial key that the next run
// would take.
func WriteKey(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Link(tmp, path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		err = d.Sync()
		d.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// PrivateDir makes dir (and its parents) if needed and forces it to mode 0700: the state
// directory holds the dedup key, spooled plaintext and local state, and an existing directory
// created by hand or by an older version may be open to others.
func PrivateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	st, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if st.Mode().Perm() != 0o700 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("make %s private (chmod 700 %s): %w", dir, dir, err)
		}
	}
	return nil
}
