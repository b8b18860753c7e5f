package dump

import (
	"context"
	"database/sql"
	"testing"
)

// TestChecksumProperties checks the checksum on real tables: independent of row order, not
// fooled by duplicate rows, NULL vs ” vs 'NULL' and column boundaries, and changed by any
// change of one value.
func TestChecksumProperties(t *testing.T) {
	db, _ := openRoot(t)
	ctx := context.Background()
	name := uniqueName("bk_sum")
	dropDatabaseLater(t, db, name)
	mustExec(t, db, "CREATE DATABASE "+QuoteIdent(name))
	q := func(table string) string { return qualified(name, table) }
	create := func(table string, rows ...string) {
		t.Helper()
		mustExec(t, db, "CREATE TABLE "+q(table)+" (a VARCHAR(10) NULL, b VARCHAR(10) NULL, f FLOAT NULL) ENGINE=InnoDB")
		for _, r := range rows {
			mustExec(t, db, "INSERT INTO "+q(table)+" VALUES "+r)
		}
	}
	sum := func(table string) TableSum {
		t.Helper()
		s, err := Checksum(ctx, db, name, table)
		if err != nil {
			t.Fatalf("Checksum %s: %v", table, err)
		}
		return s
	}
	create("ordered", "('x','1',1)", "('y','2',2)", "('z','3',3)")
	create("reversed", "('z','3',3)", "('y','2',2)", "('x','1',1)")
	create("dup2", "('x','1',1)", "('x','1',1)")
	create("dup2b", "('y','2',2)", "('y','2',2)")
	create("empty")
	create("one", "('x','1',1)")
	create("null", "(NULL,'1',1)")
	create("emptystr", "('','1',1)")
	create("nullstr", "('NULL','1',1)")
	create("split1", "('ab','c',1)")
	create("split2", "('a','bc',1)")
	create("floatbit", "('x','1',1.0000001)")

	if got, want := sum("reversed"), sum("ordered"); got != want {
		t.Errorf("same rows in another order: got %+v, want %+v", got, want)
	}
	if got := sum("ordered"); got.Rows != 3 {
		t.Errorf("rows: got %d, want 3", got.Rows)
	}
	// XOR would make both duplicate tables sum to zero, like the empty table.
	d2, d2b, empty, one := sum("dup2"), sum("dup2b"), sum("empty"), sum("one")
	if d2.Checksum == empty.Checksum || d2.Checksum == d2b.Checksum || d2.Checksum == one.Checksum {
		t.Errorf("duplicate rows: dup2 %s, dup2b %s, empty %s, one %s: want all different", d2.Checksum, d2b.Checksum, empty.Checksum, one.Checksum)
	}
	if empty.Rows != 0 {
		t.Errorf("empty table: got %d rows, want 0", empty.Rows)
	}
	n, e, s := sum("null"), sum("emptystr"), sum("nullstr")
	if n.Checksum == e.Checksum || e.Checksum == s.Checksum || n.Checksum == s.Checksum {
		t.Errorf("NULL %s, '' %s, 'NULL' %s: want three different checksums", n.Checksum, e.Checksum, s.Checksum)
	}
	if a, b := sum("split1"), sum("split2"); a.Checksum == b.Checksum {
		t.Errorf("('ab','c') and ('a','bc'): both %s, want different", a.Checksum)
	}
	if a, b := sum("one"), sum("floatbit"); a.Checksum == b.Checksum {
		t.Errorf("FLOAT 1 and 1.0000001: both %s, want different", a.Checksum)
	}
	before := sum("ordered")
	mustExec(t, db, "UPDATE "+q("ordered")+" SET b = '22' WHERE a = 'y'")
	if after := sum("ordered"); after == before {
		t.Errorf("after changing one value: got %+v, want a different checksum", after)
	}

	// On a *sql.Conn, Checksum restores the session it changed.
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	mustExec(t, conn, "SET time_zone = '+05:00', sql_mode = 'ANSI_QUOTES'")
	if got, err := Checksum(ctx, conn, name, "reversed"); err != nil || got.Checksum != sum("reversed").Checksum {
		t.Errorf("Checksum on a *sql.Conn: got %+v (%v), want %+v", got, err, sum("reversed"))
	}
	var tz, mode string
	if err := conn.QueryRowContext(ctx, "SELECT @@time_zone, @@sql_mode").Scan(&tz, &mode); err != nil || tz != "+05:00" || mode != "ANSI_QUOTES" {
		t.Errorf("session after Checksum: time_zone %q sql_mode %q (%v), want +05:00 and ANSI_QUOTES", tz, mode, err)
	}
	if _, err := Checksum(ctx, db, name, "no_such_table"); err == nil {
		t.Errorf("Checksum of a missing table: got no error")
	}
	var _ *sql.Conn = conn
}
