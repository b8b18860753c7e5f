package storage

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"syscall"
	"unicode/utf8"
)

// testHookAfterRead, when set by a test, runs after a file's contents were read and before
// its status is compared with the one before reading.
var testHookAfterRead func(rel string)

var errVanished = errors.New("vanished while the snapshot ran")

func (sn *snapshotter) walkDir(ctx context.Context) error {
	rootPath, err := filepath.EvalSymlinks(sn.spec.Path)
	if err != nil {
		return fmt.Errorf("storage source %s: %w", sn.spec.Name, err)
	}
	fi, err := os.Stat(rootPath)
	if err != nil {
		return fmt.Errorf("storage source %s: %w", sn.spec.Name, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("storage source %s: %s is not a directory", sn.spec.Name, sn.spec.Path)
	}
	// os.Root refuses any name that resolves outside the tree, so even a symlink swapped in
	// while we walk cannot lead the snapshot out of it.
	root, err := os.OpenRoot(rootPath)
	if err != nil {
		return fmt.Errorf("storage source %s: %w", sn.spec.Name, err)
	}
	defer root.Close()
	return sn.walkTree(ctx, root, "")
}

func (sn *snapshotter) abs(rel string) string {
	return filepath.Join(sn.spec.Path, filepath.FromSlash(rel))
}

func readDirNames(root *os.Root, rel string) ([]string, error) {
	name := rel
	if name == "" {
		name = "."
	}
	f, err := root.OpenFile(name, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	sort.Strings(names)
	return names, err
}

func (sn *snapshotter) walkTree(ctx context.Context, root *os.Root, rel string) error {
	names, err := readDirNames(root, rel)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) && rel != "" {
			sn.warn(fmt.Sprintf("directory %s %v", rel, errVanished))
			return nil
		}
		return fmt.Errorf("read directory %s: %w (exclude it in the source's exclude: list, or give backupd read access)", sn.abs(rel), err)
	}
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		p := path.Join(rel, name)
		if !utf8.ValidString(name) {
			sn.warn(fmt.Sprintf("skipped %q in %s: the name is not valid UTF-8", name, sn.abs(rel)))
			continue
		}
		fi, err := root.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			sn.warn(fmt.Sprintf("%s %v", p, errVanished))
			continue
		}
		if err != nil {
			return fmt.Errorf("stat %s: %w", sn.abs(p), err)
		}
		mode := fi.Mode()
		if sn.match.excluded(p, mode.IsDir()) {
			continue
		}
		e := &Entry{Path: p, Mode: unixMode(mode), MTime: fi.ModTime().UnixNano(), UID: -1, GID: -1}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			e.UID, e.GID = int(st.Uid), int(st.Gid)
		}
		switch {
		case mode.IsDir():
			e.Type = TypeDir
			if err := sn.emit(ctx, e); err != nil {
				return err
			}
			if err := sn.walkTree(ctx, root, p); err != nil {
				return err
			}
		case mode&fs.ModeSymlink != 0:
			link, err := root.Readlink(p)
			if errors.Is(err, fs.ErrNotExist) {
				sn.warn(fmt.Sprintf("%s %v", p, errVanished))
				continue
			}
			if err != nil {
				return fmt.Errorf("read symlink %s: %w", sn.abs(p), err)
			}
			if !utf8.ValidString(link) || link == "" {
				sn.warn(fmt.Sprintf("skipped symlink %s: its target is not valid UTF-8", p))
				continue
			}
			e.Type, e.Link, e.Mode = TypeSymlink, link, 0
			if err := sn.emit(ctx, e); err != nil {
				return err
			}
		case mode.IsRegular():
			if err := sn.file(ctx, root, p); err != nil {
				return err
			}
		default:
			sn.warn(fmt.Sprintf("skipped %s: a %s is not backed up", p, typeName(mode)))
		}
	}
	return nil
}

func typeName(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeDevice != 0:
		return "device"
	}
	return "special file"
}

func (sn *snapshotter) file(ctx context.Context, root *os.Root, p string) error {
	var reason string
	for attempt := 1; attempt <= changeAttempts; attempt++ {
		e, why, err := sn.readFile(ctx, root, p)
		if errors.Is(err, errVanished) {
			sn.warn(fmt.Sprintf("%s %v", p, errVanished))
			return nil
		}
		if err != nil {
			return err
		}
		if why == "" {
			return sn.emit(ctx, e)
		}
		reason = why
		sn.log.Warn("file changed while being read", "path", p, "attempt", attempt, "reason", why)
	}
	return sn.skip(ctx, p, fmt.Sprintf("changed while being read (%d attempts; last: %s)", changeAttempts, reason))
}

// readFile stores one regular file. why is non-empty when the file changed while it was read.
func (sn *snapshotter) readFile(ctx context.Context, root *os.Root, p string) (e *Entry, why string, err error) {
	f, err := root.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "", errVanished
	}
	if err != nil {
		return nil, "", fmt.Errorf("open %s: %w (exclude it in the source's exclude: list, or give backupd read access)", sn.abs(p), err)
	}
	defer f.Close()
	before, err := f.Stat()
	if err != nil {
		return nil, "", fmt.Errorf("stat %s: %w", sn.abs(p), err)
	}
	if !before.Mode().IsRegular() {
		return nil, "it is no longer a regular file", nil
	}
	chunks, sum, n, err := sn.storeStream(ctx, f, before.Size())
	if err != nil {
		if ctx.Err() != nil || sn.st.failed() != nil {
			return nil, "", err
		}
		return nil, "", fmt.Errorf("read %s: %w", sn.abs(p), err)
	}
	if testHookAfterRead != nil {
		testHookAfterRead(p)
	}
	after, err := f.Stat()
	if err != nil {
		return nil, "", fmt.Errorf("stat %s: %w", sn.abs(p), err)
	}
	if why := changed(before, after, n); why != "" {
		return nil, why, nil
	}
	e = &Entry{
		Path: p, Type: TypeFile, Mode: unixMode(before.Mode()), MTime: before.ModTime().UnixNano(),
		UID: -1, GID: -1, Size: n, SHA256: hex.EncodeToString(sum[:]), Chunks: chunks,
	}
	if st, ok := before.Sys().(*syscall.Stat_t); ok {
		e.UID, e.GID = int(st.Uid), int(st.Gid)
	}
	return e, "", nil
}

func changed(before, after fs.FileInfo, read int64) string {
	switch {
	case after.Size() != before.Size():
		return fmt.Sprintf("size went from %d to %d bytes", before.Size(), after.Size())
	case read != before.Size():
		return fmt.Sprintf("read %d bytes of %d", read, before.Size())
	case !after.ModTime().Equal(before.ModTime()):
		return "modification time changed"
	}
	b, ok1 := before.Sys().(*syscall.Stat_t)
	a, ok2 := after.Sys().(*syscall.Stat_t)
	if ok1 && ok2 && (a.Ctim != b.Ctim) {
		return "status change time changed"
	}
	return ""
}
