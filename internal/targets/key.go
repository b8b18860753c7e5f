package targets

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// ErrInvalidKey is wrapped by every error about a malformed key or prefix.
var ErrInvalidKey = errors.New("invalid object key")

// validateKey enforces one key syntax for every backend, so that an object written to S3
// can also be written to a directory target and a hostile or buggy key can never address
// a file outside a directory root.
func validateKey(key string) error {
	if key == "" {
		return fmt.Errorf("%w: key is empty", ErrInvalidKey)
	}
	if strings.HasSuffix(key, "/") {
		return fmt.Errorf("%w %q: ends with '/' (a key names an object, not a directory)", ErrInvalidKey, key)
	}
	return validatePrefix(key)
}

// validatePrefix checks a List prefix: like a key, but it may be empty, end in '/' or stop
// in the middle of a segment.
func validatePrefix(p string) error {
	if p == "" {
		return nil
	}
	if !utf8.ValidString(p) {
		return fmt.Errorf("%w %q: not valid UTF-8", ErrInvalidKey, p)
	}
	if strings.IndexByte(p, 0) >= 0 {
		return fmt.Errorf("%w %q: contains a NUL byte", ErrInvalidKey, p)
	}
	if strings.HasPrefix(p, "/") {
		return fmt.Errorf("%w %q: absolute; keys are relative to the target", ErrInvalidKey, p)
	}
	if strings.Contains(p, `\`) {
		// A backslash is a separator on Windows and an escape in too many tools.
		return fmt.Errorf("%w %q: contains a backslash; use '/' between segments", ErrInvalidKey, p)
	}
	segs := strings.Split(p, "/")
	for i, s := range segs {
		last := i == len(segs)-1
		switch {
		case s == "" && !last:
			return fmt.Errorf("%w %q: empty segment (\"//\")", ErrInvalidKey, p)
		case s == "." || s == "..":
			return fmt.Errorf("%w %q: contains a %q segment", ErrInvalidKey, p, s)
		}
	}
	return nil
}

// ErrSizeMismatch is wrapped when a Put reader does not hold exactly the announced size.
var ErrSizeMismatch = errors.New("reader size does not match the announced size")

// exactReader yields exactly size bytes from r and fails the read that would deliver the
// last byte if r has more, or fails at EOF if r has fewer. Checking before the last byte
// goes out matters: a consumer that stops after size bytes (an HTTP body with a
// Content-Length, minio-go's part reader) would otherwise commit a silently truncated
// object, and an object whose size disagrees with its manifest is a broken backup.
type exactReader struct {
	r         io.Reader
	size      int64
	remaining int64
	probe     [1]byte
	err       error // the first error handed to the consumer, other than io.EOF
}

func newExactReader(r io.Reader, size int64) *exactReader {
	return &exactReader{r: r, size: size, remaining: size}
}

// Err returns the error the reader failed with, if any. HTTP clients replace errors from a
// request body with their own ("connection closed"), so the backend asks the reader.
func (e *exactReader) Err() error { return e.err }

func (e *exactReader) Read(p []byte) (int, error) {
	n, err := e.read(p)
	if err != nil && err != io.EOF && e.err == nil {
		e.err = err
	}
	return n, err
}

func (e *exactReader) read(p []byte) (int, error) {
	if e.remaining == 0 {
		return 0, e.checkEnd()
	}
	if int64(len(p)) > e.remaining {
		p = p[:e.remaining]
	}
	n, err := e.r.Read(p)
	e.remaining -= int64(n)
	if e.remaining == 0 {
		if err := e.checkEnd(); err != io.EOF {
			return 0, err
		}
		return n, nil
	}
	if err == io.EOF {
		return n, fmt.Errorf("%w: reader ended after %d of %d bytes: %w",
			ErrSizeMismatch, e.size-e.remaining, e.size, io.ErrUnexpectedEOF)
	}
	return n, err
}

// checkEnd returns io.EOF when the underlying reader is exhausted too.
func (e *exactReader) checkEnd() error {
	for {
		n, err := e.r.Read(e.probe[:])
		if n > 0 {
			return fmt.Errorf("%w: reader has more than %d bytes", ErrSizeMismatch, e.size)
		}
		if err == io.EOF {
			return io.EOF
		}
		if err != nil {
			return err
		}
	}
}

func checkSize(size int64) error {
	if size < 0 {
		return fmt.Errorf("size %d is negative; Put needs the exact size of the object", size)
	}
	return nil
}
