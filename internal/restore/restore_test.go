package restore_test

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/backupset"
	"github.com/backupd/backupd/internal/restore"
)

// TestRestore backs up Sakila and the dump's edge-case database to MinIO and versitygw at once
// and restores them through restore.Run: whole, renamed, selected tables, onto existing objects,
// from a damaged first target and with every copy damaged.
func TestRestore(t *testing.T) {
	db, dsn := openRoot(t)
	ctx := context.Background()
	sak, edge := uniqueName("rs_sakila"), uniqueName("rs_edge`ü select")
	dropDatabaseLater(t, db, sak)
	dropDatabaseLater(t, db, edge)
	loadSakila(t, dsn, sak)
	loadEdge(t, dsn, edge)
	want := map[string]state{sak: captureState(t, db, sak), edge: captureState(t, db, edge)}
	edgeProcTotal = callEdgeProc(t, db, edge)

	// Small chunks, so the larger Sakila tables load as several objects in parallel.
	cfg, p, _ := setConfig(t, dsn, []string{sak, edge}, "64KiB")
	m := makeSet(t, cfg, p)
	dests := openTargets(t, cfg, p)
	opts := func() restore.Options {
		return restore.Options{Policy: p.Name, Targets: dests, Identities: identities(t, cfg), To: dsn,
			Set: backupset.Query{Trust: trustOf(t, cfg)}, Threads: 3, SpoolDir: t.TempDir(), Logger: testLogger(t)}
	}

	t.Run("whole set onto existing databases refuses and changes nothing", func(t *testing.T) {
		_, err := restore.Run(ctx, opts(), nil)
		if !errors.Is(err, restore.ErrExists) {
			t.Fatalf("got %v, want an error matching ErrExists", err)
		}
		if !strings.Contains(err.Error(), "--drop-existing") {
			t.Errorf("error %q does not say what to do", err)
		}
		for _, name := range []string{sak, edge} {
			compareStates(t, name+" after the refused restore", want[name], captureState(t, db, name))
		}
	})

	t.Run("whole set after dropping the sources", func(t *testing.T) {
		mustExec(t, db, "DROP DATABASE "+quoteIdent(sak))
		mustExec(t, db, "DROP DATABASE "+quoteIdent(edge))
		res, err := restore.Run(ctx, opts(), nil)
		if err != nil {
			t.Fatalf("restore: %v", err)
		}
		if got, want := res.SetID, m.SetID; got != want {
			t.Errorf("set: got %s, want the newest, %s", got, want)
		}
		if res.Verified == 0 || res.Verified != res.Tables {
			t.Errorf("verified %d of %d tables, want all", res.Verified, res.Tables)
		}
		// Most rows go in with LOAD DATA; the tables with a spatial or BIT column as INSERTs.
		if res.RowsLoadData < res.Rows/2 || res.RowsLoadData >= res.Rows {
			t.Errorf("%d of %d rows went in with LOAD DATA; want most, but not those of the tables it does not handle", res.RowsLoadData, res.Rows)
		}
		for _, name := range []string{sak, edge} {
			compareStates(t, name, want[name], captureState(t, db, name))
			checkNoMarker(t, db, name)
		}
		checkEdgeWorks(t, db, edge)
		checkSakilaWorks(t, db, sak)
	})

	t.Run("under another name with --as", func(t *testing.T) {
		for _, src := range []string{sak, edge} {
			as := uniqueName("rs_as`ü")
			dropDatabaseLater(t, db, as)
			o := opts()
			o.Database, o.As = src, as
			// The edge cases also go in as the INSERT statements exactly as written.
			o.InsertsOnly = src == edge
			res, err := restore.Run(ctx, o, nil)
			if err != nil {
				t.Fatalf("restore %s as %s: %v", src, as, err)
			}
			if got := res.Databases[src]; got != as {
				t.Errorf("databases: got %q for %s, want %q", got, src, as)
			}
			if o.InsertsOnly && res.RowsLoadData != 0 {
				t.Errorf("%d rows went in with LOAD DATA under InsertsOnly", res.RowsLoadData)
			}
			compareStates(t, src+" as "+as, want[src], captureState(t, db, as))
			checkNoMarker(t, db, as)
			if src == edge {
				checkEdgeWorks(t, db, as)
			} else {
				checkSakilaWorks(t, db, as)
			}
		}
	})

	t.Run("two tables into an existing database", func(t *testing.T) {
		// The live database has moved on: a customer changed, payments and rentals were lost.
		mustExec(t, db, "UPDATE "+qualified(sak, "customer")+" SET first_name = 'CHANGED' WHERE customer_id = 1")
		mustExec(t, db, "DELETE FROM "+qualified(sak, "payment")+" WHERE payment_id < 100")
		before := captureState(t, db, sak)

		o := opts()
		o.Tables = []string{sak + ".payment", sak + ".rental"}
		_, err := restore.Run(ctx, o, nil)
		if !errors.Is(err, restore.ErrExists) {
			t.Fatalf("restore onto existing tables without DropExisting: got %v, want ErrExists", err)
		}
		for _, name := range []string{"payment", "rental"} {
			if !strings.Contains(err.Error(), quoteIdent(name)) {
				t.Errorf("error %q does not name table %s", err, name)
			}
		}
		compareStates(t, "after the refused selective restore", before, captureState(t, db, sak))

		o.DropExisting = true
		res, err := restore.Run(ctx, o, nil)
		if err != nil {
			t.Fatalf("selective restore: %v", err)
		}
		if got, want := res.Tables, 2; got != want {
			t.Errorf("tables restored: got %d, want %d", got, want)
		}
		after := captureState(t, db, sak)
		for k, v := range after {
			switch {
			case strings.HasSuffix(k, " payment") || strings.HasSuffix(k, " rental"):
				if v != want[sak][k] {
					t.Errorf("restored %s: got %q, want %q (the backup)", k, v, want[sak][k])
				}
			case v != before[k]:
				t.Errorf("untouched %s: got %q, want %q (as before the restore)", k, v, before[k])
			}
		}
		var name string
		db.QueryRow("SELECT first_name FROM " + qualified(sak, "customer") + " WHERE customer_id = 1").Scan(&name)
		if name != "CHANGED" {
			t.Errorf("customer 1 outside the selection: got %q, want the live change %q kept", name, "CHANGED")
		}
		// The payment table's trigger came back with it.
		var trg int
		db.QueryRow("SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ? AND EVENT_OBJECT_TABLE = 'payment'", sak).Scan(&trg)
		if trg != 1 {
			t.Errorf("triggers on payment after the selective restore: got %d, want 1", trg)
		}
		checkNoMarker(t, db, sak)
	})

	t.Run("manual path from the runbook", func(t *testing.T) {
		for _, src := range []string{sak, edge} {
			dest := uniqueName("rs_byhand`ü")
			dropDatabaseLater(t, db, dest)
			runRunbookScript(t, cfg, m, dsn, src, dest)
			compareStates(t, src+" restored by hand as "+dest, want[src], captureState(t, db, dest))
		}
	})

	t.Run("a checksum mismatch fails naming the table and leaves the marker", func(t *testing.T) {
		as := uniqueName("rs_mismatch")
		dropDatabaseLater(t, db, as)
		o := opts()
		o.Database, o.As = sak, as
		plan, err := restore.Prepare(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		defer plan.Close()
		for i, tb := range plan.Databases[0].Tables {
			if tb.Name == "film" {
				plan.Databases[0].Tables[i].Checksum = "bk1:00000000000000000000000000000000"
			}
		}
		_, err = plan.Execute(ctx)
		if !errors.Is(err, restore.ErrVerify) || !strings.Contains(err.Error(), qualified(as, "film")) {
			t.Fatalf("got %v, want ErrVerify naming %s", err, qualified(as, "film"))
		}
		checkMarker(t, db, as, "verification failed")
	})

	t.Run("an interrupted restore leaves the marker", func(t *testing.T) {
		as := uniqueName("rs_interrupted")
		dropDatabaseLater(t, db, as)
		ictx, cancel := context.WithCancel(ctx)
		defer cancel()
		o := opts()
		o.Database, o.As = sak, as
		o.ProgressEvery = time.Millisecond
		o.Progress = func(p restore.Progress) {
			if p.Phase == restore.PhaseData && p.Bytes > 0 {
				cancel()
			}
		}
		_, err := restore.Run(ictx, o, nil)
		if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "marked incomplete") {
			t.Fatalf("got %v, want context.Canceled and a word about the marker", err)
		}
		checkMarker(t, db, as, "interrupted")
	})

	t.Run("one object damaged on the first target comes from the second", func(t *testing.T) {
		obj := dataObject(t, m, sak, "rental")
		corruptObject(t, dests[0], m, obj)
		as := uniqueName("rs_fallback")
		dropDatabaseLater(t, db, as)
		o := opts()
		o.Database, o.As = sak, as
		res, err := restore.Run(ctx, o, nil)
		if err != nil {
			t.Fatalf("restore: %v", err)
		}
		if !slices.Contains(res.Fallbacks, obj+" from "+dests[1].Name) {
			t.Errorf("fallbacks: got %q, want %s from %s", res.Fallbacks, obj, dests[1].Name)
		}
		compareStates(t, "restored with a fallback", want[sak], captureState(t, db, as))
	})

	t.Run("every copy damaged fails naming the object", func(t *testing.T) {
		obj := dataObject(t, m, sak, "rental")
		for _, d := range dests[1:] {
			corruptObject(t, d, m, obj)
		}
		as := uniqueName("rs_damaged")
		dropDatabaseLater(t, db, as)
		o := opts()
		o.Database, o.As = sak, as
		_, err := restore.Run(ctx, o, nil)
		if err == nil || !strings.Contains(err.Error(), obj) {
			t.Fatalf("got %v, want an error naming %s", err, obj)
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("error spans lines: %q", err)
		}
		checkMarker(t, db, as, "failed")
	})
}

// dataObject returns the name of the first data object of a table.
func dataObject(t *testing.T, m *backupset.Manifest, db, table string) string {
	t.Helper()
	for _, o := range m.Objects {
		if strings.HasPrefix(o.Name, db+"/data/"+table+"/") {
			return o.Name
		}
	}
	t.Fatalf("no data object of %s.%s in the set", db, table)
	return ""
}

func checkNoMarker(t *testing.T, db *sql.DB, name string) {
	t.Helper()
	if slices.Contains(tableNames(t, db, name), restore.MarkerTable) {
		t.Errorf("%s still has the marker %s after a successful restore", name, restore.MarkerTable)
	}
}

func checkMarker(t *testing.T, db *sql.DB, name, status string) {
	t.Helper()
	var got, reason string
	err := db.QueryRow("SELECT status, reason FROM "+qualified(name, restore.MarkerTable)).Scan(&got, &reason)
	if err != nil {
		t.Fatalf("marker in %s: %v", name, err)
	}
	if got != status || reason == "" {
		t.Errorf("marker in %s: got status %q reason %q, want status %q and a reason", name, got, reason, status)
	}
}

var edgeProcTotal int64

func callEdgeProc(t *testing.T, db *sql.DB, name string) int64 {
	t.Helper()
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var n int64
	if _, err := conn.ExecContext(context.Background(), "CALL "+qualified(name, "proc `x` ü")+"(3, @total)"); err != nil {
		t.Errorf("procedure of %s: %v", name, err)
	} else if err := conn.QueryRowContext(context.Background(), "SELECT @total").Scan(&n); err != nil {
		t.Errorf("procedure result: %v", err)
	}
	return n
}

// checkEdgeWorks calls what the edge-case database defines.
func checkEdgeWorks(t *testing.T, db *sql.DB, name string) {
	t.Helper()
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := context.Background()
	var n int64
	if got := callEdgeProc(t, db, name); got != edgeProcTotal {
		t.Errorf("procedure: got %d, want %d as on the source", got, edgeProcTotal)
	}
	var s string
	if err := conn.QueryRowContext(ctx, "SELECT "+qualified(name, "f_pipes")+"()").Scan(&s); err != nil || s != "ab" {
		t.Errorf("function created under PIPES_AS_CONCAT: got %q (%v), want \"ab\"", s, err)
	}
	if err := conn.QueryRowContext(ctx, "SELECT "+qualified(name, "select")+"(21)").Scan(&n); err != nil || n != 42 {
		t.Errorf("function `select`: got %d (%v), want 42", n, err)
	}
	if err := conn.QueryRowContext(ctx, "SELECT doubled FROM "+qualified(name, "v_func")).Scan(&n); err != nil || n != 2 {
		t.Errorf("view calling a function: got %d (%v), want 2", n, err)
	}
	if err := conn.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+qualified(name, "view `quoted` ü")).Scan(&n); err != nil || n != 2 {
		t.Errorf("view on views: got %d rows (%v), want 2", n, err)
	}
	if err := conn.QueryRowContext(ctx, "SELECT NEXTVAL("+qualified(name, "seq ü")+")").Scan(&n); err != nil || n <= 110 {
		t.Errorf("sequence: NEXTVAL got %d (%v), want above 110, the last value handed out before the dump", n, err)
	}
	if _, err := conn.ExecContext(ctx, "INSERT INTO "+qualified(name, "uses_seq")+" (v) VALUES (3)"); err != nil {
		t.Errorf("table whose default draws from the sequence: %v", err)
	}
	if _, err := conn.ExecContext(ctx, "INSERT INTO "+qualified(name, "z_parent")+" (id) VALUES (99)"); err != nil {
		t.Errorf("trigger table insert: %v", err)
	} else if err := conn.QueryRowContext(ctx, "SELECT name FROM "+qualified(name, "z_parent")+" WHERE id = 99").Scan(&s); err != nil || s != "default;" {
		t.Errorf("trigger: got %q (%v), want \"default;\"", s, err)
	}
	var status string
	if err := conn.QueryRowContext(ctx, "SELECT STATUS FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ? AND EVENT_NAME = 'ev ü'", name).Scan(&status); err != nil || status != "DISABLED" {
		t.Errorf("event: got status %q (%v), want DISABLED as it was backed up", status, err)
	}
}

// checkSakilaWorks uses Sakila's views, procedures, functions and triggers.
func checkSakilaWorks(t *testing.T, db *sql.DB, name string) {
	t.Helper()
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := context.Background()
	var n int64
	if err := conn.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+qualified(name, "film_list")).Scan(&n); err != nil || n != 997 {
		t.Errorf("view film_list: got %d rows (%v), want 997", n, err)
	}
	var ok bool
	if err := conn.QueryRowContext(ctx, "SELECT "+qualified(name, "inventory_in_stock")+"(1)").Scan(&ok); err != nil || !ok {
		t.Errorf("function inventory_in_stock(1): got %v (%v), want true", ok, err)
	}
	if _, err := conn.ExecContext(ctx, "CALL "+qualified(name, "film_in_stock")+"(1, 1, @c)"); err != nil {
		t.Errorf("procedure film_in_stock: %v", err)
	} else if err := conn.QueryRowContext(ctx, "SELECT @c").Scan(&n); err != nil || n != 4 {
		t.Errorf("procedure film_in_stock(1, 1): got %d copies (%v), want 4", n, err)
	}
	if _, err := conn.ExecContext(ctx, "INSERT INTO "+qualified(name, "film")+" (title, description, language_id) VALUES ('RESTORED', 'trigger test', 1)"); err != nil {
		t.Errorf("insert into film: %v", err)
	} else if err := conn.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+qualified(name, "film_text")+" WHERE title = 'RESTORED'").Scan(&n); err != nil || n != 1 {
		t.Errorf("trigger ins_film: got %d rows in film_text (%v), want 1", n, err)
	}
}
