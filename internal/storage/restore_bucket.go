package storage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/backupd/backupd/internal/backupset"
	"github.com/backupd/backupd/internal/targets"
)

// ToTarget restores into a bucket (or any target): each file becomes the object prefix+path.
// Directories, symlinks, modes, owners and mtimes have no place in a bucket; the restore
// reports what it left out.
func ToTarget(name string, t backupset.Target, prefix string) Destination {
	return &bucketDest{name: name, t: t, prefix: prefix}
}

// bucketUploads bounds the objects uploaded at once, and with them the memory held.
const bucketUploads = 8

type bucketDest struct {
	name   string
	t      backupset.Target
	prefix string
	spool  string

	queue chan bucketPut
	wg    sync.WaitGroup
	mu    sync.Mutex
	err   error

	symlinks, dirs atomic.Int64
}

type bucketPut struct {
	key  string
	data []byte
}

func (b *bucketDest) String() string { return "target " + b.name }

func (b *bucketDest) prepare(ctx context.Context, overwrite bool, spoolDir string) error {
	b.spool = spoolDir
	b.prefix = strings.Trim(b.prefix, "/")
	if b.prefix != "" {
		if err := checkRelPath(b.prefix); err != nil {
			return fmt.Errorf("destination prefix %q: %w", b.prefix, err)
		}
		b.prefix += "/"
	}
	if !overwrite {
		errNotEmpty := errors.New("not empty")
		err := b.t.List(ctx, b.prefix, func(targets.ObjectInfo) error { return errNotEmpty })
		if errors.Is(err, errNotEmpty) {
			return fmt.Errorf("%w: %s (prefix %q); restore into an empty prefix, or pass --overwrite to replace objects", ErrNotEmpty, b, b.prefix)
		}
		if err != nil {
			return fmt.Errorf("list destination %s: %w", b, err)
		}
	}
	b.queue = make(chan bucketPut, bucketUploads)
	for range bucketUploads {
		b.wg.Go(func() {
			for p := range b.queue {
				if b.failed() != nil {
					continue
				}
				if err := b.t.Put(ctx, p.key, bytes.NewReader(p.data), int64(len(p.data))); err != nil {
					b.fail(fmt.Errorf("upload %s to %s: %w", p.key, b, err))
				}
			}
		})
	}
	return nil
}

func (b *bucketDest) fail(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err == nil {
		b.err = err
	}
}

func (b *bucketDest) failed() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

func (b *bucketDest) close(context.Context) error {
	if b.queue != nil {
		close(b.queue)
		b.wg.Wait()
	}
	return b.failed()
}

func (b *bucketDest) warnings() []string {
	var w []string
	if n := b.symlinks.Load(); n > 0 {
		w = append(w, fmt.Sprintf("%d symlinks not restored: a bucket cannot hold them", n))
	}
	if n := b.dirs.Load(); n > 0 {
		w = append(w, fmt.Sprintf("%d directories not restored as such (a bucket has none; empty ones are lost); modes, owners and mtimes are not kept either", n))
	}
	return w
}

func (b *bucketDest) mkdir(*Entry) error   { b.dirs.Add(1); return nil }
func (b *bucketDest) symlink(*Entry) error { b.symlinks.Add(1); return nil }
func (b *bucketDest) dirMeta(*Entry) error { return nil }

func (b *bucketDest) file(_ context.Context, e *Entry) (fileWriter, error) {
	if err := b.failed(); err != nil {
		return nil, err
	}
	key := b.prefix + e.Path
	if len(e.Chunks) <= 1 {
		return &bucketMemFile{b: b, key: key, size: e.Size}, nil
	}
	return &bucketSpoolFile{b: b, key: key, e: e}, nil
}

// bucketMemFile is a file of at most one chunk: it arrives whole, and goes up from memory.
type bucketMemFile struct {
	b    *bucketDest
	key  string
	size int64
	data []byte
}

func (w *bucketMemFile) writeAt(_ context.Context, p []byte, off int64) error {
	if off != 0 || int64(len(p)) != w.size {
		return fmt.Errorf("single-chunk file written at %d with %d bytes", off, len(p))
	}
	w.data = bytes.Clone(p)
	return nil
}

func (w *bucketMemFile) finish(ctx context.Context, _ bool) error {
	if err := w.b.failed(); err != nil {
		return err
	}
	data := w.data
	if data == nil {
		data = []byte{}
	}
	w.data = nil
	select {
	case w.b.queue <- bucketPut{key: w.key, data: data}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// bucketSpoolFile assembles a multi-chunk file in a temporary file, verifies it, then uploads
// it with its known size, so memory does not grow with the file.
type bucketSpoolFile struct {
	b   *bucketDest
	key string
	e   *Entry
	mu  sync.Mutex
	f   *os.File
}

func (w *bucketSpoolFile) writeAt(_ context.Context, p []byte, off int64) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		f, err := os.CreateTemp(w.b.spool, "backupd-restore-*")
		if err != nil {
			return fmt.Errorf("create temporary file: %w", err)
		}
		os.Remove(f.Name())
		w.f = f
	}
	_, err := w.f.WriteAt(p, off)
	return err
}

func (w *bucketSpoolFile) finish(ctx context.Context, _ bool) error {
	w.mu.Lock()
	f := w.f
	w.f = nil
	w.mu.Unlock()
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, w.e.Size)); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != w.e.SHA256 {
		return fmt.Errorf("assembled file has SHA-256 %s; the index says %s", got, w.e.SHA256)
	}
	if err := w.b.t.Put(ctx, w.key, io.NewSectionReader(f, 0, w.e.Size), w.e.Size); err != nil {
		return fmt.Errorf("upload %s to %s: %w", w.key, w.b, err)
	}
	return nil
}
