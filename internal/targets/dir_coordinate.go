package targets

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
)

var _ Coordinator = (*Dir)(nil)

// PutIfAbsent writes a temporary file and hard-links it to the key: link(2) fails when the
// name exists, atomically, also on NFS, so of several hosts sharing the directory one wins.
// Readers never see a partial object because the link appears with the file complete.
func (d *Dir) PutIfAbsent(ctx context.Context, key string, data []byte) error {
	if err := d.validKey(key); err != nil {
		return err
	}
	root, f, tmp, err := d.createTempFor(key)
	if err != nil {
		return err
	}
	defer root.Close()
	parent := path.Dir(key)
	defer root.Remove(tmp)
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return d.dirError(err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := root.Link(tmp, key); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%w (file %s)", ErrExists, key)
		}
		return d.dirError(err)
	}
	if err := syncDir(root, parent); err != nil {
		return d.dirError(err)
	}
	return nil
}

// PutMutable is a plain Put: a directory has no object lock.
func (d *Dir) PutMutable(ctx context.Context, key string, data []byte) error {
	return d.Put(ctx, key, bytes.NewReader(data), int64(len(data)))
}
