package backupset

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"filippo.io/age"

	"github.com/backupd/backupd/internal/seal"
	"github.com/backupd/backupd/internal/signing"
	"github.com/backupd/backupd/internal/targets"
)

// Target is what writing and reading sets needs of a storage target.
type Target interface {
	Put(ctx context.Context, key string, r io.Reader, size int64) error
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	List(ctx context.Context, prefix string, fn func(targets.ObjectInfo) error) error
	Delete(ctx context.Context, key string) error
}

// Dest is one named target a set is written to.
type Dest struct {
	Name   string
	Target Target
}

// Signer signs what a host writes; *signing.Signer (keys.Signer) is one.
type Signer interface {
	Sign(namespace string, msg []byte) ([]byte, error)
}

// WriterOptions tune a Writer; zero values are sensible except Recipients and Signer.
type WriterOptions struct {
	Recipients []age.Recipient
	// Signer signs the manifest (required): a set whose manifest is not signed by a trusted
	// key is never committed for any reader.
	Signer Signer
	Level  seal.Level
	// MinTargets is how many targets must still be healthy for the set to be worth finishing;
	// below it Create fails fast. Default: all of them.
	MinTargets int
	// SpoolDir holds sealed objects larger than MemSpool until every target has them.
	SpoolDir string
	MemSpool int // default 4 MiB
	// QueueLen bounds how many finished objects may wait for one target, so a slow target
	// stalls the dump only after this many, and memory stays bounded.
	QueueLen         int // default 4
	UploadsPerTarget int // default 2
	Logger           *slog.Logger
	// BeforeCommit, when set, runs once every upload has finished and before any manifest is
	// written; an error fails the set on every target. The caller uses it to recheck what the
	// set references outside itself (storage packs) at the last moment.
	BeforeCommit func(ctx context.Context) error
}

// Writer writes one set to several targets concurrently from a single read of the data: every
// object is sealed once into a spool, and each target uploads from that spool at its own pace.
// Create is safe for concurrent use (it is the dump's Sink).
type Writer struct {
	policy, id string
	opts       WriterOptions
	dests      []*dest

	mu      sync.Mutex
	objects []Object
	names   map[string]bool
	closed  bool

	// Counters for progress displays; read with Progress.
	plainBytes, sealedBytes, finished atomic.Int64
}

// Progress is a snapshot of a Writer's work so far.
type Progress struct {
	PlainBytes  int64 // bytes written into objects
	SealedBytes int64 // sealed bytes of finished objects
	Objects     int64 // finished objects
}

// Progress reports what has been written so far; safe to call concurrently with writes.
func (w *Writer) Progress() Progress {
	return Progress{PlainBytes: w.plainBytes.Load(), SealedBytes: w.sealedBytes.Load(), Objects: w.finished.Load()}
}

type dest struct {
	Dest
	queue chan *spool
	wg    sync.WaitGroup

	mu  sync.Mutex
	err error // first failure; the target gets no more objects and no manifest
}

func (d *dest) failed() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.err
}

func (d *dest) fail(err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.err == nil {
		d.err = err
	}
}

// NewWriter starts the uploaders of a new set. The caller must end it with Commit or Abort.
func NewWriter(ctx context.Context, policy, id string, dests []Dest, opts WriterOptions) (*Writer, error) {
	if !ValidPolicyName(policy) {
		return nil, fmt.Errorf("policy name %q cannot be used as a key segment", policy)
	}
	if !ValidID(id) {
		return nil, fmt.Errorf("set ID %q is malformed", id)
	}
	if len(dests) == 0 {
		return nil, errors.New("a set needs at least one target")
	}
	if len(opts.Recipients) == 0 {
		return nil, errors.New("no age recipients: objects would not be encrypted")
	}
	if opts.Signer == nil {
		return nil, errors.New("no signing key: the set's manifest would not be signed, and no host would trust it")
	}
	if opts.MinTargets <= 0 || opts.MinTargets > len(dests) {
		opts.MinTargets = len(dests)
	}
	if opts.MemSpool <= 0 {
		opts.MemSpool = 4 << 20
	}
	if opts.QueueLen <= 0 {
		opts.QueueLen = 4
	}
	if opts.UploadsPerTarget <= 0 {
		opts.UploadsPerTarget = 2
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	w := &Writer{policy: policy, id: id, opts: opts, names: map[string]bool{}}
	for _, dd := range dests {
		d := &dest{Dest: dd, queue: make(chan *spool, opts.QueueLen)}
		for range opts.UploadsPerTarget {
			d.wg.Add(1)
			go w.upload(ctx, d)
		}
		w.dests = append(w.dests, d)
	}
	return w, nil
}

// ID is the set's ID.
func (w *Writer) ID() string { return w.id }

func (w *Writer) upload(ctx context.Context, d *dest) {
	defer d.wg.Done()
	for sp := range d.queue {
		if d.failed() == nil {
			key := ObjectKey(w.policy, w.id, sp.obj.Name)
			if err := d.Target.Put(ctx, key, sp.reader(), sp.obj.Size); err != nil {
				d.fail(fmt.Errorf("upload %s: %w", key, err))
				w.opts.Logger.Error("target failed; it gets no more objects of this set", "target", d.Name, "set", w.id, "error", err)
			}
		}
		sp.release()
	}
}

func (w *Writer) healthy() int {
	n := 0
	for _, d := range w.dests {
		if d.failed() == nil {
			n++
		}
	}
	return n
}

func (w *Writer) tooFewTargets() error {
	if w.healthy() >= w.opts.MinTargets {
		return nil
	}
	var errs []error
	for _, d := range w.dests {
		if err := d.failed(); err != nil {
			errs = append(errs, fmt.Errorf("target %s: %w", d.Name, err))
		}
	}
	return fmt.Errorf("only %d of %d targets are still healthy, min_targets is %d: %w", w.healthy(), len(w.dests), w.opts.MinTargets, errors.Join(errs...))
}

// ValidObjectName reports whether name can name an object: a clean relative '/' path.
func ValidObjectName(name string) bool {
	if name == "" || strings.HasPrefix(name, "/") || strings.ContainsRune(name, 0) || path.Clean(name) != name {
		return false
	}
	for _, seg := range strings.Split(name, "/") {
		if seg == ".." || seg == "." {
			return false
		}
	}
	return true
}

// Create starts a sealed object of the set. What is written is compressed and encrypted as it
// arrives; Close finishes it and queues it for every healthy target.
func (w *Writer) Create(ctx context.Context, name string) (io.WriteCloser, error) {
	if !ValidObjectName(name) {
		return nil, fmt.Errorf("object name %q is not a clean relative path", name)
	}
	if err := w.tooFewTargets(); err != nil {
		return nil, err
	}
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil, errors.New("set is already committed or aborted")
	}
	if w.names[name] {
		w.mu.Unlock()
		return nil, fmt.Errorf("object %q written twice in set %s", name, w.id)
	}
	w.names[name] = true
	w.mu.Unlock()

	sp := &spool{dir: w.opts.SpoolDir, memLimit: w.opts.MemSpool}
	sw, err := seal.NewWriter(sp, w.opts.Recipients, w.opts.Level)
	if err != nil {
		return nil, fmt.Errorf("seal %s: %w", name, err)
	}
	return &objectWriter{ctx: ctx, w: w, name: name, sp: sp, sw: sw}, nil
}

type objectWriter struct {
	ctx  context.Context // the Create call's, for the blocking hand-off in Close
	w    *Writer
	name string
	sp   *spool
	sw   *seal.Writer
	done bool
}

func (o *objectWriter) Write(p []byte) (int, error) {
	n, err := o.sw.Write(p)
	o.w.plainBytes.Add(int64(n))
	return n, err
}

func (o *objectWriter) Close() error {
	if o.done {
		return nil
	}
	o.done = true
	if err := o.sw.Close(); err != nil {
		o.sp.discard()
		return fmt.Errorf("seal %s: %w", o.name, err)
	}
	sum := o.sw.Sum()
	o.sp.obj = Object{Name: o.name, Size: sum.SealedSize, SHA256: sum.SHA256, PlainSize: sum.PlainSize}
	w := o.w
	w.mu.Lock()
	w.objects = append(w.objects, o.sp.obj)
	w.mu.Unlock()
	w.sealedBytes.Add(sum.SealedSize)
	w.finished.Add(1)

	// One reference per target plus one held here, so the spool outlives the hand-off loop.
	o.sp.refs.Store(int32(len(w.dests)) + 1)
	defer o.sp.release()
	for i, d := range w.dests {
		if d.failed() != nil {
			o.sp.release()
			continue
		}
		select {
		case d.queue <- o.sp:
		case <-o.ctx.Done():
			for range w.dests[i:] {
				o.sp.release()
			}
			return fmt.Errorf("queue %s for target %s: %w", o.name, d.Name, o.ctx.Err())
		}
	}
	return w.tooFewTargets()
}

// TargetResult is the outcome of a set on one target.
type TargetResult struct {
	Name string
	Err  error // nil: committed there
}

// Commit waits for every upload, confirms that each healthy target lists every object at its
// sealed size, and then writes the manifest's signature and the manifest there — the manifest
// last, as the commit marker: a signature without a manifest is an uncommitted set, collected
// like any other. A target that failed at any point gets no manifest; its result says why.
func (w *Writer) Commit(ctx context.Context, m *Manifest) []TargetResult {
	w.drain()
	if w.opts.BeforeCommit != nil {
		if err := w.opts.BeforeCommit(ctx); err != nil {
			for _, d := range w.dests {
				d.fail(err)
			}
		}
	}
	w.mu.Lock()
	objs := append([]Object(nil), w.objects...)
	w.mu.Unlock()
	sort.Slice(objs, func(i, j int) bool { return objs[i].Name < objs[j].Name })

	m.FormatVersion = FormatVersion
	m.SetID, m.Policy, m.Objects = w.id, w.policy, objs
	m.Compression = string(w.opts.Level)
	if m.Compression == "" {
		m.Compression = string(seal.Fastest)
	}
	m.Targets = m.Targets[:0]
	for _, d := range w.dests {
		m.Targets = append(m.Targets, d.Name)
	}
	body, err := json.MarshalIndent(m, "", "  ")
	if err == nil && len(body) > MaxManifestBytes {
		err = fmt.Errorf("it is %d bytes, more than the %d every reader accepts: split the policy (fewer databases or storage sources per set)", len(body), MaxManifestBytes)
	}
	if err != nil {
		err = fmt.Errorf("encode manifest: %w", err)
	}
	var sig []byte
	if err == nil {
		if sig, err = w.opts.Signer.Sign(signing.NamespaceManifest, body); err != nil {
			err = fmt.Errorf("sign manifest: %w", err)
		}
	}
	if err != nil {
		for _, d := range w.dests {
			d.fail(err)
		}
	}

	var wg sync.WaitGroup
	for _, d := range w.dests {
		if d.failed() != nil {
			continue
		}
		wg.Go(func() {
			if err := w.confirm(ctx, d, objs); err != nil {
				d.fail(err)
				return
			}
			sigKey := SignatureKey(w.policy, w.id)
			if err := d.Target.Put(ctx, sigKey, bytes.NewReader(sig), int64(len(sig))); err != nil {
				d.fail(fmt.Errorf("write %s: %w", sigKey, err))
				return
			}
			key := ManifestKey(w.policy, w.id)
			if err := d.Target.Put(ctx, key, bytes.NewReader(body), int64(len(body))); err != nil {
				d.fail(fmt.Errorf("write %s: %w", key, err))
			}
		})
	}
	wg.Wait()
	res := make([]TargetResult, len(w.dests))
	for i, d := range w.dests {
		res[i] = TargetResult{Name: d.Name, Err: d.failed()}
	}
	return res
}

// confirm checks that the target lists every object of the set at its sealed size.
func (w *Writer) confirm(ctx context.Context, d *dest, objs []Object) error {
	prefix := Prefix(w.policy, w.id)
	sizes := map[string]int64{}
	err := d.Target.List(ctx, prefix, func(oi targets.ObjectInfo) error {
		sizes[oi.Key] = oi.Size
		return nil
	})
	if err != nil {
		return fmt.Errorf("list %s to confirm the upload: %w", prefix, err)
	}
	for _, o := range objs {
		key := ObjectKey(w.policy, w.id, o.Name)
		got, ok := sizes[key]
		if !ok {
			return fmt.Errorf("confirm %s: object missing after upload", key)
		}
		if got != o.Size {
			return fmt.Errorf("confirm %s: target has %d bytes, want %d", key, got, o.Size)
		}
	}
	return nil
}

// drain stops accepting objects and waits for every queued upload.
func (w *Writer) drain() {
	w.mu.Lock()
	already := w.closed
	w.closed = true
	w.mu.Unlock()
	if already {
		return
	}
	for _, d := range w.dests {
		close(d.queue)
	}
	for _, d := range w.dests {
		d.wg.Wait()
	}
}

// Abort waits for the uploaders and deletes, best effort, what this set put on each target.
// Without a manifest the set is invisible anyway; deleting keeps buckets tidy, and whatever a
// crash leaves is collected later by garbage collection of uncommitted sets.
func (w *Writer) Abort(ctx context.Context) {
	w.drain()
	w.mu.Lock()
	objs := append([]Object(nil), w.objects...)
	w.mu.Unlock()
	for _, d := range w.dests {
		for _, o := range objs {
			key := ObjectKey(w.policy, w.id, o.Name)
			if err := d.Target.Delete(ctx, key); err != nil {
				w.opts.Logger.Warn("could not delete object of an aborted set", "target", d.Name, "key", key, "error", err)
			}
		}
	}
}

// spool holds one sealed object until every target has uploaded it: in memory while small,
// in a temporary file beyond memLimit, so memory stays bounded whatever the object size.
type spool struct {
	dir      string
	memLimit int
	buf      []byte
	file     *os.File
	size     int64
	obj      Object
	refs     atomic.Int32
}

func (s *spool) Write(p []byte) (int, error) {
	if s.file == nil && len(s.buf)+len(p) > s.memLimit {
		f, err := os.CreateTemp(s.dir, "backupd-spool-*")
		if err != nil {
			return 0, fmt.Errorf("create spool file: %w", err)
		}
		// Unlinked at once: nothing is left behind if the process dies.
		os.Remove(f.Name())
		if _, err := f.Write(s.buf); err != nil {
			f.Close()
			return 0, err
		}
		s.file, s.buf = f, nil
	}
	if s.file != nil {
		n, err := s.file.Write(p)
		s.size += int64(n)
		return n, err
	}
	s.buf = append(s.buf, p...)
	s.size += int64(len(p))
	return len(p), nil
}

func (s *spool) reader() io.ReadSeeker {
	if s.file != nil {
		return io.NewSectionReader(s.file, 0, s.size)
	}
	return bytes.NewReader(s.buf)
}

func (s *spool) release() {
	if s.refs.Add(-1) == 0 {
		s.discard()
	}
}

func (s *spool) discard() {
	if s.file != nil {
		s.file.Close()
		s.file = nil
	}
	s.buf = nil
}
