// Package seal turns plain streams into the objects stored on targets and back:
// plain → zstd → age → (size, SHA-256), and age → zstd → plain.
//
// A sealed object is an ordinary age file whose plaintext is an ordinary zstd frame, so anyone
// holding the identity can recover it with `age -d -i key.txt OBJECT | zstd -d`, without backupd.
package seal

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"
)

// Level is a zstd compression level by name, as the config spells it.
type Level string

// The levels the config accepts. Fastest is the default: on two cores the dump is CPU-bound and
// the fastest level still shrinks SQL text about 5x.
const (
	Fastest Level = "fastest"
	Default Level = "default"
	Better  Level = "better"
	Best    Level = "best"
)

func (l Level) encoderLevel() (zstd.EncoderLevel, error) {
	switch l {
	case "", Fastest:
		return zstd.SpeedFastest, nil
	case Default:
		return zstd.SpeedDefault, nil
	case Better:
		return zstd.SpeedBetterCompression, nil
	case Best:
		return zstd.SpeedBestCompression, nil
	}
	return 0, fmt.Errorf("unknown compression level %q (want fastest, default, better or best)", string(l))
}

// Encoders are expensive to build (they allocate their history windows), so each level keeps a
// pool; an encoder is Reset onto the next object's writer.
var encoderPools sync.Map // zstd.EncoderLevel -> *sync.Pool

func getEncoder(l zstd.EncoderLevel, w io.Writer) (*zstd.Encoder, error) {
	p, _ := encoderPools.LoadOrStore(l, &sync.Pool{})
	if e, ok := p.(*sync.Pool).Get().(*zstd.Encoder); ok {
		e.Reset(w)
		return e, nil
	}
	// One goroutine per stream: parallelism comes from the dump's workers, and memory stays
	// bounded by workers × window.
	return zstd.NewWriter(w, zstd.WithEncoderLevel(l), zstd.WithEncoderConcurrency(1))
}

func putEncoder(l zstd.EncoderLevel, e *zstd.Encoder) {
	e.Reset(nil)
	p, _ := encoderPools.Load(l)
	p.(*sync.Pool).Put(e)
}

// Sum describes a finished sealed object.
type Sum struct {
	PlainSize  int64  // bytes written into the Writer
	SealedSize int64  // bytes written to the destination
	SHA256     string // hex SHA-256 of the sealed bytes
}

// Writer seals what is written to it into dst. Close must be called to finish the object;
// only then is Sum valid.
type Writer struct {
	level  zstd.EncoderLevel
	out    *countingHasher
	age    io.WriteCloser
	zw     *zstd.Encoder
	plain  int64
	closed bool
}

// NewWriter starts a sealed object on dst for the given recipients.
func NewWriter(dst io.Writer, recipients []age.Recipient, level Level) (*Writer, error) {
	if len(recipients) == 0 {
		return nil, errors.New("seal: no age recipients configured")
	}
	el, err := level.encoderLevel()
	if err != nil {
		return nil, err
	}
	out := &countingHasher{w: dst, h: sha256.New()}
	aw, err := age.Encrypt(out, recipients...)
	if err != nil {
		return nil, fmt.Errorf("start age encryption: %w", err)
	}
	zw, err := getEncoder(el, aw)
	if err != nil {
		return nil, fmt.Errorf("start zstd: %w", err)
	}
	return &Writer{level: el, out: out, age: aw, zw: zw}, nil
}

func (w *Writer) Write(p []byte) (int, error) {
	if w.closed {
		return 0, errors.New("seal: write after close")
	}
	n, err := w.zw.Write(p)
	w.plain += int64(n)
	return n, err
}

// Close flushes zstd and age and finishes the object.
func (w *Writer) Close() error {
	if w.closed {
		return nil
	}
	w.closed = true
	err := w.zw.Close()
	putEncoder(w.level, w.zw)
	w.zw = nil
	if err != nil {
		return fmt.Errorf("finish zstd: %w", err)
	}
	if err := w.age.Close(); err != nil {
		return fmt.Errorf("finish age: %w", err)
	}
	return nil
}

// Sum returns the sizes and hash of the sealed object; valid after Close.
func (w *Writer) Sum() Sum {
	return Sum{PlainSize: w.plain, SealedSize: w.out.n, SHA256: hex.EncodeToString(w.out.h.Sum(nil))}
}

type countingHasher struct {
	w io.Writer
	h hash.Hash
	n int64
}

func (c *countingHasher) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.h.Write(p[:n])
	c.n += int64(n)
	return n, err
}

// MaxWindow is the largest zstd window a sealed object may declare, a format fact: the
// encoder writes a window of 4 MiB at level fastest and 8 MiB at every other level (the
// library's defaults for those levels, which NewWriter never changes). The decoder refuses a
// frame that declares more before allocating it, so a hostile frame header cannot make a
// reader allocate the 512 MiB the library allows by default, or more.
const MaxWindow = 8 << 20

// maxDecoderMemory bounds what one decoder may allocate for a frame's history; streaming
// decoding needs the window plus a block, so the window bound is also the memory bound.
const maxDecoderMemory = MaxWindow

var decoderPool sync.Pool

// Open returns the plain stream of a sealed object. It fails early with ErrWrongKey when none
// of the identities can open it. Close returns the decoder to a pool; it does not close src.
func Open(src io.Reader, identities []age.Identity) (io.ReadCloser, error) {
	ar, err := age.Decrypt(src, identities...)
	if err != nil {
		var nm *age.NoIdentityMatchError
		if errors.As(err, &nm) {
			return nil, fmt.Errorf("%w: %v", ErrWrongKey, err)
		}
		return nil, fmt.Errorf("%w: age: %v", ErrCorrupt, err)
	}
	d, _ := decoderPool.Get().(*zstd.Decoder)
	if d == nil {
		d, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(MaxWindow), zstd.WithDecoderMaxMemory(maxDecoderMemory))
		if err != nil {
			return nil, fmt.Errorf("start zstd: %w", err)
		}
	}
	if err := d.Reset(ar); err != nil {
		decoderPool.Put(d)
		return nil, fmt.Errorf("%w: zstd: %v", ErrCorrupt, err)
	}
	return &reader{d: d}, nil
}

type reader struct{ d *zstd.Decoder }

func (r *reader) Read(p []byte) (int, error) {
	if r.d == nil {
		return 0, errors.New("seal: read after close")
	}
	n, err := r.d.Read(p)
	if err != nil && err != io.EOF {
		if errors.Is(err, zstd.ErrWindowSizeExceeded) || errors.Is(err, zstd.ErrDecoderSizeExceeded) {
			err = fmt.Errorf("%w: zstd: the frame declares a window above the %d MiB backupd writes (%v)", ErrCorrupt, MaxWindow>>20, err)
		} else {
			err = fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
	}
	return n, err
}

// ErrPlainSize means an object's plaintext is longer or shorter than the plain size its
// manifest declares.
var ErrPlainSize = errors.New("plaintext size differs from the manifest")

// ExactSize returns rc cut at n bytes: reading past n fails with ErrPlainSize as soon as one more
// byte arrives (a compression bomb is stopped there, not after gigabytes), and so does an end
// before n bytes. Close closes rc.
func ExactSize(rc io.ReadCloser, n int64) io.ReadCloser {
	return &exactReader{rc: rc, left: n, want: n}
}

type exactReader struct {
	rc         io.ReadCloser
	left, want int64
	err        error
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	if e.left == 0 {
		// The declared size is reached: anything more is an error, and only a clean end is not.
		var one [1]byte
		n, err := e.rc.Read(one[:])
		for n == 0 && err == nil {
			n, err = e.rc.Read(one[:])
		}
		switch {
		case n > 0:
			e.err = fmt.Errorf("%w: it holds more than the %d bytes declared", ErrPlainSize, e.want)
		case err == io.EOF:
			e.err = io.EOF
		default:
			e.err = err
		}
		return 0, e.err
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.rc.Read(p)
	e.left -= int64(n)
	if err == io.EOF && e.left > 0 {
		e.err = fmt.Errorf("%w: it holds %d bytes, %d declared", ErrPlainSize, e.want-e.left, e.want)
		return n, e.err
	}
	if err == io.EOF {
		err = nil // checked for a clean end on the next Read
	}
	if err != nil {
		e.err = err
	}
	return n, err
}

func (e *exactReader) Close() error { return e.rc.Close() }

func (r *reader) Close() error {
	if r.d != nil {
		r.d.Reset(nil)
		decoderPool.Put(r.d)
		r.d = nil
	}
	return nil
}

// ErrWrongKey means none of the identities given can decrypt the object.
var ErrWrongKey = errors.New("no identity matches: the object was encrypted to other recipients (check identity_file / --identity)")

// ErrCorrupt means the object is damaged: truncated, altered, or not a sealed object at all.
var ErrCorrupt = errors.New("object is corrupt or truncated")
