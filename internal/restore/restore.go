package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"filippo.io/age"

	"github.com/backupd/backupd/internal/backupset"
	"github.com/backupd/backupd/internal/dump"
	"github.com/backupd/backupd/internal/humanize"
	"github.com/backupd/backupd/internal/seal"
	"github.com/backupd/backupd/internal/termsafe"
)

// Options configure a database restore. The zero value of every optional field is sensible.
type Options struct {
	Policy string
	// Targets are the policy's targets in order of preference; objects are read from the first
	// one holding a good copy.
	Targets    []backupset.Dest
	Set        backupset.Query // exact ID, newest finished before a time, or (zero) the newest
	Identities []age.Identity
	// To is the destination server's DSN (go-sql-driver syntax, no database). It never appears
	// in errors or logs.
	To string
	Selection
	Threads      int  // loader connections; default runtime.NumCPU()
	DropExisting bool // drop what the restore would create again instead of refusing
	NoVerify     bool // skip the checksum comparison (the marker is still removed at the end)
	// IndexesFirst creates every table with all its indexes before loading rows. By default the
	// secondary indexes of qualifying InnoDB tables are built after their rows are in, which is
	// faster (see indexes.go).
	IndexesFirst bool
	// InsertsOnly executes the data objects' INSERT statements as written. By default the rows of
	// those it can prove equivalent are sent with LOAD DATA LOCAL INFILE where the server allows
	// it, which costs the server far less (see loaddata.go).
	InsertsOnly bool
	TxBytes     int64  // INSERT bytes per loader transaction; default DefaultTxBytes, < 0: autocommit
	SpoolDir    string // downloaded objects larger than a few MiB wait here; default os.TempDir()
	Logger      *slog.Logger
	// Progress, when set, is called every ProgressEvery (default 2s) during Execute, from one
	// goroutine.
	Progress      func(Progress)
	ProgressEvery time.Duration
	Now           func() time.Time // injected clock; time.Now when nil
	// RestoredBy names who restores, for the marker row; default the host name.
	RestoredBy string
}

// Plan is a prepared restore: the set is found, the selection resolved, the destination checked
// and the identity proven, and nothing has been changed yet. Execute carries it out; Close
// releases it either way.
type Plan struct {
	Manifest  *backupset.Manifest
	Dump      *dump.Result
	Holders   []string // targets that hold the set, in the order they are read
	Databases []DatabasePlan
	Users     *dump.Object
	Server    Server     // the destination
	Drops     []Existing // what --drop-existing drops first
	// Untouched lists, per destination database, tables and views that exist there and that
	// the restore leaves as they are.
	Untouched map[string][]string
	Warnings  []string

	Tables      int   // base tables restored
	Rows        int64 // rows in them
	Bytes       int64 // plain SQL bytes to load
	SealedBytes int64 // bytes to download
	Threads     int
	Verify      bool

	opts     Options
	dest     *destination
	fetcher  *backupset.Fetcher
	objects  map[string]backupset.Object
	log      *slog.Logger
	executed bool

	downloaded atomic.Int64
	mu         sync.Mutex // guards Result fields written by workers
}

// Result describes a finished (or failed) restore.
type Result struct {
	SetID       string
	Databases   map[string]string // source -> destination
	Tables      int
	Verified    int
	Rows        int64
	Bytes       int64 // plain SQL bytes loaded
	Downloaded  int64 // sealed bytes read from targets
	Duration    time.Duration
	Phases      map[string]time.Duration
	Fallbacks   []string // objects read from a target other than the first holder
	Mismatches  []string // tables that failed verification
	Incomplete  []string // destination databases left with the incomplete marker
	IndexesLate int      // tables whose secondary indexes were built after loading
	// RowsLoadData counts the rows sent with LOAD DATA LOCAL INFILE; the others went in as the
	// backup's INSERT statements.
	RowsLoadData int64
}

// Throughput is plain bytes loaded per second.
func (r *Result) Throughput() float64 {
	if r == nil || r.Duration <= 0 {
		return 0
	}
	return float64(r.Bytes) / r.Duration.Seconds()
}

// Run prepares a restore, asks confirm (when not nil) with the plan, and executes it.
func Run(ctx context.Context, opts Options, confirm func(*Plan) error) (*Result, error) {
	p, err := Prepare(ctx, opts)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	if confirm != nil {
		if err := confirm(p); err != nil {
			return nil, err
		}
	}
	return p.Execute(ctx)
}

// Prepare finds the set, resolves the selection and checks everything that can be checked
// without changing the destination: that the destination is reachable, has a large enough
// max_allowed_packet and does not hold what would be created (unless DropExisting), and that
// the identities decrypt the set. The caller must Close the plan.
func Prepare(ctx context.Context, opts Options) (*Plan, error) {
	if opts.Threads <= 0 {
		opts.Threads = runtime.NumCPU()
	}
	if opts.TxBytes == 0 {
		opts.TxBytes = DefaultTxBytes
	}
	if opts.SpoolDir == "" {
		opts.SpoolDir = os.TempDir()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.ProgressEvery <= 0 {
		opts.ProgressEvery = 2 * time.Second
	}
	if opts.RestoredBy == "" {
		host, _ := os.Hostname()
		opts.RestoredBy = fmt.Sprintf("backupd on %s (pid %d)", host, os.Getpid())
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("policy", opts.Policy)
	if len(opts.Identities) == 0 {
		return nil, withKind(ErrWrongIdentity, errors.New("no identity to decrypt with: pass --identity FILE or set encryption.identity_file"))
	}
	if len(opts.Targets) == 0 {
		return nil, withKind(ErrSelection, errors.New("no target to restore from"))
	}

	q := opts.Set
	q.Now = opts.Now
	found, err := backupset.Find(ctx, opts.Targets, opts.Policy, q)
	if err != nil {
		return nil, err
	}
	m, holders, warns := found.Manifest, found.Holders, found.Warnings
	log = log.With("set", m.SetID)
	for _, w := range warns {
		log.Warn(w)
	}
	res, err := dumpOf(m)
	if err != nil {
		return nil, err
	}
	dbs, users, selWarns, err := selectObjects(res, opts.Selection)
	if err != nil {
		return nil, err
	}
	p := &Plan{
		Manifest: m, Dump: res, Databases: dbs, Users: users, Threads: opts.Threads, Verify: !opts.NoVerify,
		Warnings: append(warns, selWarns...), Untouched: map[string][]string{},
		opts: opts, log: log, objects: make(map[string]backupset.Object, len(m.Objects)),
	}
	for _, h := range holders {
		p.Holders = append(p.Holders, h.Name)
	}
	for _, o := range m.Objects {
		p.objects[o.Name] = o
	}
	if err := p.count(); err != nil {
		return nil, err
	}
	p.fetcher = &backupset.Fetcher{Policy: m.Policy, SetID: m.SetID, Sources: holders, Identities: opts.Identities,
		SpoolDir: opts.SpoolDir, MemLimit: 4 << 20}

	dest, err := openDestination(ctx, opts.To)
	if err != nil {
		return nil, err
	}
	p.dest, p.Server = dest, dest.server
	ok := false
	defer func() {
		if !ok {
			dest.Close()
		}
	}()
	if err := checkPacket(res.MaxStatementBytes, dest.server.MaxAllowedPacket); err != nil {
		return nil, err
	}
	if err := p.checkDestination(ctx); err != nil {
		return nil, err
	}
	if err := p.proveIdentity(ctx); err != nil {
		return nil, err
	}
	ok = true
	return p, nil
}

// Close releases the plan's connections.
func (p *Plan) Close() error {
	if p.dest == nil {
		return nil
	}
	return p.dest.Close()
}

// checkPacket refuses a destination whose max_allowed_packet is too small for the set's longest
// statement (plus the protocol header), before anything is loaded: otherwise the load would
// fail midway on the first large row.
func checkPacket(maxStatement, maxAllowed int64) error {
	if maxStatement > dump.MaxStatementBytes {
		return fmt.Errorf("the set claims statements of up to %d bytes, more than a dump can write (%d): the set is probably forged or damaged: restore another set (--set or --before)", maxStatement, int64(dump.MaxStatementBytes))
	}
	need := maxStatement + 1024
	if need <= maxAllowed {
		return nil
	}
	return withKind(ErrDestination, fmt.Errorf("the set has statements of up to %d bytes but the destination's max_allowed_packet is %d: run SET GLOBAL max_allowed_packet = %d on the destination (and set it in its config) and retry",
		maxStatement, maxAllowed, roundUpMiB(need)))
}

func roundUpMiB(n int64) int64 { return (n + 1<<20 - 1) / (1 << 20) * (1 << 20) }

// dumpOf decodes the database part of the manifest; a set without one has nothing to restore
// here.
func dumpOf(m *backupset.Manifest) (*dump.Result, error) {
	r, err := m.Dump()
	if err == nil && r == nil {
		err = withKind(ErrSelection, fmt.Errorf("set %s holds no database dump (a storage-only set?)", m.SetID))
	}
	return r, err
}

// count totals the plan and checks that the manifest has every object the dump lists.
func (p *Plan) count() error {
	var missing []string
	add := func(o dump.Object) {
		mo, ok := p.objects[o.Key]
		if !ok {
			missing = append(missing, o.Key)
			return
		}
		p.Bytes += o.Bytes
		p.SealedBytes += mo.Size
	}
	for i := range p.Databases {
		dp := &p.Databases[i]
		for _, list := range [][]dump.Object{dp.Schema, dp.Data, dp.Post} {
			for _, o := range list {
				add(o)
			}
		}
		for _, t := range dp.Tables {
			if t.Type == dump.TypeTable {
				p.Tables++
				p.Rows += t.Rows
			}
		}
	}
	if p.Users != nil {
		add(*p.Users)
	}
	if len(missing) > 0 {
		return fmt.Errorf("set %s is damaged: its manifest lacks %d object(s) the dump lists (%s): restore another set (--set or --before)",
			p.Manifest.SetID, len(missing), strings.Join(missing[:min(3, len(missing))], ", "))
	}
	return nil
}

// checkDestination lists what each destination database holds and refuses (ErrExists) when
// anything the restore would create is there, unless DropExisting.
func (p *Plan) checkDestination(ctx context.Context) error {
	lower := p.Server.LowerCaseNames != 0
	var found []Existing
	for i := range p.Databases {
		dp := &p.Databases[i]
		inv, err := p.dest.inventory(ctx, dp.Dest)
		if err != nil {
			return err
		}
		found = append(found, conflicts(dp, inv, lower)...)
		if o := others(dp, inv, lower); len(o) > 0 {
			p.Untouched[dp.Dest] = o
		}
	}
	if len(found) == 0 {
		return nil
	}
	if p.opts.DropExisting {
		p.Drops = found
		return nil
	}
	names := make([]string, 0, len(found))
	for _, e := range found {
		names = append(names, e.String())
	}
	more := ""
	if len(names) > 5 {
		more = fmt.Sprintf(" and %d more", len(names)-5)
		names = names[:5]
	}
	return withKind(ErrExists, fmt.Errorf("the destination already has %s%s: nothing was changed; add --drop-existing to replace them, or restore under another name with --as",
		strings.Join(names, ", "), more))
}

// proveIdentity reads the smallest object of the selection end to end, so a wrong key or a set
// that no target can serve is found before anything changes.
func (p *Plan) proveIdentity(ctx context.Context) error {
	var smallest *backupset.Object
	for i := range p.Databases {
		for _, list := range [][]dump.Object{p.Databases[i].Schema, p.Databases[i].Data, p.Databases[i].Post} {
			for _, o := range list {
				mo := p.objects[o.Key]
				if smallest == nil || mo.Size < smallest.Size {
					smallest = &mo
				}
			}
		}
	}
	if smallest == nil {
		return nil
	}
	rc, _, err := p.fetcher.Open(ctx, *smallest)
	if err == nil {
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
	}
	if err == nil {
		return nil
	}
	if errors.Is(err, seal.ErrWrongKey) {
		return withKind(ErrWrongIdentity, fmt.Errorf("the identity given cannot decrypt set %s, which is encrypted to %s: pass --identity FILE (or set encryption.identity_file) with the matching private key",
			p.Manifest.SetID, shortKeys(p.Manifest.Recipients)))
	}
	return err
}

// shortKeys lists public keys for a message, each shortened: enough to tell keys apart.
func shortKeys(keys []string) string {
	if len(keys) == 0 {
		return "recipients the manifest does not list"
	}
	out := make([]string, len(keys))
	for i, k := range keys {
		if len(k) > 20 {
			k = k[:16] + "…" + k[len(k)-4:]
		}
		out[i] = k
	}
	return strings.Join(out, ", ")
}

// Describe writes the plan for a person about to confirm it. It never shows a password.
func (p *Plan) Describe(w io.Writer, now time.Time) {
	w = termsafe.NewWriter(w) // names come from the set: no control characters on the terminal
	m, r := p.Manifest, p.Dump
	snap := r.SnapshotAt
	if snap.IsZero() {
		snap = m.StartedAt
	}
	fmt.Fprintf(w, "Restore plan\n")
	fmt.Fprintf(w, "  set:          %s (policy %s), data as of %s UTC, %s old\n", m.SetID, m.Policy,
		snap.UTC().Format("2006-01-02 15:04:05"), ageOf(now.Sub(snap)))
	fmt.Fprintf(w, "  source:       %s %s on %s; read from %s\n", r.Server.Flavor, r.Server.Version, r.Server.Host, strings.Join(p.Holders, ", then "))
	fmt.Fprintf(w, "  destination:  %s (server %s, %s) as %s\n", p.Server.Address, p.Server.Hostname, p.Server.Version, p.Server.User)
	for _, dp := range p.Databases {
		what := "whole database"
		if !dp.Whole {
			what = fmt.Sprintf("%d of its tables", len(dp.Tables))
		}
		arrow := dump.QuoteIdent(dp.Dest)
		if dp.Dest != dp.Source {
			arrow = dump.QuoteIdent(dp.Source) + " -> " + dump.QuoteIdent(dp.Dest)
		}
		fmt.Fprintf(w, "  database:     %s (%s)\n", arrow, what)
		var names []string
		for _, t := range dp.Tables {
			names = append(names, t.Name)
		}
		fmt.Fprintf(w, "    contents:   %s\n", listShort(names, 10))
		if u := p.Untouched[dp.Dest]; len(u) > 0 {
			fmt.Fprintf(w, "    untouched:  %s (already there, not in the restore)\n", listShort(u, 10))
		}
	}
	if p.Users != nil {
		fmt.Fprintf(w, "  users:        roles, users and grants of the set\n")
	}
	fmt.Fprintf(w, "  size:         %d tables, %d rows, %s of SQL (%s to download), %d threads\n",
		p.Tables, p.Rows, humanize.Bytes(p.Bytes), humanize.Bytes(p.SealedBytes), p.Threads)
	if p.Verify {
		fmt.Fprintf(w, "  verify:       every table's row count and checksum against the manifest\n")
	} else {
		fmt.Fprintf(w, "  verify:       OFF (--no-verify)\n")
	}
	if len(p.Drops) > 0 {
		var names []string
		for _, e := range p.Drops {
			names = append(names, e.String())
		}
		fmt.Fprintf(w, "  DROPS FIRST:  %s\n", listShort(names, 20))
	}
	for _, warn := range p.Warnings {
		fmt.Fprintf(w, "  warning:      %s\n", warn)
	}
}

func listShort(names []string, max int) string {
	if len(names) == 0 {
		return "(none)"
	}
	safe := make([]string, 0, min(len(names), max))
	for _, n := range names[:min(len(names), max)] {
		safe = append(safe, termsafe.Name(n))
	}
	if len(names) <= max {
		return strings.Join(safe, ", ")
	}
	return strings.Join(safe, ", ") + fmt.Sprintf(" and %d more", len(names)-max)
}

// age formats a duration the way a person says how old something is.
func ageOf(d time.Duration) string {
	switch {
	case d < 0:
		return "in the future (check the clocks)"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	default:
		return fmt.Sprintf("%dd%02dh", int(d.Hours())/24, int(d.Hours())%24)
	}
}
