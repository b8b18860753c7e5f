package dump

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// schemaState is everything the round trip must preserve, keyed by a description.
type schemaState map[string]string

// queryStrings runs q and returns each row as "col=value" pairs, leaving out volatile columns.
func queryStrings(t *testing.T, db *sql.DB, skip map[string]bool, q string, args ...any) []string {
	t.Helper()
	rows, err := db.Query(q, args...)
	if err != nil {
		t.Fatalf("query %q: %v", q, err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out []string
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatalf("scan %q: %v", q, err)
		}
		var parts []string
		for i, c := range cols {
			if skip[strings.ToUpper(c)] {
				continue
			}
			v := "NULL"
			if vals[i].Valid {
				v = fmt.Sprintf("%q", vals[i].String)
			}
			parts = append(parts, c+"="+v)
		}
		out = append(out, strings.Join(parts, " "))
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("query %q: %v", q, err)
	}
	return out
}

var volatile = map[string]bool{
	"CREATED": true, "LAST_ALTERED": true, "LAST_EXECUTED": true, "CREATE_TIME": true, "UPDATE_TIME": true,
	"CHECK_TIME": true, "TABLE_ROWS": true, "AVG_ROW_LENGTH": true, "DATA_LENGTH": true, "MAX_DATA_LENGTH": true,
	"INDEX_LENGTH": true, "DATA_FREE": true, "CHECKSUM": true, "VERSION": true, "MAX_INDEX_LENGTH": true,
	"TEMPORARY": true, "CARDINALITY": true, // statistics, recomputed by the server
}

// ariaPageChecksum is the one difference a load through SHOW CREATE TABLE causes: SHOW CREATE
// TABLE prints an Aria table's default PAGE_CHECKSUM=1 explicitly, so the restored table lists
// it among its CREATE_OPTIONS. The table definitions (SHOW CREATE TABLE) are identical.
var ariaPageChecksum = regexp.MustCompile(`CREATE_OPTIONS="page_checksum=1 `)

// captureState records what a database holds: per table CHECKSUM TABLE, row count, SHOW CREATE
// TABLE and columns; views, triggers, routines with parameters, events and sequences through
// information_schema; and Checksum.
func captureState(t *testing.T, db *sql.DB, name string) schemaState {
	t.Helper()
	s := schemaState{}
	ctx := context.Background()
	for _, r := range queryStrings(t, db, volatile, "SELECT * FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME", name) {
		r = ariaPageChecksum.ReplaceAllString(r, `CREATE_OPTIONS="`)
		s["information_schema.TABLES "+r[:min(len(r), 80)]] = r
	}
	rows, err := db.Query("SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME", name)
	if err != nil {
		t.Fatal(err)
	}
	type tt struct{ name, typ string }
	var tables []tt
	for rows.Next() {
		var x tt
		rows.Scan(&x.name, &x.typ)
		tables = append(tables, x)
	}
	rows.Close()
	if len(tables) == 0 {
		t.Fatalf("database %s has no tables", name)
	}
	for _, x := range tables {
		q := qualified(name, x.name)
		switch x.typ {
		case "BASE TABLE":
			var n string
			var sum sql.NullString
			if err := db.QueryRow("CHECKSUM TABLE "+q).Scan(&n, &sum); err != nil {
				t.Fatalf("CHECKSUM TABLE %s: %v", q, err)
			}
			s["CHECKSUM TABLE "+x.name] = sum.String
			var count int64
			if err := db.QueryRow("SELECT COUNT(*) FROM " + q).Scan(&count); err != nil {
				t.Fatal(err)
			}
			s["COUNT(*) "+x.name] = fmt.Sprint(count)
			var create string
			if err := db.QueryRow("SHOW CREATE TABLE "+q).Scan(&n, &create); err != nil {
				t.Fatal(err)
			}
			s["SHOW CREATE TABLE "+x.name] = create
			sum2, err := Checksum(ctx, db, name, x.name)
			if err != nil {
				t.Fatalf("Checksum %s: %v", q, err)
			}
			s["Checksum "+x.name] = fmt.Sprint(sum2)
		case "SEQUENCE":
			var n, create string
			if err := db.QueryRow("SHOW CREATE SEQUENCE "+q).Scan(&n, &create); err != nil {
				t.Fatal(err)
			}
			s["SHOW CREATE SEQUENCE "+x.name] = create
			s["sequence state "+x.name] = strings.Join(queryStrings(t, db, nil, "SELECT * FROM "+q), ";")
		}
	}
	for _, q := range []struct{ what, sql, key string }{
		{"column", "SELECT * FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME, ORDINAL_POSITION", ""},
		{"view", "SELECT * FROM information_schema.VIEWS WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME", ""},
		{"trigger", "SELECT * FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ? ORDER BY TRIGGER_NAME", ""},
		{"routine", "SELECT * FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ? ORDER BY ROUTINE_TYPE, ROUTINE_NAME", ""},
		{"parameter", "SELECT * FROM information_schema.PARAMETERS WHERE SPECIFIC_SCHEMA = ? ORDER BY SPECIFIC_NAME, ORDINAL_POSITION", ""},
		{"event", "SELECT * FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ? ORDER BY EVENT_NAME", ""},
		{"constraint", "SELECT * FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = ? ORDER BY CONSTRAINT_NAME", ""},
		{"check", "SELECT * FROM information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = ? ORDER BY TABLE_NAME, CONSTRAINT_NAME", ""},
		{"index", "SELECT * FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX", ""},
		{"partition", "SELECT * FROM information_schema.PARTITIONS WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME, PARTITION_ORDINAL_POSITION", ""},
		{"schema", "SELECT * FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", ""},
	} {
		for i, r := range queryStrings(t, db, volatile, q.sql, name) {
			s[fmt.Sprintf("information_schema %s #%d", q.what, i)] = r
		}
	}
	return s
}

func compareStates(t *testing.T, what string, before, after schemaState) {
	t.Helper()
	var keys []string
	for k := range before {
		keys = append(keys, k)
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	bad := 0
	for _, k := range keys {
		b, okb := before[k]
		a, oka := after[k]
		switch {
		case !okb:
			t.Errorf("%s: %s: got %q after the round trip, want nothing", what, k, a)
		case !oka:
			t.Errorf("%s: %s: got nothing after the round trip, want %q", what, k, b)
		case a != b:
			t.Errorf("%s: %s:\n got %s\nwant %s", what, k, a, b)
		default:
			continue
		}
		if bad++; bad > 30 {
			t.Fatalf("%s: too many differences", what)
		}
	}
}

var sakilaWord = regexp.MustCompile(`\bsakila\b`)

func loadSakila(t *testing.T, dsn, name string) {
	t.Helper()
	for _, f := range []string{"sakila-schema.sql", "sakila-data.sql"} {
		b, err := os.ReadFile("../../testdata/sakila/" + f)
		if err != nil {
			t.Fatalf("read the Sakila fixture (testdata/sakila at the repository's top): %v", err)
		}
		mariadbCLI(t, dsn, sakilaWord.ReplaceAll(b, []byte(name)))
	}
}

// edgeName is the edge-case database's name: a backtick, non-ASCII and a reserved word.
func edgeName() string { return uniqueName("bk_edge`ü select") }

func loadEdge(t *testing.T, dsn, name string) {
	t.Helper()
	loadFixture(t, dsn, "testdata/edgecases.sql", "`bk_edge`", QuoteIdent(name))
}

// TestRoundTrip dumps Sakila and the edge-case database, drops them, loads the objects back
// with the mariadb client in the documented order, and compares everything.
func TestRoundTrip(t *testing.T) {
	db, dsn := openRoot(t)
	ctx := context.Background()
	sak, edge := uniqueName("bk_sakila"), edgeName()
	dropDatabaseLater(t, db, sak)
	dropDatabaseLater(t, db, edge)
	loadSakila(t, dsn, sak)
	loadEdge(t, dsn, edge)

	before := map[string]schemaState{sak: captureState(t, db, sak), edge: captureState(t, db, edge)}
	var procTotal int64
	mustExec(t, db, "CALL "+qualified(edge, "proc `x` ü")+"(3, @total)")
	if err := db.QueryRow("SELECT @total").Scan(&procTotal); err != nil {
		t.Fatal(err)
	}

	// Small chunks so Sakila's larger tables are split into several key ranges and objects.
	res, dir := dumpToDir(t, Options{DSN: dsn, Databases: []string{sak, edge}, Threads: 3, ChunkBytes: 64 << 10})

	if got, want := res.Consistency.Mode, ModeBackupStage; got != want {
		t.Errorf("consistency mode: got %q, want %q", got, want)
	}
	checkResultChecksums(t, db, res, nil)
	rental := findTable(t, res, sak, "rental")
	if len(rental.Chunks) < 3 {
		t.Errorf("rental: got %d data objects, want several with ChunkBytes 64 KiB", len(rental.Chunks))
	}
	var ntWarned bool
	for _, w := range res.Warnings {
		ntWarned = ntWarned || strings.Contains(w, "non-transactional")
	}
	if !ntWarned {
		t.Errorf("warnings: got %q, want one about the MyISAM and Aria tables", res.Warnings)
	}

	mustExec(t, db, "DROP DATABASE "+QuoteIdent(sak))
	mustExec(t, db, "DROP DATABASE "+QuoteIdent(edge))
	restoreManually(t, dsn, dir, res, nil)

	for _, name := range []string{sak, edge} {
		compareStates(t, name+" (mariadb client)", before[name], captureState(t, db, name))
	}
	checkResultChecksums(t, db, res, nil)

	// backupd's own loader (FORMAT.md's splitting rules, statements sent unchanged) restores
	// the same state.
	mustExec(t, db, "DROP DATABASE "+QuoteIdent(sak))
	mustExec(t, db, "DROP DATABASE "+QuoteIdent(edge))
	restoreWithLoader(t, dsn, dir, res, nil)
	for _, name := range []string{sak, edge} {
		compareStates(t, name+" (ReadStatements loader)", before[name], captureState(t, db, name))
	}
	checkResultChecksums(t, db, res, nil)

	// The restored objects work, with the semantics they were created with.
	var got int64
	mustExec(t, db, "CALL "+qualified(edge, "proc `x` ü")+"(3, @total)")
	if err := db.QueryRow("SELECT @total").Scan(&got); err != nil || got != procTotal {
		t.Errorf("procedure after restore: got %d (%v), want %d", got, err, procTotal)
	}
	var s string
	if err := db.QueryRow("SELECT " + qualified(edge, "f_pipes") + "()").Scan(&s); err != nil || s != "ab" {
		t.Errorf("function created under PIPES_AS_CONCAT: got %q (%v), want \"ab\"", s, err)
	}
	if err := db.QueryRow("SELECT doubled FROM " + qualified(edge, "v_func")).Scan(&got); err != nil || got != 2 {
		t.Errorf("view calling a function: got %d (%v), want 2", got, err)
	}
	if err := db.QueryRow("SELECT NEXTVAL(" + qualified(edge, "seq ü") + ")").Scan(&got); err != nil || got <= 110 {
		t.Errorf("sequence after restore: NEXTVAL got %d (%v), want above 110, the last value handed out before the dump", got, err)
	}
	mustExec(t, db, "INSERT INTO "+qualified(edge, "z_parent")+" (id) VALUES (99)")
	if err := db.QueryRow("SELECT name FROM " + qualified(edge, "z_parent") + " WHERE id = 99").Scan(&s); err != nil || s != "default;" {
		t.Errorf("trigger after restore: got %q (%v), want \"default;\"", s, err)
	}
	var films int
	if err := db.QueryRow("SELECT COUNT(*) FROM " + qualified(sak, "film_list")).Scan(&films); err != nil || films == 0 {
		t.Errorf("Sakila view film_list after restore: got %d rows (%v), want some", films, err)
	}

	// Every object also loads into a database of another name, and Checksum there matches.
	other := uniqueName("bk_edge_renamed")
	dropDatabaseLater(t, db, other)
	restoreManually(t, dsn, dir, onlyDatabase(res, edge), map[string]string{edge: other})
	checkResultChecksums(t, db, onlyDatabase(res, edge), map[string]string{edge: other})
	if err := db.QueryRow("SELECT COUNT(*) FROM " + qualified(other, "view `quoted` ü")).Scan(&got); err != nil || got != 2 {
		t.Errorf("view on views in the renamed database: got %d rows (%v), want 2", got, err)
	}
	var create string
	if err := db.QueryRow("SHOW CREATE TABLE "+qualified(other, "uses_seq")).Scan(&s, &create); err != nil || !strings.Contains(create, "nextval("+QuoteIdent(other)+".") {
		t.Errorf("renamed database: uses_seq draws from %q (%v), want its own database's sequence", create, err)
	}
	_ = ctx
}

func onlyDatabase(res *Result, name string) *Result {
	r := *res
	r.Users = nil
	r.Databases = nil
	for _, d := range res.Databases {
		if d.Name == name {
			r.Databases = append(r.Databases, d)
		}
	}
	return &r
}

func findTable(t *testing.T, res *Result, db, name string) Table {
	t.Helper()
	for _, d := range res.Databases {
		if d.Name != db {
			continue
		}
		for _, tb := range d.Tables {
			if tb.Name == name {
				return tb
			}
		}
	}
	t.Fatalf("table %s not in the result", qualified(db, name))
	return Table{}
}

// checkResultChecksums compares Checksum on the live tables with what Run recorded.
func checkResultChecksums(t *testing.T, db *sql.DB, res *Result, rename map[string]string) {
	t.Helper()
	for _, d := range res.Databases {
		name := d.Name
		if n, ok := rename[name]; ok {
			name = n
		}
		for _, tb := range d.Tables {
			if tb.Type != TypeTable || tb.NoData != "" {
				continue
			}
			got, err := Checksum(context.Background(), db, name, tb.Name)
			if err != nil {
				t.Errorf("Checksum %s: %v", qualified(name, tb.Name), err)
				continue
			}
			if want := (TableSum{Rows: tb.Rows, Checksum: tb.Checksum}); got != want {
				t.Errorf("Checksum %s: got %+v, want %+v (recorded by Run)", qualified(name, tb.Name), got, want)
			}
		}
	}
}
