package backupset

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"filippo.io/age"

	"github.com/backupd/backupd/internal/countio"
	"github.com/backupd/backupd/internal/seal"
)

// ErrObjectBad means an object's copy on a target is missing, truncated or altered: its size or
// SHA-256 does not match the manifest.
var ErrObjectBad = errors.New("object does not match the manifest")

// Fetcher reads the objects of one set, checking every copy's size and SHA-256 against the
// manifest before anything is decrypted, and falling back to the next target when a copy is
// missing or corrupt. Sources are tried in order, so put the preferred target first.
type Fetcher struct {
	Policy     string
	SetID      string
	Sources    []Dest
	Identities []age.Identity
	SpoolDir   string // temporary files for objects larger than MemLimit
	MemLimit   int    // default 8 MiB
}

// Open returns the plain content of obj and the name of the target it came from. Errors name
// the object and what was wrong on every target tried.
func (f *Fetcher) Open(ctx context.Context, obj Object) (io.ReadCloser, string, error) {
	var errs []error
	for _, src := range f.Sources {
		sp, err := f.download(ctx, src, obj)
		if err != nil {
			if ctx.Err() != nil {
				return nil, "", ctx.Err()
			}
			errs = append(errs, fmt.Errorf("target %s: %w", src.Name, err))
			continue
		}
		plain, err := seal.Open(sp.reader(), f.Identities)
		if err != nil {
			sp.discard()
			if errors.Is(err, seal.ErrWrongKey) {
				// Every copy is encrypted to the same recipients: another target cannot help.
				return nil, "", fmt.Errorf("decrypt %s: %w", obj.Name, err)
			}
			errs = append(errs, fmt.Errorf("target %s: %w", src.Name, err))
			continue
		}
		// Cut at the declared plain size: a small object that decompresses far beyond it (a
		// compression bomb) fails there instead of feeding the reader gigabytes.
		return &spooledPlain{ReadCloser: seal.ExactSize(plain, obj.PlainSize), sp: sp, name: obj.Name}, src.Name, nil
	}
	return nil, "", fmt.Errorf("object %s: no good copy on any target: %w", obj.Name, errors.Join(errs...))
}

type spooledPlain struct {
	io.ReadCloser
	sp   *spool
	name string
}

// Read names the object in errors: decoding fails while a loader reads, far from Open.
func (s *spooledPlain) Read(p []byte) (int, error) {
	n, err := s.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("object %s: %w", s.name, err)
	}
	return n, err
}

func (s *spooledPlain) Close() error {
	err := s.ReadCloser.Close()
	s.sp.discard()
	return err
}

// download copies one object into a spool, checking size and SHA-256 on the way.
func (f *Fetcher) download(ctx context.Context, src Dest, obj Object) (*spool, error) {
	key := ObjectKey(f.Policy, f.SetID, obj.Name)
	rc, err := src.Target.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	defer rc.Close()
	limit := f.MemLimit
	if limit <= 0 {
		limit = 8 << 20
	}
	sp := &spool{dir: f.SpoolDir, memLimit: limit}
	h := sha256.New()
	// Read one byte past the expected size so an over-long copy is caught too.
	n, err := io.Copy(io.MultiWriter(sp, h), io.LimitReader(rc, obj.Size+1))
	if err != nil {
		sp.discard()
		return nil, fmt.Errorf("download %s: %w", key, err)
	}
	if n != obj.Size {
		sp.discard()
		return nil, fmt.Errorf("%w: %s has %d bytes, the manifest says %d", ErrObjectBad, key, n, obj.Size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != obj.SHA256 {
		sp.discard()
		return nil, fmt.Errorf("%w: %s has SHA-256 %s, the manifest says %s", ErrObjectBad, key, got, obj.SHA256)
	}
	return sp, nil
}

// CheckObject downloads one object from one target and proves it whole: size and SHA-256 match
// the manifest, and it decrypts and decompresses to exactly plain_size bytes. Nothing is kept.
func CheckObject(ctx context.Context, t Target, policy, setID string, obj Object, ids []age.Identity) error {
	key := ObjectKey(policy, setID, obj.Name)
	rc, err := t.Get(ctx, key)
	if err != nil {
		return fmt.Errorf("get %s: %w", key, err)
	}
	defer rc.Close()
	// Hash while decrypting, so the object is read once; the size and hash verdict comes first
	// in the error because it is the more useful diagnosis.
	h := sha256.New()
	counted := &countio.Reader{R: io.TeeReader(rc, h)}
	var plainN int64
	var openErr error
	plain, err := seal.Open(counted, ids)
	if err == nil {
		// Cut one byte past the declared plain size: a bomb is caught there, not decoded whole.
		plainN, openErr = io.Copy(io.Discard, io.LimitReader(plain, obj.PlainSize+1))
		plain.Close()
	} else {
		openErr = err
	}
	// Drain what decryption did not read so the hash covers the whole object.
	if _, err := io.Copy(io.Discard, counted); err != nil {
		return fmt.Errorf("download %s: %w", key, err)
	}
	if counted.N != obj.Size {
		return fmt.Errorf("%w: %s has %d bytes, the manifest says %d", ErrObjectBad, key, counted.N, obj.Size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != obj.SHA256 {
		return fmt.Errorf("%w: %s has SHA-256 %s, the manifest says %s", ErrObjectBad, key, got, obj.SHA256)
	}
	if openErr != nil {
		return fmt.Errorf("decrypt %s: %w", key, openErr)
	}
	if plainN > obj.PlainSize {
		return fmt.Errorf("%w: %s decompresses to more than the %d bytes the manifest says (a forged or damaged set)", ErrObjectBad, key, obj.PlainSize)
	}
	if plainN != obj.PlainSize {
		return fmt.Errorf("%w: %s decompresses to %d bytes, the manifest says %d", ErrObjectBad, key, plainN, obj.PlainSize)
	}
	return nil
}
