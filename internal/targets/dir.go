package targets

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

// tmpPrefix marks files that Put is still writing. List never shows them and keys may not
// use the prefix, so a half-written object can never be mistaken for a real one.
const tmpPrefix = ".backupd-tmp-"

// Backups hold data that is encrypted, but manifests name databases and tables; nobody but
// the daemon's user needs to read them.
const (
	dirPerm  = 0o700
	filePerm = 0o600
)

// Dir is a Target on a local (or mounted) filesystem.
//
// Every operation opens the root afresh through os.Root, for two reasons: os.Root refuses
// any name that would leave the root (including through symlinks), and a root opened per
// call follows the path as it is now, so a backup disk mounted after the daemon started is
// used rather than the empty mount point underneath it.
type Dir struct {
	path string
}

var _ Target = (*Dir)(nil)

// NewDir returns a directory target rooted at the absolute path dir. The directory is
// created by the first Put if it does not exist.
func NewDir(dir string) (*Dir, error) {
	if err := checkAbs(dir); err != nil {
		return nil, err
	}
	return &Dir{path: filepath.Clean(dir)}, nil
}

func (d *Dir) String() string { return "dir " + d.path }

func (d *Dir) dirError(err error) error { return fmt.Errorf("dir %s: %w", d.path, err) }

func (d *Dir) notFound(key string) error {
	return fmt.Errorf("%w (no file %s)", ErrNotFound, filepath.Join(d.path, filepath.FromSlash(key)))
}

// isNotExist also treats "a path component is a file" as absence: for key "a/b" where "a"
// is an object, object "a/b" simply does not exist.
func isNotExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

func (d *Dir) validKey(key string) error {
	if err := validateKey(key); err != nil {
		return err
	}
	for _, seg := range strings.Split(key, "/") {
		if strings.HasPrefix(seg, tmpPrefix) {
			return fmt.Errorf("%w %q: segments starting with %q are reserved for temporary files",
				ErrInvalidKey, key, tmpPrefix)
		}
	}
	return nil
}

// Put writes to a temporary file in the object's directory, syncs it, renames it over the
// key and syncs the directory: after a crash the key holds the old object, the new one, or
// nothing, never a torn file.
func (d *Dir) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if err := d.validKey(key); err != nil {
		return err
	}
	if err := checkSize(size); err != nil {
		return err
	}
	root, f, tmp, err := d.createTempFor(key)
	if err != nil {
		return err
	}
	defer root.Close()
	parent := path.Dir(key)
	committed := false
	defer func() {
		if !committed {
			f.Close()
			root.Remove(tmp)
		}
	}()

	if _, err := io.Copy(f, newCtxReader(ctx, newExactReader(r, size))); err != nil {
		return d.dirError(err)
	}
	if err := f.Sync(); err != nil {
		return d.dirError(err)
	}
	if err := f.Close(); err != nil {
		return d.dirError(err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := root.Rename(tmp, key); err != nil {
		return d.dirError(err)
	}
	committed = true
	// The rename is durable only once the directory entry is.
	if err := syncDir(root, parent); err != nil {
		return d.dirError(err)
	}
	return nil
}

// createTempFor opens the target's root (creating its directory) and a new temporary file in
// the directory of key, for a write that then renames or links it into place. The caller
// closes root; the file is the caller's to close and remove.
func (d *Dir) createTempFor(key string) (root *os.Root, f *os.File, tmp string, err error) {
	if err := os.MkdirAll(d.path, dirPerm); err != nil {
		return nil, nil, "", d.dirError(err)
	}
	root, err = os.OpenRoot(d.path)
	if err != nil {
		return nil, nil, "", d.dirError(err)
	}
	f, tmp, err = createTemp(root, path.Dir(key))
	if err != nil {
		root.Close()
		return nil, nil, "", d.dirError(err)
	}
	return root, f, tmp, nil
}

// mkdirAllSync is MkdirAll that also syncs the parent of every directory it creates: a
// synced rename is only durable if the directories leading to it are, or a crash could
// keep a set's manifest and lose a directory of its data.
// createTemp creates a new temporary file in parent, creating parent first. A concurrent Delete
// may remove empty directories on the way at any moment, when it cleans up after itself;
// creating them again is the whole fix, so "does not exist" is retried a few times.
func createTemp(root *os.Root, parent string) (*os.File, string, error) {
	for attempt := 0; ; attempt++ {
		err := mkdirAllSync(root, parent)
		if err == nil {
			tmp := path.Join(parent, tmpPrefix+randomHex())
			f, oerr := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, filePerm)
			if oerr == nil {
				return f, tmp, nil
			}
			err = oerr
		}
		if !errors.Is(err, fs.ErrNotExist) || attempt >= 5 {
			return nil, "", err
		}
	}
}

func mkdirAllSync(root *os.Root, dir string) error {
	if dir == "." {
		return nil
	}
	fi, err := root.Stat(dir)
	if err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("mkdir %s: %w", dir, syscall.ENOTDIR)
		}
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	parent := path.Dir(dir)
	if err := mkdirAllSync(root, parent); err != nil {
		return err
	}
	if err := root.Mkdir(dir, dirPerm); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return syncDir(root, parent)
}

func syncDir(root *os.Root, dir string) error {
	f, err := root.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

func randomHex() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ctxReader makes a copy stop at cancellation. It checks after each read too and then
// withholds the bytes just read: an upload whose source was cancelled must not be able to
// hand its consumer the last bytes, since an HTTP server commits the object once it has
// them all, whatever the client thinks of the request by then. It holds ctx.Err, not the
// context, and lives only as long as the call that made it.
type ctxReader struct {
	cancelled func() error
	r         io.Reader
}

func newCtxReader(ctx context.Context, r io.Reader) *ctxReader {
	return &ctxReader{cancelled: ctx.Err, r: r}
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.cancelled(); err != nil {
		return 0, err
	}
	n, err := c.r.Read(p)
	if cerr := c.cancelled(); cerr != nil {
		return 0, cerr
	}
	return n, err
}

// openRoot opens the root for reading; a root that does not exist yet holds no objects.
func (d *Dir) openRoot() (*os.Root, error) {
	root, err := os.OpenRoot(d.path)
	if err != nil {
		return nil, d.dirError(err)
	}
	return root, nil
}

// openRootIfPresent is openRoot for the operations that have nothing to do when the target's
// directory does not exist yet (delete, list): nil and no error then.
func (d *Dir) openRootIfPresent() (*os.Root, error) {
	root, err := d.openRoot()
	if err != nil && isNotExist(err) {
		return nil, nil
	}
	return root, err
}

// Get returns an error wrapping ErrNotFound if the object does not exist.
func (d *Dir) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := d.validKey(key); err != nil {
		return nil, err
	}
	root, err := d.openRoot()
	if err != nil {
		if isNotExist(err) {
			return nil, d.notFound(key)
		}
		return nil, err
	}
	defer root.Close()
	f, err := root.Open(key)
	if err != nil {
		if isNotExist(err) {
			return nil, d.notFound(key)
		}
		return nil, d.dirError(err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, d.dirError(err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, d.notFound(key)
	}
	return f, nil
}

// Stat returns an error wrapping ErrNotFound if the object does not exist.
func (d *Dir) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	if err := d.validKey(key); err != nil {
		return ObjectInfo{}, err
	}
	root, err := d.openRoot()
	if err != nil {
		if isNotExist(err) {
			return ObjectInfo{}, d.notFound(key)
		}
		return ObjectInfo{}, err
	}
	defer root.Close()
	fi, err := root.Stat(key)
	if err != nil {
		if isNotExist(err) {
			return ObjectInfo{}, d.notFound(key)
		}
		return ObjectInfo{}, d.dirError(err)
	}
	if !fi.Mode().IsRegular() {
		return ObjectInfo{}, d.notFound(key)
	}
	return ObjectInfo{Key: key, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// Delete removes the object and then any directories it leaves empty, so that pruned sets
// do not leave a skeleton of empty directories behind.
func (d *Dir) Delete(ctx context.Context, key string) error {
	if err := d.validKey(key); err != nil {
		return err
	}
	root, err := d.openRootIfPresent()
	if root == nil {
		return err // nil when nothing was ever stored
	}
	defer root.Close()
	fi, err := root.Lstat(key)
	if err != nil {
		if isNotExist(err) {
			return nil
		}
		return d.dirError(err)
	}
	if fi.IsDir() {
		return nil // a directory is not an object
	}
	if err := root.Remove(key); err != nil {
		if isNotExist(err) {
			return nil
		}
		return d.dirError(err)
	}
	for dir := path.Dir(key); dir != "."; dir = path.Dir(dir) {
		if root.Remove(dir) != nil {
			break // not empty (or gone): either way the cleanup is done
		}
	}
	return nil
}

// List walks only the directories that can hold keys with the prefix. Within a directory
// it sorts subdirectory "x" as "x/": the order of keys is the byte order of the whole key,
// in which "a-b" < "a/b" although the directory "a" sorts before the file "a-b". Memory is
// bounded by the entries of the largest single directory, not by the number of objects.
func (d *Dir) List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	if err := validatePrefix(prefix); err != nil {
		return err
	}
	root, err := d.openRootIfPresent()
	if root == nil {
		return err // nil when nothing was ever stored
	}
	defer root.Close()
	start := prefix[:strings.LastIndex(prefix, "/")+1]
	return d.walk(ctx, root, start, prefix, fn)
}

type dirEntry struct {
	name  string
	sort  string
	isDir bool
	info  fs.FileInfo
}

// walk lists the directory whose key prefix is dirKey ("" or ending in '/').
func (d *Dir) walk(ctx context.Context, root *os.Root, dirKey, prefix string, fn func(ObjectInfo) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	name := strings.TrimSuffix(dirKey, "/")
	if name == "" {
		name = "."
	}
	f, err := root.Open(name)
	if err != nil {
		if isNotExist(err) {
			return nil
		}
		return d.dirError(err)
	}
	raw, err := f.ReadDir(-1)
	f.Close()
	if err != nil {
		if isNotExist(err) {
			return nil // removed while we looked: it holds nothing now
		}
		return d.dirError(err)
	}

	entries := make([]dirEntry, 0, len(raw))
	for _, e := range raw {
		n := e.Name()
		if strings.HasPrefix(n, tmpPrefix) {
			continue
		}
		key := dirKey + n
		if validatePrefix(key) != nil {
			continue // a file some other tool put here; it cannot be addressed as a key
		}
		var info fs.FileInfo
		if e.Type()&fs.ModeSymlink != 0 {
			// os.Root refuses links that leave the root; such a link, or a dangling one,
			// is not an object of this target.
			if info, err = root.Stat(key); err != nil {
				continue
			}
		} else if info, err = e.Info(); err != nil {
			if isNotExist(err) {
				continue // deleted during the listing
			}
			return d.dirError(err)
		}
		switch {
		case info.IsDir():
			if !strings.HasPrefix(key+"/", prefix) && !strings.HasPrefix(prefix, key+"/") {
				continue
			}
			entries = append(entries, dirEntry{name: n, sort: n + "/", isDir: true})
		case info.Mode().IsRegular():
			if !strings.HasPrefix(key, prefix) {
				continue
			}
			entries = append(entries, dirEntry{name: n, sort: n, info: info})
		}
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].sort < entries[j].sort })

	for _, e := range entries {
		key := dirKey + e.name
		if e.isDir {
			if err := d.walk(ctx, root, key+"/", prefix, fn); err != nil {
				return err
			}
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(ObjectInfo{Key: key, Size: e.info.Size(), ModTime: e.info.ModTime()}); err != nil {
			return err
		}
	}
	return nil
}
