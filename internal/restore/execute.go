package restore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/backupd/backupd/internal/dump"
	"github.com/backupd/backupd/internal/humanize"
)

// Execute carries out the plan: drops (with DropExisting), then for every database the schema
// phase, the data objects in parallel (each table verified as soon as its last object is in),
// the post phase and the users. Every destination database carries the incomplete marker from
// its creation until everything is loaded and verified; on failure the marker stays and says
// why. Execute runs once.
func (p *Plan) Execute(ctx context.Context) (res *Result, err error) {
	if p.executed {
		return nil, errors.New("restore plan executed twice")
	}
	p.executed = true
	now := p.opts.Now
	start := now()
	res = &Result{SetID: p.Manifest.SetID, Databases: map[string]string{}, Phases: map[string]time.Duration{}}
	for _, dp := range p.Databases {
		res.Databases[dp.Source] = dp.Dest
	}
	tr := &tracker{total: p.Bytes, tables: p.Tables, start: start, now: now}
	stop := make(chan struct{})
	reported := tr.report(p.opts.Progress, p.opts.ProgressEvery, stop)
	var marked []string
	phaseStart := start
	phase := func(name string) {
		t := now()
		if prev := tr.snapshot().Phase; prev != "" {
			res.Phases[prev] += t.Sub(phaseStart)
		}
		phaseStart = t
		tr.setPhase(name)
		if name != PhaseDone {
			p.log.Info("restore phase", "phase", name)
		}
	}
	defer func() {
		phase(PhaseDone)
		close(stop)
		<-reported
		if p.opts.Progress != nil {
			p.opts.Progress(tr.snapshot())
		}
		res.Duration = now().Sub(start)
		res.Bytes = tr.bytes.Load()
		res.Downloaded = p.downloaded.Load()
		if err != nil {
			status := "failed"
			switch {
			case ctx.Err() != nil:
				status = "interrupted"
			case errors.Is(err, ErrVerify):
				status = "verification failed"
			}
			for _, db := range marked {
				p.dest.markFailed(ctx, db, status, err)
			}
			res.Incomplete = marked
			if len(marked) > 0 {
				err = fmt.Errorf("%w; %s left marked incomplete (table %s)", err, strings.Join(quoteAll(marked), ", "), MarkerTable)
			}
			err = humanize.OneLine(err)
		}
	}()

	// Every destination database gets its marker before anything in it is dropped or loaded, so
	// no failure from here on leaves a database that looks complete.
	phase(PhaseSchema)
	var oldMarkers, drops []Existing
	for _, e := range p.Drops {
		if e.Kind == "MARKER" {
			oldMarkers = append(oldMarkers, e)
		} else {
			drops = append(drops, e)
		}
	}
	for i := range p.Databases {
		dp := &p.Databases[i]
		if dp.loadsDatabaseObject() {
			if err := p.loadOne(ctx, dp, dp.Schema[0], "", tr, res); err != nil {
				return res, err
			}
		} else if err := p.dest.createDatabase(ctx, dp); err != nil {
			return res, err
		}
	}
	if err := p.dest.dropExisting(ctx, oldMarkers); err != nil {
		return res, err
	}
	for i := range p.Databases {
		dp := &p.Databases[i]
		if err := p.dest.createMarker(ctx, dp.Dest, markerRow{SetID: p.Manifest.SetID, Policy: p.Manifest.Policy,
			Source: dp.Source, By: p.opts.RestoredBy, Started: start}); err != nil {
			return res, err
		}
		marked = append(marked, dp.Dest)
	}
	if len(drops) > 0 {
		phase(PhaseDrop)
		p.log.Warn("dropping what the restore replaces", "objects", len(drops))
		if err := p.dest.dropExisting(ctx, drops); err != nil {
			return res, err
		}
		phase(PhaseSchema)
	}
	deferred := map[string]*deferredIndexes{}
	for i := range p.Databases {
		dp := &p.Databases[i]
		for _, o := range dp.Schema {
			if o.Kind == dump.KindDatabase {
				continue
			}
			var transform func([]byte) []byte
			if o.Kind == dump.KindTable && !p.opts.IndexesFirst {
				transform = func(stmt []byte) []byte {
					if !hasPrefixFold(stmt, "CREATE TABLE") {
						return stmt
					}
					out, d := splitSecondaryIndexes(stmt)
					if d != nil {
						deferred[tableKey(dp.Dest, o.Name)] = d
					}
					return out
				}
			}
			if err := p.loadOneWith(ctx, dp, o, dp.Dest, tr, res, transform); err != nil {
				return res, err
			}
		}
	}

	phase(PhaseData)
	if err := p.loadData(ctx, tr, res, deferred); err != nil {
		return res, err
	}
	if len(res.Mismatches) > 0 {
		return res, withKind(ErrVerify, fmt.Errorf("verification failed: %d table(s) differ from the backup: %s", len(res.Mismatches), strings.Join(res.Mismatches, "; ")))
	}

	phase(PhasePost)
	for i := range p.Databases {
		dp := &p.Databases[i]
		for _, o := range dp.Post {
			if err := p.loadOne(ctx, dp, o, dp.Dest, tr, res); err != nil {
				return res, err
			}
		}
	}
	if p.Users != nil {
		phase(PhaseUsers)
		if err := p.loadOne(ctx, nil, *p.Users, "", tr, res); err != nil {
			return res, err
		}
	}
	for _, db := range marked {
		if err := p.dest.dropMarker(ctx, db); err != nil {
			return res, err
		}
	}
	marked = nil
	p.log.Info("restore finished", "tables", res.Tables, "verified", res.Verified, "bytes", tr.bytes.Load(),
		"duration", now().Sub(start).Round(time.Millisecond))
	return res, nil
}

func quoteAll(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = dump.QuoteIdent(n)
	}
	return out
}

func tableKey(db, table string) string { return db + "\x00" + table }

// loadOne loads one schema, post or users object in a fresh session (FORMAT.md: every object
// sets the session it needs), with database selected unless it is empty.
func (p *Plan) loadOne(ctx context.Context, dp *DatabasePlan, o dump.Object, database string, tr *tracker, res *Result) error {
	return p.loadOneWith(ctx, dp, o, database, tr, res, nil)
}

func (p *Plan) loadOneWith(ctx context.Context, dp *DatabasePlan, o dump.Object, database string, tr *tracker, res *Result, transform func([]byte) []byte) error {
	rc, err := p.open(ctx, o, res)
	if err != nil {
		return err
	}
	// A definition is read and checked whole before its first statement runs.
	text, err := io.ReadAll(io.LimitReader(rc, dump.MaxDefinitionBytes+1))
	rc.Close()
	if err != nil {
		return fmt.Errorf("load %s: %w", o.Key, err)
	}
	if len(text) > dump.MaxDefinitionBytes {
		return fmt.Errorf("%w: object %s (%s) is larger than the %d MiB a dump writes for a definition: the set is probably forged or damaged: restore another set (--set or --before)",
			ErrRefused, o.Key, o.Kind, dump.MaxDefinitionBytes>>20)
	}
	source := ""
	if dp != nil {
		source = dp.Source
	}
	chk := newObjectCheck(o, source)
	if err := dump.ReadStatementsLimit(bytes.NewReader(text), dump.MaxDefinitionBytes, chk.check); err != nil {
		if errors.Is(err, ErrRefused) {
			return err
		}
		return fmt.Errorf("load %s: %w", o.Key, err)
	}
	conn, err := p.dest.session(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := p.checkDefiners(ctx, conn, o, chk.definers); err != nil {
		return err
	}
	if database != "" {
		if _, err := conn.ExecContext(ctx, "USE "+dump.QuoteIdent(database)); err != nil {
			return fmt.Errorf("load %s: select database %s: %w", o.Key, dump.QuoteIdent(database), err)
		}
	}
	return loadStatements(ctx, conn, o.Key, bytes.NewReader(text), nil, dump.MaxDefinitionBytes, -1, &tr.bytes, transform, nil, p.log)
}

// open fetches an object: the first holder with a good copy, checked before decryption.
func (p *Plan) open(ctx context.Context, o dump.Object, res *Result) (io.ReadCloser, error) {
	mo, ok := p.objects[o.Key]
	if !ok {
		return nil, fmt.Errorf("object %s is not in the manifest", o.Key)
	}
	rc, from, err := p.fetcher.Open(ctx, mo)
	if err != nil {
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		return nil, err
	}
	p.downloaded.Add(mo.Size)
	if len(p.Holders) > 0 && from != p.Holders[0] {
		p.mu.Lock()
		res.Fallbacks = append(res.Fallbacks, o.Key+" from "+from)
		p.mu.Unlock()
		p.log.Warn("object read from another target", "object", o.Key, "target", from)
	}
	return rc, nil
}

// dataJob is one data object to load.
type dataJob struct {
	dp  *DatabasePlan
	obj dump.Object
	key string // tableKey
}

type fetched struct {
	job dataJob
	rc  io.ReadCloser
}

// tableState tracks one table through the data phase.
type tableState struct {
	dp       *DatabasePlan
	table    dump.Table
	pending  atomic.Int64 // data objects not yet loaded
	deferred *deferredIndexes

	bulkOnce    sync.Once
	bulkColumns map[string]bulkColumn // nil: the table's rows go in as INSERT statements
}

// bulkPlan returns how one loader sends this table's rows (loaddata.go): nil for INSERTs.
func (p *Plan) bulkPlan(ctx context.Context, ts *tableState) *bulkPlan {
	ts.bulkOnce.Do(func() {
		cols, err := p.dest.bulkColumns(ctx, ts.dp.Dest, ts.table.Name)
		if err != nil {
			p.log.Warn("loading with INSERT statements", "table", qualified(ts.dp.Dest, ts.table.Name), "error", err)
			return
		}
		if newBulkPlan(cols) == nil {
			p.log.Debug("loading with INSERT statements: a column type LOAD DATA is not used for", "table", qualified(ts.dp.Dest, ts.table.Name))
			return
		}
		ts.bulkColumns = cols
	})
	return newBulkPlan(ts.bulkColumns)
}

// loadData loads every data object with p.Threads connections while up to p.Threads objects are
// downloaded ahead. When a table's last object is in, its deferred indexes are built and its
// checksum compared, by finisher goroutines that run alongside the loaders.
func (p *Plan) loadData(ctx context.Context, tr *tracker, res *Result, deferred map[string]*deferredIndexes) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	fail := func(err error) {
		cancel(err)
	}

	tables := map[string]*tableState{}
	var order []*tableState
	for i := range p.Databases {
		dp := &p.Databases[i]
		for _, t := range dp.Tables {
			if t.Type != dump.TypeTable {
				continue
			}
			ts := &tableState{dp: dp, table: t, deferred: deferred[tableKey(dp.Dest, t.Name)]}
			tables[tableKey(dp.Dest, t.Name)] = ts
			order = append(order, ts)
		}
	}
	bulk := !p.opts.InsertsOnly && p.opts.TxBytes > 0 && len(order) > 0
	if bulk {
		if err := p.dest.localInfile(ctx, order[0].dp.Dest); err != nil {
			p.log.Info("LOAD DATA LOCAL INFILE is not available; loading the INSERT statements as written", "error", err)
			bulk = false
		}
	}
	jobs := p.dataJobs(tables)
	for _, j := range jobs {
		tables[j.key].pending.Add(1)
	}

	finish := make(chan *tableState, len(order))
	for _, ts := range order {
		if ts.pending.Load() == 0 {
			finish <- ts
		}
	}
	var mu sync.Mutex
	var finishers sync.WaitGroup
	for range p.Threads {
		finishers.Go(func() {
			for ts := range finish {
				if ctx.Err() != nil {
					continue
				}
				mismatch, err := p.finishTable(ctx, ts, tr)
				if err != nil {
					fail(err)
					continue
				}
				mu.Lock()
				if ts.deferred != nil {
					res.IndexesLate++
				}
				res.Tables++
				res.Rows += ts.table.Rows
				if mismatch != "" {
					res.Mismatches = append(res.Mismatches, mismatch)
				} else if p.Verify && verifiable(ts.table) {
					res.Verified++
				}
				mu.Unlock()
			}
		})
	}

	queue := make(chan fetched, p.Threads)
	var next atomic.Int64
	var fetchers sync.WaitGroup
	for range p.Threads {
		fetchers.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(jobs) || ctx.Err() != nil {
					return
				}
				rc, err := p.open(ctx, jobs[i].obj, res)
				if err != nil {
					fail(err)
					return
				}
				select {
				case queue <- fetched{jobs[i], rc}:
				case <-ctx.Done():
					rc.Close()
					return
				}
			}
		})
	}
	go func() {
		fetchers.Wait()
		close(queue)
	}()

	var loaders sync.WaitGroup
	var bulkRows atomic.Int64
	for range p.Threads {
		loaders.Go(func() {
			var conn *loaderConn
			current := ""
			defer func() {
				if conn != nil {
					conn.Close()
				}
			}()
			for f := range queue {
				if ctx.Err() != nil {
					f.rc.Close()
					continue
				}
				err := func() error {
					defer f.rc.Close()
					if conn == nil {
						c, err := p.dest.session(ctx)
						if err != nil {
							return err
						}
						conn = c
					}
					if current != f.job.dp.Dest {
						if _, err := conn.ExecContext(ctx, "USE "+dump.QuoteIdent(f.job.dp.Dest)); err != nil {
							return fmt.Errorf("select database %s: %w", dump.QuoteIdent(f.job.dp.Dest), err)
						}
						current = f.job.dp.Dest
					}
					var plan *bulkPlan
					if bulk {
						plan = p.bulkPlan(ctx, tables[f.job.key])
					}
					chk := newObjectCheck(f.job.obj, f.job.dp.Source)
					err := loadStatements(ctx, conn, f.job.obj.Key, f.rc, chk.check, p.dataStatementMax(), p.opts.TxBytes, &tr.bytes, nil, plan, p.log)
					if plan != nil {
						bulkRows.Add(plan.sent)
					}
					return err
				}()
				if err != nil {
					fail(err)
					continue
				}
				ts := tables[f.job.key]
				if ts.pending.Add(-1) == 0 {
					p.log.Info("table loaded", "table", qualified(ts.dp.Dest, ts.table.Name), "rows", ts.table.Rows)
					tr.loaded.Add(1)
					finish <- ts
				}
			}
		})
	}
	loaders.Wait()
	res.RowsLoadData = bulkRows.Load()
	close(finish)
	finishers.Wait()
	if err := context.Cause(ctx); err != nil {
		return err
	}
	return nil
}

// dataJobs orders the data objects: tables largest first, taking one object of each in turn.
// The loaders then mostly fill different tables: two loaders filling one InnoDB table contend
// for its index latches (and may deadlock), which measured far slower on the shop benchmark
// than loading the tables side by side; and the big tables, which take longest, start first.
func (p *Plan) dataJobs(tables map[string]*tableState) []dataJob {
	type group struct {
		bytes int64
		jobs  []dataJob
	}
	groups := map[string]*group{}
	var keys []string
	for i := range p.Databases {
		dp := &p.Databases[i]
		for _, o := range dp.Data {
			k := tableKey(dp.Dest, o.Name)
			if tables[k] == nil {
				continue
			}
			g := groups[k]
			if g == nil {
				g = &group{}
				groups[k] = g
				keys = append(keys, k)
			}
			g.bytes += o.Bytes
			g.jobs = append(g.jobs, dataJob{dp: dp, obj: o, key: k})
		}
	}
	sort.SliceStable(keys, func(i, j int) bool { return groups[keys[i]].bytes > groups[keys[j]].bytes })
	var out []dataJob
	for round := 0; ; round++ {
		added := false
		for _, k := range keys {
			if g := groups[k]; round < len(g.jobs) {
				out = append(out, g.jobs[round])
				added = true
			}
		}
		if !added {
			return out
		}
	}
}

// dataStatementMax is the longest data statement read: the set's own longest (the dump
// records it; a data object's SET and comment lines fit in the floor), never above the format's.
func (p *Plan) dataStatementMax() int {
	return int(min(max(p.Dump.MaxStatementBytes, 64<<10), dump.MaxStatementBytes))
}

func verifiable(t dump.Table) bool {
	return t.Type == dump.TypeTable && t.NoData == "" && t.Checksum != ""
}

// finishTable builds a table's deferred indexes and compares its checksum with the manifest. It
// returns a description of the difference, or "" when the table matches (or is not verified).
//
// The two run side by side: the index build is single-threaded on the server, and the checksum
// only reads rows, which the build does not change. For the largest table, the last to finish,
// that takes the checksum off the end of the restore. The checksum starts once the ALTER TABLE
// has passed its exclusive metadata lock (a reader holding the table would otherwise make the
// ALTER wait for it, and they would run one after the other again).
func (p *Plan) finishTable(ctx context.Context, ts *tableState, tr *tracker) (string, error) {
	q := qualified(ts.dp.Dest, ts.table.Name)
	verify := p.Verify && verifiable(ts.table)
	var built chan error
	if ts.deferred != nil {
		conn, err := p.dest.session(ctx)
		if err != nil {
			return "", err
		}
		var id int64
		if verify {
			if err := conn.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&id); err != nil {
				conn.Close()
				return "", fmt.Errorf("build the secondary indexes of %s: %w", q, err)
			}
		}
		built = make(chan error, 1)
		t := p.opts.Now()
		go func() {
			err := ts.deferred.build(ctx, conn, q)
			conn.Close()
			if err == nil {
				p.log.Info("secondary indexes built", "table", q, "indexes", len(ts.deferred.defs), "duration", p.opts.Now().Sub(t).Round(time.Millisecond))
			}
			built <- err
		}()
		if !verify {
			return "", <-built
		}
		if err := p.dest.waitAltering(ctx, id, built); err != nil {
			return "", err
		}
	}
	if !verify {
		return "", nil
	}
	mismatch, err := p.verifyTable(ctx, ts, tr)
	if built != nil {
		if berr := <-built; berr != nil {
			return "", berr
		}
	}
	return mismatch, err
}

func (p *Plan) verifyTable(ctx context.Context, ts *tableState, tr *tracker) (string, error) {
	q := qualified(ts.dp.Dest, ts.table.Name)
	t := p.opts.Now()
	got, err := p.dest.checksum(ctx, ts.dp.Dest, ts.table.Name)
	if err != nil {
		return "", fmt.Errorf("verify %s: %w", q, err)
	}
	tr.verified.Add(1)
	want := dump.TableSum{Rows: ts.table.Rows, Checksum: ts.table.Checksum}
	if got != want {
		p.log.Error("table differs from the backup", "table", q, "rows", got.Rows, "want_rows", want.Rows)
		return fmt.Sprintf("%s has %d rows and checksum %s, the set says %d rows and %s", q, got.Rows, got.Checksum, want.Rows, want.Checksum), nil
	}
	p.log.Info("table verified", "table", q, "rows", got.Rows, "duration", p.opts.Now().Sub(t).Round(time.Millisecond))
	return "", nil
}
