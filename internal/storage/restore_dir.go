package storage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ToDir restores into a local directory, created if missing.
func ToDir(dir string) Destination { return &dirDest{path: dir} }

type dirDest struct {
	path      string
	root      *os.Root
	overwrite bool
	chown     bool
	made      map[string]bool // directories known to exist; used by the planning goroutine only
}

func (d *dirDest) String() string              { return d.path }
func (d *dirDest) warnings() []string          { return nil }
func (d *dirDest) close(context.Context) error { return d.root.Close() }

func (d *dirDest) prepare(_ context.Context, overwrite bool, _ string) error {
	abs, err := filepath.Abs(d.path)
	if err != nil {
		return err
	}
	d.path, d.overwrite, d.chown = abs, overwrite, os.Geteuid() == 0
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return fmt.Errorf("create destination: %w", err)
	}
	f, err := os.Open(abs)
	if err != nil {
		return fmt.Errorf("open destination: %w", err)
	}
	names, err := f.Readdirnames(1)
	f.Close()
	if err != nil && err != io.EOF {
		return fmt.Errorf("read destination %s: %w", abs, err)
	}
	if len(names) > 0 && !overwrite {
		return fmt.Errorf("%w: %s; restore into an empty directory, or pass --overwrite to replace what is there", ErrNotEmpty, abs)
	}
	d.root, err = os.OpenRoot(abs)
	if err != nil {
		return fmt.Errorf("open destination: %w", err)
	}
	return nil
}

// clear makes room for p: nothing there is fine; something there is removed with overwrite
// (a directory is kept when keepDir), and an error without.
func (d *dirDest) clear(p string, keepDir bool) (exists bool, err error) {
	fi, err := d.root.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if keepDir && fi.IsDir() {
		return true, nil
	}
	if !d.overwrite {
		return false, fmt.Errorf("%s already exists", p)
	}
	return false, d.root.RemoveAll(p)
}

func (d *dirDest) parents(p string) error {
	dir := parentOf(p)
	if dir == "" || d.made[dir] {
		return nil
	}
	if err := d.root.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if d.made == nil {
		d.made = map[string]bool{}
	}
	d.made[dir] = true
	return nil
}

func (d *dirDest) mkdir(e *Entry) error {
	if err := d.parents(e.Path); err != nil {
		return err
	}
	exists, err := d.clear(e.Path, true)
	if err != nil || exists {
		return err
	}
	// Owner-only until the end, when the stored mode is applied: the restore must be able to
	// write into a directory whose stored mode is read-only.
	if err := d.root.Mkdir(e.Path, 0o700); err != nil {
		return err
	}
	if d.made == nil {
		d.made = map[string]bool{}
	}
	d.made[e.Path] = true
	return nil
}

func (d *dirDest) file(_ context.Context, e *Entry) (fileWriter, error) {
	if err := d.parents(e.Path); err != nil {
		return nil, err
	}
	if _, err := d.clear(e.Path, false); err != nil {
		return nil, err
	}
	f, err := d.root.OpenFile(e.Path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, err
	}
	if err := f.Truncate(e.Size); err != nil {
		f.Close()
		return nil, err
	}
	return &dirFile{d: d, e: e}, f.Close()
}

type dirFile struct {
	d *dirDest
	e *Entry
}

func (w *dirFile) writeAt(_ context.Context, p []byte, off int64) error {
	f, err := w.d.root.OpenFile(w.e.Path, os.O_WRONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(p, off); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (w *dirFile) finish(_ context.Context, verify bool) error {
	e := w.e
	if verify {
		f, err := w.d.root.OpenFile(e.Path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
		if err != nil {
			return err
		}
		h := sha256.New()
		n, err := io.Copy(h, f)
		f.Close()
		if err != nil {
			return err
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != e.SHA256 || n != e.Size {
			return fmt.Errorf("restored file has %d bytes with SHA-256 %s; the index says %d bytes with %s", n, got, e.Size, e.SHA256)
		}
	}
	return w.d.setMeta(e)
}

// setMeta applies owner, then mode (chown clears setuid bits), then mtime.
func (d *dirDest) setMeta(e *Entry) error {
	if d.chown && e.UID >= 0 && e.GID >= 0 {
		if err := d.root.Lchown(e.Path, e.UID, e.GID); err != nil {
			return err
		}
	}
	if err := d.root.Chmod(e.Path, goMode(e.Mode)); err != nil {
		return err
	}
	t := time.Unix(0, e.MTime)
	return d.root.Chtimes(e.Path, t, t)
}

func (d *dirDest) symlink(e *Entry) error {
	if err := d.parents(e.Path); err != nil {
		return err
	}
	if _, err := d.clear(e.Path, false); err != nil {
		return err
	}
	if err := d.root.Symlink(e.Link, e.Path); err != nil {
		return err
	}
	if d.chown && e.UID >= 0 && e.GID >= 0 {
		if err := d.root.Lchown(e.Path, e.UID, e.GID); err != nil {
			return err
		}
	}
	// os.Root has no lutimes: set the link's own mtime relative to its parent, opened
	// through the root so the parent cannot be outside it.
	dir := parentOf(e.Path)
	if dir == "" {
		dir = "."
	}
	pf, err := d.root.OpenFile(dir, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer pf.Close()
	ts := unix.NsecToTimespec(e.MTime)
	return unix.UtimesNanoAt(int(pf.Fd()), path.Base(e.Path), []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW)
}

func (d *dirDest) dirMeta(e *Entry) error { return d.setMeta(e) }
