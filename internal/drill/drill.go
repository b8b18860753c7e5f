package drill

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"filippo.io/age"
	_ "github.com/go-sql-driver/mysql" // checks and checksums on the scratch server

	"github.com/backupd/backupd/internal/backupset"
	"github.com/backupd/backupd/internal/config"
	"github.com/backupd/backupd/internal/dump"
	"github.com/backupd/backupd/internal/humanize"
	"github.com/backupd/backupd/internal/keys"
	"github.com/backupd/backupd/internal/notify"
	"github.com/backupd/backupd/internal/restore"
	"github.com/backupd/backupd/internal/signing"
	"github.com/backupd/backupd/internal/storage"
	"github.com/backupd/backupd/internal/targets"
	"github.com/backupd/backupd/internal/termsafe"
)

// historyDepth is how many past reports per target a drill reads for its rotation and trend.
const historyDepth = 50

// Options configure one drill.
type Options struct {
	Config *config.Config
	Policy *config.Policy // its Drill section may be nil: the defaults (embedded scratch, rotation) apply
	// SetID drills this set; empty: the newest committed set on the target drilled.
	SetID      string
	Identities []age.Identity
	Threads    int // loader connections and downloads; default runtime.NumCPU()
	Logger     *slog.Logger
	Now        func() time.Time // injected clock; time.Now when nil
	// TargetOptions are passed to targets.Open (retries, metrics); their Logger defaults to
	// Logger.
	TargetOptions targets.Options
	Tool          string // recorded in the report, e.g. "backupd 1.2.0"
	NoMail        bool   // do not mail the report even when drill.notify is set
	// Signer signs the stored report; nil: this host's key (keys.Signer from Config).
	Signer *signing.Signer
	// Verifier decides which past reports count (rotation, trend); nil: keys.Verifier of
	// Config.
	Verifier *signing.Verifier
	// AllowUnsigned also accepts a set without any signature (written before backupd signed
	// its sets), with a warning in the report; never a badly signed or untrusted one. Sets are
	// judged against the config's signing.trusted_keys (backupset.Committed).
	AllowUnsigned bool
}

// DeliveryError says the drill reached its verdict but the report did not get where it
// should: the mail failed, or no target stored it. The report is complete.
type DeliveryError struct{ Errs []error }

func (e *DeliveryError) Error() string {
	msgs := make([]string, len(e.Errs))
	for i, err := range e.Errs {
		msgs[i] = err.Error()
	}
	return "the drill report was not delivered: " + strings.Join(msgs, "; ")
}

func (e *DeliveryError) Unwrap() []error { return e.Errs }

// Run runs one drill of opts.Policy and returns its report, after storing it on the policy's
// targets and mailing it to drill.notify. The verdict is in the report (Passed); the error is
// not nil only when ctx ended first (the report is then partial, and neither stored nor
// mailed), when the targets cannot even be opened, or when the report could not be delivered
// (*DeliveryError; the report is complete). Everything the drill created is removed before
// Run returns.
func Run(ctx context.Context, opts Options) (*Report, error) {
	r, err := newDrillRun(opts)
	if err != nil {
		return nil, err
	}
	hist, herr := History(ctx, r.dests, r.policy.Name, historyDepth, r.opts.Verifier)
	if herr != nil && ctx.Err() == nil {
		r.warn("part of the drill history could not be read: %v", humanize.OneLine(herr))
	}
	target := r.drill.From
	if target == config.DrillFromRotate {
		target = NextTarget(r.policy.Targets, hist)
	}
	r.rep.Target = target
	r.base = r.base.With("target", target)
	r.log = r.log.With("target", target)
	src, ok := r.dest(target)
	if !ok {
		return nil, fmt.Errorf("target %s is not a target of policy %s", target, r.policy.Name)
	}

	r.run(ctx, src)
	if err := ctx.Err(); err != nil {
		return r.rep, err
	}
	return r.rep, r.finish(ctx, hist)
}

// drillRun is one drill in progress: its options, the scratch server and the report being built.
type drillRun struct {
	opts    Options
	cfg     *config.Config
	policy  *config.Policy
	drill   config.Drill
	dests   []backupset.Dest
	log     *slog.Logger // with the policy, target and set
	base    *slog.Logger // with the target only: restore and storage add the policy and set
	now     func() time.Time
	trust   backupset.Trust
	threads int
	rep     *Report

	start     time.Time
	workspace string
	dsn       string            // the scratch server
	names     map[string]string // source database -> name on the scratch
	dump      *dump.Result      // nil for a storage-only set
	// what describes each object of the set for messages: "table shop.orders" and the like.
	what map[string]string
}

func newDrillRun(opts Options) (*drillRun, error) {
	if opts.Config == nil || opts.Policy == nil {
		return nil, errors.New("drill: no configuration or policy")
	}
	r := &drillRun{opts: opts, cfg: opts.Config, policy: opts.Policy, log: opts.Logger, now: opts.Now, threads: opts.Threads}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	r.base = r.log
	r.log = r.log.With("policy", r.policy.Name)
	if r.now == nil {
		r.now = time.Now
	}
	if r.threads <= 0 {
		r.threads = runtime.NumCPU()
	}
	// The report is signed so that other hosts count it; past reports count only when signed.
	if r.opts.Signer == nil {
		s, err := keys.Signer(r.cfg, r.base)
		if err != nil {
			// The drill still runs and reports; storing its report fails (DeliveryError),
			// since an unsigned report would not count anywhere.
			r.log.Error("no signing key: the drill report cannot be signed, so it will not be stored on the targets", "error", err)
		}
		r.opts.Signer = s
	}
	if r.opts.Verifier == nil {
		v, _, err := keys.Verifier(r.cfg)
		if err != nil {
			return nil, fmt.Errorf("drill: %w", err)
		}
		r.opts.Verifier = v
	}
	if opts.Policy.Drill != nil {
		r.drill = *opts.Policy.Drill
	}
	if r.drill.From == "" {
		r.drill.From = config.DrillFromRotate
	}
	v, _, err := keys.Verifier(r.cfg)
	if err != nil {
		return nil, err
	}
	r.trust = v
	if opts.AllowUnsigned {
		r.trust = backupset.AllowUnsigned(v)
	}
	if r.drill.Scratch.DSN == "" && r.drill.Scratch.Embedded == nil {
		r.drill.Scratch.Embedded = &config.EmbeddedScratch{}
	}
	topts := opts.TargetOptions
	if topts.Logger == nil {
		topts.Logger = r.log
	}
	dests, err := r.cfg.OpenTargets(r.policy, topts)
	if err != nil {
		return nil, err
	}
	r.dests = dests
	host, _ := os.Hostname()
	start := r.now()
	r.rep = &Report{
		Version: ReportVersion, Policy: r.policy.Name, StartedAt: start.UTC(), Host: host, Tool: opts.Tool,
		MaxRTOSeconds: secs(r.drill.MaxRTO), MaxRPOSeconds: secs(r.drill.MaxRPO),
		Databases: []DatabaseResult{}, Checks: []CheckResult{}, Storage: []StorageResult{},
	}
	r.rep.ID = drillID(start, "")
	r.start = start
	if r.drill.Scratch.DSN != "" {
		r.rep.Scratch.Kind = scratchDSN
	} else {
		r.rep.Scratch.Kind = scratchEmbedded
	}
	return r, nil
}

func (r *drillRun) dest(name string) (backupset.Dest, bool) {
	for _, d := range r.dests {
		if d.Name == name {
			return d, true
		}
	}
	return backupset.Dest{}, false
}

func (r *drillRun) fail(format string, args ...any) {
	msg := termsafe.Text(fmt.Sprintf(format, args...))
	r.rep.Reasons = append(r.rep.Reasons, msg)
	r.log.Error("drill problem", "problem", msg)
}

func (r *drillRun) warn(format string, args ...any) {
	msg := termsafe.Text(fmt.Sprintf(format, args...))
	r.rep.Warnings = append(r.rep.Warnings, msg)
	r.log.Warn(msg)
}

// run does the drill proper: find the set, check its objects, start the scratch, restore and
// verify, run the checks. Problems become the report's reasons. Everything it creates is
// removed before it returns.
func (r *drillRun) run(ctx context.Context, src backupset.Dest) {
	m, err := r.findSet(ctx, src)
	if err != nil {
		if ctx.Err() == nil {
			r.fail("%v", err)
		}
		return
	}
	r.rep.ID = drillID(r.start, m.SetID)
	r.log = r.log.With("set", m.SetID)
	if err := r.describeSet(m); err != nil {
		r.fail("set %s cannot be read: %v", m.SetID, err)
		return
	}
	release := protectSet(ctx, src, m, r.now, r.log)
	defer release()

	if problems := r.preflight(ctx, src, m); len(problems) > 0 {
		for _, p := range problems {
			r.fail("%s", p)
		}
		r.notRestored(fmt.Sprintf("not restored: the set is damaged on target %s", src.Name))
		return
	}

	ws, err := newWorkspace(r.scratchParent(), r.policy.Name, r.log)
	if err != nil {
		r.fail("%v", err)
		return
	}
	r.workspace = ws
	defer func() {
		if err := os.RemoveAll(ws); err != nil {
			r.warn("could not remove the drill's temporary directory %s: %v", ws, err)
		}
	}()

	if r.dump == nil {
		r.rep.Scratch = ScratchInfo{} // a storage-only set needs no database server
	} else {
		closeScratch, err := r.startScratch(ctx, m)
		if err != nil {
			if ctx.Err() == nil {
				r.fail("the scratch server could not be prepared: %v", err)
				r.notRestored("not restored: no scratch server")
			}
			return
		}
		defer closeScratch()
	}

	rtoStart := r.now()
	dbOK := true
	if r.dump != nil {
		dbOK = r.restoreDatabases(ctx, src, m)
		r.rep.DatabaseSeconds = secs(r.now().Sub(rtoStart))
	}
	if ctx.Err() != nil {
		return
	}
	storageStart := r.now()
	storageOK := r.restoreStorage(ctx, src, m)
	r.rep.StorageSeconds = secs(r.now().Sub(storageStart))
	r.rep.RTOSeconds = secs(r.now().Sub(rtoStart))
	if ctx.Err() != nil {
		return
	}

	if len(r.drill.Checks) > 0 {
		checksStart := r.now()
		r.runChecks(ctx, dbOK)
		r.rep.ChecksSeconds = secs(r.now().Sub(checksStart))
	}
	if dbOK && storageOK && r.drill.MaxRTO > 0 && r.rep.RTO() > r.drill.MaxRTO {
		r.fail("the restore took %s, more than max_rto %s", round(r.rep.RTO()), r.drill.MaxRTO)
	}
	if r.drill.MaxRPO > 0 && r.rep.RPO() > r.drill.MaxRPO {
		r.fail("the newest set on target %s holds data %s old, more than max_rpo %s", src.Name, round(r.rep.RPO()), r.drill.MaxRPO)
	}
}

// findSet reads the set to drill from the one target the drill tests.
func (r *drillRun) findSet(ctx context.Context, src backupset.Dest) (*backupset.Manifest, error) {
	found, err := backupset.Find(ctx, []backupset.Dest{src}, r.policy.Name, backupset.Query{ID: r.opts.SetID, Now: r.now, Trust: r.trust})
	switch {
	case errors.Is(err, backupset.ErrUnreachable):
		return nil, fmt.Errorf("target %s cannot be read: %v", src.Name, humanize.OneLine(err))
	case errors.Is(err, backupset.ErrNoSet) && r.opts.SetID != "":
		return nil, fmt.Errorf("set %s is not committed on target %s: %v", r.opts.SetID, src.Name, humanize.OneLine(err))
	case errors.Is(err, backupset.ErrNoSet):
		return nil, fmt.Errorf("target %s holds no committed set of policy %s: %v", src.Name, r.policy.Name, humanize.OneLine(err))
	case err != nil:
		return nil, err
	}
	for _, w := range found.Warnings {
		r.warn("%s", w)
	}
	return found.Manifest, nil
}

// describeSet fills the report's set section and the table list, every table not restored yet.
func (r *drillRun) describeSet(m *backupset.Manifest) error {
	dr, err := m.Dump()
	if err != nil {
		return err
	}
	r.dump = dr
	info := &SetInfo{ID: m.SetID, SnapshotAt: m.StartedAt.UTC(), StartedAt: m.StartedAt.UTC(), FinishedAt: m.FinishedAt.UTC(),
		Objects: len(m.Objects), Bytes: m.Bytes()}
	if info.SnapshotAt.IsZero() {
		info.SnapshotAt, _ = backupset.IDTime(m.SetID) // the set ID holds its start time
	}
	info.Tables, info.Rows = m.Counts()
	r.what = map[string]string{}
	if dr != nil {
		if !dr.SnapshotAt.IsZero() {
			info.SnapshotAt = dr.SnapshotAt.UTC()
		}
		info.Source = fmt.Sprintf("%s %s on %s", dr.Server.Flavor, dr.Server.Version, dr.Server.Host)
		info.PlainBytes += dr.Bytes
		for _, db := range dr.Databases {
			res := DatabaseResult{Source: db.Name, RestoredAs: db.Name, Tables: []TableResult{}}
			for _, t := range db.Tables {
				if t.Type != dump.TypeTable {
					continue
				}
				tr := TableResult{Name: t.Name, Status: TableNotRestored, RowsExpected: t.Rows, ChecksumExpected: t.Checksum}
				if t.NoData != "" {
					tr.Status, tr.Detail = TableSkipped, "the backup holds no rows for it: "+t.NoData
				}
				res.Tables = append(res.Tables, tr)
			}
			r.rep.Databases = append(r.rep.Databases, res)
			for _, o := range db.Objects {
				r.what[o.Key] = describeObject(db.Name, o)
			}
		}
	}
	desc, err := storage.ParseDescription(m.Files)
	if err != nil {
		return err
	}
	for _, s := range desc.Sources {
		r.rep.Storage = append(r.rep.Storage, StorageResult{Source: s.Name, FilesExpected: s.Files})
		info.PlainBytes += s.Bytes
		r.what[s.Index] = "the index of storage source " + s.Name
	}
	r.rep.Set = info
	r.rep.RPOSeconds = secs(r.rep.StartedAt.Sub(info.SnapshotAt))
	if dr == nil && len(desc.Sources) == 0 {
		return errors.New("it holds neither a database dump nor a storage snapshot")
	}
	return nil
}

func describeObject(db string, o dump.Object) string {
	switch o.Kind {
	case dump.KindData:
		return "table " + db + "." + o.Name
	case dump.KindTable:
		return "the definition of table " + db + "." + o.Name
	case dump.KindDatabase:
		return "the definition of database " + db
	case dump.KindUsers:
		return "the users and grants"
	}
	return o.Kind + " " + db + "." + o.Name
}

// objectName names an object for a message: its name and what it holds.
func (r *drillRun) objectName(name string) string {
	if w := r.what[name]; w != "" {
		return fmt.Sprintf("object %s (%s)", name, w)
	}
	return "object " + name
}

// preflight lists the set on the target and compares every object's presence and size with the
// manifest: a set with a missing or truncated object cannot restore, and saying which object
// is more useful than a failed load. Content (SHA-256, decryption) is checked as it is read.
func (r *drillRun) preflight(ctx context.Context, src backupset.Dest, m *backupset.Manifest) []string {
	sizes := map[string]int64{}
	err := src.Target.List(ctx, backupset.Prefix(m.Policy, m.SetID), func(oi targets.ObjectInfo) error {
		sizes[oi.Key] = oi.Size
		return nil
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return []string{fmt.Sprintf("the objects of set %s on target %s cannot be listed: %v", m.SetID, src.Name, humanize.OneLine(err))}
	}
	var problems []string
	for _, o := range m.Objects {
		key := backupset.ObjectKey(m.Policy, m.SetID, o.Name)
		size, ok := sizes[key]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("%s is missing on target %s (key %s)", r.objectName(o.Name), src.Name, key))
		case size != o.Size:
			problems = append(problems, fmt.Sprintf("%s has %d bytes on target %s, the manifest says %d (key %s)", r.objectName(o.Name), size, src.Name, o.Size, key))
		}
	}
	return problems
}

// notRestored gives every table still waiting a detail.
func (r *drillRun) notRestored(detail string) {
	for i := range r.rep.Databases {
		for j := range r.rep.Databases[i].Tables {
			if t := &r.rep.Databases[i].Tables[j]; t.Status == TableNotRestored && t.Detail == "" {
				t.Detail = detail
			}
		}
	}
}

func (r *drillRun) scratchParent() string {
	if e := r.drill.Scratch.Embedded; e != nil && e.Dir != "" {
		return e.Dir
	}
	return os.TempDir()
}

// startScratch prepares the scratch server and the database names on it; the returned function
// removes everything the drill created there.
func (r *drillRun) startScratch(ctx context.Context, m *backupset.Manifest) (func(), error) {
	var sources []string
	for _, db := range r.dump.Databases {
		sources = append(sources, db.Name)
	}
	start := r.now()
	if r.drill.Scratch.DSN != "" {
		s, err := openDSNScratch(ctx, r.drill.Scratch.DSN, r.policy.Name, m.SetID, sources, r.log)
		if err != nil {
			return nil, err
		}
		r.dsn, r.names = r.drill.Scratch.DSN, s.names
		r.rep.Scratch.Server, r.rep.Scratch.Address = s.version, s.address
		for i := range r.rep.Databases {
			r.rep.Databases[i].RestoredAs = s.names[r.rep.Databases[i].Source]
		}
		return func() {
			if err := s.Close(); err != nil {
				r.warn("%v", err)
			}
		}, nil
	}
	bp := bufferPoolFor(r.drill.Scratch.Embedded.BufferPool, r.dump.Bytes)
	e, err := startEmbedded(ctx, filepath.Join(r.workspace, "server"), r.drill.Scratch.Embedded, bp, r.log)
	if err != nil {
		return nil, err
	}
	r.rep.ScratchSeconds = secs(r.now().Sub(start))
	r.dsn = e.DSN()
	r.names = map[string]string{}
	for _, s := range sources {
		r.names[s] = s
	}
	r.rep.Scratch.Server = e.version
	return func() {
		if err := e.Close(); err != nil {
			r.warn("%v", err)
		}
	}, nil
}

// restoreDatabases restores the set's databases into the scratch with package restore, which
// compares every table's row count and checksum with the manifest as it finishes loading it.
// It reports whether every database restored and verified.
func (r *drillRun) restoreDatabases(ctx context.Context, src backupset.Dest, m *backupset.Manifest) bool {
	host, _ := os.Hostname()
	base := restore.Options{
		Policy:     r.policy.Name,
		Targets:    []backupset.Dest{src}, // the target under test, and only it: no fallback
		Set:        backupset.Query{ID: m.SetID, Trust: r.trust},
		Identities: r.opts.Identities,
		To:         r.dsn,
		Threads:    r.threads,
		SpoolDir:   filepath.Join(r.workspace, "spool"),
		Logger:     r.base,
		Now:        r.now,
		RestoredBy: fmt.Sprintf("backupd drill on %s (pid %d)", host, os.Getpid()),
	}
	// An embedded scratch takes every database at once, under its own name; on a shared server
	// each database goes under its drill name, which restore's --as takes one at a time.
	var groups [][]string
	if r.drill.Scratch.DSN == "" {
		var all []string
		for _, db := range r.dump.Databases {
			all = append(all, db.Name)
		}
		groups = [][]string{all}
	} else {
		for _, db := range r.dump.Databases {
			groups = append(groups, []string{db.Name})
		}
	}
	ok := true
	for _, g := range groups {
		opts := base
		if r.drill.Scratch.DSN != "" {
			opts.Selection = restore.Selection{Database: g[0], As: r.names[g[0]]}
		}
		res, err := restore.Run(ctx, opts, nil)
		if ctx.Err() != nil {
			return false
		}
		if !r.record(ctx, g, res, err) {
			ok = false
		}
	}
	return ok
}

// record turns one restore's outcome into the table results of its databases.
func (r *drillRun) record(ctx context.Context, group []string, res *restore.Result, err error) bool {
	dbs := r.databases(group)
	switch {
	case err == nil:
		want := 0
		for _, db := range dbs {
			for i := range db.Tables {
				t := &db.Tables[i]
				if t.Status == TableSkipped {
					continue
				}
				if t.ChecksumExpected == "" {
					t.Detail = "the backup has no checksum for it"
					r.fail("table %s.%s cannot be proven equal: the backup has no checksum for it", db.Source, t.Name)
					continue
				}
				want++
				rows := t.RowsExpected
				t.Status, t.RowsFound, t.ChecksumFound, t.Detail = TableOK, &rows, t.ChecksumExpected, ""
			}
		}
		if res != nil && res.Verified < want {
			r.fail("the restore verified %d of the %d tables of %s", res.Verified, want, strings.Join(group, ", "))
			return false
		}
		return true
	case errors.Is(err, restore.ErrVerify):
		// Every table is loaded; compare each one again here, so the report can say what was
		// found for every table, not only that some differ.
		r.compareTables(ctx, dbs)
		return false
	default:
		msg := reportError(err)
		for name, what := range r.what {
			if strings.Contains(msg, name) && !strings.Contains(msg, what) {
				msg = strings.Replace(msg, name, name+" ("+what+")", 1)
				break
			}
		}
		for _, db := range dbs {
			db.Error = msg
			for i := range db.Tables {
				if t := &db.Tables[i]; t.Status == TableNotRestored {
					t.Detail = "the restore failed"
				}
			}
		}
		r.fail("the restore of %s failed: %s", strings.Join(group, ", "), msg)
		return false
	}
}

func (r *drillRun) databases(names []string) []*DatabaseResult {
	var out []*DatabaseResult
	for i := range r.rep.Databases {
		if slices.Contains(names, r.rep.Databases[i].Source) {
			out = append(out, &r.rep.Databases[i])
		}
	}
	return out
}

// compareTables recomputes every table's row count and checksum on the scratch with the dump's
// own function, threads at a time.
func (r *drillRun) compareTables(ctx context.Context, dbs []*DatabaseResult) {
	db, err := sql.Open("mysql", r.dsn)
	if err != nil {
		r.fail("cannot compare the restored tables: %v", err)
		return
	}
	defer db.Close()
	type job struct {
		db *DatabaseResult
		t  *TableResult
	}
	jobs := make(chan job)
	var wg sync.WaitGroup
	var mu sync.Mutex
	for range r.threads {
		wg.Go(func() {
			for j := range jobs {
				sum, err := dump.Checksum(ctx, db, j.db.RestoredAs, j.t.Name)
				mu.Lock()
				if err != nil {
					j.t.Detail = "could not be read back: " + reportError(err)
				} else {
					rows := sum.Rows
					j.t.RowsFound, j.t.ChecksumFound = &rows, sum.Checksum
					if sum.Rows == j.t.RowsExpected && sum.Checksum == j.t.ChecksumExpected {
						j.t.Status, j.t.Detail = TableOK, ""
					} else {
						j.t.Status, j.t.Detail = TableMismatch, mismatchDetail(*j.t)
					}
				}
				mu.Unlock()
			}
		})
	}
	for _, d := range dbs {
		for i := range d.Tables {
			switch t := &d.Tables[i]; {
			case t.Status == TableSkipped:
			case t.ChecksumExpected == "":
				t.Detail = "the backup has no checksum for it"
			default:
				jobs <- job{d, t}
			}
		}
	}
	close(jobs)
	wg.Wait()
	for _, d := range dbs {
		for _, t := range d.Tables {
			switch {
			case t.Status == TableMismatch:
				r.fail("table %s.%s differs from the backup: %s", d.Source, t.Name, t.Detail)
			case t.Status == TableNotRestored:
				r.fail("table %s.%s cannot be proven equal: %s", d.Source, t.Name, t.Detail)
			}
		}
	}
}

func mismatchDetail(t TableResult) string {
	var found int64
	if t.RowsFound != nil {
		found = *t.RowsFound
	}
	if found != t.RowsExpected {
		return fmt.Sprintf("%d rows found, %d expected", found, t.RowsExpected)
	}
	return fmt.Sprintf("checksum %s, expected %s (the %d rows are all there: a value changed)", t.ChecksumFound, t.ChecksumExpected, found)
}

// restoreStorage restores every storage source of the set into the workspace, where package
// files verifies each file's SHA-256 as it is written, and removes it again.
func (r *drillRun) restoreStorage(ctx context.Context, src backupset.Dest, m *backupset.Manifest) bool {
	ok := true
	for i := range r.rep.Storage {
		s := &r.rep.Storage[i]
		start := r.now()
		dir := filepath.Join(r.workspace, "storage", fmt.Sprintf("%d", i))
		res, err := storage.Restore(ctx, []backupset.Dest{src}, storage.ToDir(dir), storage.RestoreOptions{
			Policy: r.policy.Name, SetID: m.SetID, Source: s.Source, Identities: r.opts.Identities,
			SpoolDir: filepath.Join(r.workspace, "spool"), Logger: r.base, Trust: r.trust,
		})
		s.Seconds = secs(r.now().Sub(start))
		if res != nil {
			s.Files, s.Dirs, s.Symlinks, s.Bytes = res.Files, res.Dirs, res.Symlinks, res.Bytes
		}
		os.RemoveAll(dir)
		if ctx.Err() != nil {
			return false
		}
		switch {
		case err != nil:
			s.Error = reportError(err)
			r.fail("storage source %s did not restore from target %s: %s", s.Source, src.Name, s.Error)
			ok = false
		case s.Files != s.FilesExpected:
			s.Error = fmt.Sprintf("%d files restored, the snapshot has %d", s.Files, s.FilesExpected)
			r.fail("storage source %s: %s", s.Source, s.Error)
			ok = false
		}
	}
	return ok
}

// runChecks runs the configured checks against the restored databases.
func (r *drillRun) runChecks(ctx context.Context, restored bool) {
	if !restored || r.dump == nil {
		why := "not run: the databases did not restore completely"
		if r.dump == nil {
			why = "not run: the set holds no database"
		}
		for _, ch := range r.drill.Checks {
			r.rep.Checks = append(r.rep.Checks, CheckResult{Name: ch.Name, Database: ch.Database, SQL: ch.SQL, Expect: ch.Expect.String(), Status: CheckNotRun, Detail: why})
		}
		return
	}
	db, err := sql.Open("mysql", r.dsn)
	if err != nil {
		r.fail("cannot run the checks: %v", err)
		return
	}
	defer db.Close()
	rename := map[string]string{}
	for src, to := range r.names {
		if src != to {
			rename[src] = to
		}
	}
	for _, ch := range r.drill.Checks {
		schema := ch.Database
		if schema == "" && len(r.dump.Databases) == 1 {
			schema = r.dump.Databases[0].Name
		}
		var res CheckResult
		if to, ok := r.names[schema]; schema != "" && !ok {
			res = CheckResult{Name: ch.Name, Database: ch.Database, SQL: ch.SQL, Expect: ch.Expect.String(), Status: CheckError,
				Detail: fmt.Sprintf("database %s is not in the set", schema)}
		} else {
			res = runCheck(ctx, db, ch, mapSchemas(ch.SQL, rename), to)
			res.Database = schema
		}
		if ctx.Err() != nil {
			return
		}
		r.rep.Checks = append(r.rep.Checks, res)
		switch res.Status {
		case CheckFail:
			r.fail("check %q failed: %s", ch.Name, res.Detail)
		case CheckError:
			r.fail("check %q could not run: %s", ch.Name, res.Detail)
		}
	}
}

// finish settles the verdict and the trend, stores the report on every target and mails it.
func (r *drillRun) finish(ctx context.Context, hist []Summary) error {
	rep := r.rep
	rep.FinishedAt = r.now().UTC()
	rep.Result = Pass
	if len(rep.Reasons) > 0 {
		rep.Result = Fail
	}
	var trend []TrendPoint
	for _, s := range hist {
		if s.ID != rep.ID {
			trend = append(trend, s.trendPoint())
		}
	}
	trend = append(trend, summaryOf(rep).trendPoint())
	if len(trend) > TrendLength {
		trend = trend[len(trend)-TrendLength:]
	}
	rep.Trend = trend
	r.log.Info("drill finished", "result", rep.Result, "rto", round(rep.RTO()), "rpo", round(rep.RPO()), "problems", len(rep.Reasons))

	html, err := rep.HTML()
	if err != nil {
		return err
	}
	var errs []error
	stored, storeErrs := store(ctx, r.dests, rep, html, r.opts.Signer)
	for _, err := range storeErrs {
		r.log.Error("drill report not stored", "error", err)
	}
	if len(stored) == 0 {
		errs = append(errs, storeErrs...)
	}
	if len(r.drill.Notify) > 0 && !r.opts.NoMail {
		if err := r.mail(ctx, html); err != nil {
			r.log.Error("drill report not mailed", "error", err)
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return &DeliveryError{Errs: errs}
	}
	return nil
}

func (r *drillRun) mail(ctx context.Context, html string) error {
	s := r.cfg.SMTP
	if s == nil {
		return errors.New("drill.notify is set but there is no smtp: section")
	}
	var text strings.Builder
	r.rep.WriteText(&text)
	return notify.SendMail(ctx, notify.SMTPConfig{Host: s.Host, Port: s.Port, Username: s.Username, Password: s.Password, From: s.From, StartTLS: s.StartTLS},
		notify.Message{To: r.drill.Notify, Subject: r.rep.Subject(), Text: text.String(), HTML: html})
}
