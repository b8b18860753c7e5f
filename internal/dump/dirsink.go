package dump

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// DirSink writes each object as a plain file under Dir; it is the sink of tests and of the
// manual path's examples. An object appears under its final name only once Close succeeds.
type DirSink struct{ Dir string }

var _ Sink = DirSink{}

// Create implements Sink.
func (s DirSink) Create(ctx context.Context, name string) (io.WriteCloser, error) {
	if name == "" || strings.HasPrefix(name, "/") || strings.Contains("/"+name+"/", "/../") {
		return nil, fmt.Errorf("create object %q: not a relative path", name)
	}
	path := filepath.Join(s.Dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create object %s: %w", name, err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("create object %s: %w", name, err)
	}
	return &dirFile{f: f, path: path}, nil
}

type dirFile struct {
	f    *os.File
	path string
}

func (w *dirFile) Write(p []byte) (int, error) { return w.f.Write(p) }

func (w *dirFile) Close() error {
	if err := w.f.Close(); err != nil {
		os.Remove(w.f.Name())
		return err
	}
	if err := os.Rename(w.f.Name(), w.path); err != nil {
		os.Remove(w.f.Name())
		return err
	}
	return nil
}

// CloseWithError discards the partial object.
func (w *dirFile) CloseWithError(error) error {
	w.f.Close()
	return os.Remove(w.f.Name())
}
