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
		d, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
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
		err = fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return n, err
}

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
