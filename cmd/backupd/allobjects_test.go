package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/backupd/backupd/internal/drill"
	"github.com/backupd/backupd/internal/dump"
	"github.com/backupd/backupd/internal/testenv"
)

// objectQueries describe a database's objects as information_schema (and the sequences
// themselves) show them, one text per kind, with the database's own name replaced so that a
// copy under another name (a drill on a DSN scratch, restore --as) compares equal. Each runs
// with the database selected. An Aria table's page_checksum=1 is its default, which SHOW CREATE
// TABLE spells out and the copy then lists as an option: not a difference.
var objectQueries = []struct{ name, sql string }{
	{"tables", `SELECT GROUP_CONCAT(CONCAT_WS('|', TABLE_NAME, TABLE_TYPE, ENGINE, ROW_FORMAT, TABLE_COLLATION, TRIM(REPLACE(CREATE_OPTIONS, 'page_checksum=1', '')), TABLE_COMMENT, IFNULL(AUTO_INCREMENT, '')) ORDER BY TABLE_NAME SEPARATOR '\n') FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()`},
	{"columns", `SELECT GROUP_CONCAT(CONCAT_WS('|', TABLE_NAME, COLUMN_NAME, ORDINAL_POSITION, COLUMN_TYPE, IS_NULLABLE, IFNULL(REPLACE(COLUMN_DEFAULT, DATABASE(), '@db'), 'NULL'), EXTRA, IFNULL(GENERATION_EXPRESSION, ''), IFNULL(COLLATION_NAME, ''), COLUMN_COMMENT) ORDER BY TABLE_NAME, ORDINAL_POSITION SEPARATOR '\n') FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE()`},
	{"indexes", `SELECT GROUP_CONCAT(CONCAT_WS('|', TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX, COLUMN_NAME, NON_UNIQUE, INDEX_TYPE) ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX SEPARATOR '\n') FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE()`},
	{"partitions", `SELECT GROUP_CONCAT(CONCAT_WS('|', TABLE_NAME, PARTITION_NAME, IFNULL(SUBPARTITION_NAME, ''), PARTITION_METHOD, IFNULL(SUBPARTITION_METHOD, ''), IFNULL(PARTITION_EXPRESSION, ''), IFNULL(PARTITION_DESCRIPTION, '')) ORDER BY TABLE_NAME, PARTITION_ORDINAL_POSITION, SUBPARTITION_ORDINAL_POSITION SEPARATOR '\n') FROM information_schema.PARTITIONS WHERE TABLE_SCHEMA = DATABASE() AND PARTITION_NAME IS NOT NULL`},
	{"checks", `SELECT GROUP_CONCAT(CONCAT_WS('|', TABLE_NAME, CONSTRAINT_NAME, CHECK_CLAUSE) ORDER BY TABLE_NAME, CONSTRAINT_NAME SEPARATOR '\n') FROM information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = DATABASE()`},
	{"foreign keys", `SELECT GROUP_CONCAT(CONCAT_WS('|', TABLE_NAME, CONSTRAINT_NAME, REFERENCED_TABLE_NAME, UPDATE_RULE, DELETE_RULE) ORDER BY TABLE_NAME, CONSTRAINT_NAME SEPARATOR '\n') FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = DATABASE()`},
	{"views", `SELECT GROUP_CONCAT(CONCAT_WS('|', TABLE_NAME, DEFINER, SECURITY_TYPE, CHECK_OPTION, ALGORITHM, REPLACE(VIEW_DEFINITION, DATABASE(), '@db')) ORDER BY TABLE_NAME SEPARATOR '\n') FROM information_schema.VIEWS WHERE TABLE_SCHEMA = DATABASE()`},
	{"routines", `SELECT GROUP_CONCAT(CONCAT_WS('|', ROUTINE_NAME, ROUTINE_TYPE, DEFINER, SECURITY_TYPE, SQL_DATA_ACCESS, IS_DETERMINISTIC, SQL_MODE, ROUTINE_COMMENT, IFNULL(DTD_IDENTIFIER, ''), ROUTINE_DEFINITION) ORDER BY ROUTINE_NAME SEPARATOR '\n') FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = DATABASE()`},
	{"triggers", `SELECT GROUP_CONCAT(CONCAT_WS('|', TRIGGER_NAME, EVENT_MANIPULATION, EVENT_OBJECT_TABLE, ACTION_TIMING, ACTION_ORDER, DEFINER, SQL_MODE, ACTION_STATEMENT) ORDER BY TRIGGER_NAME SEPARATOR '\n') FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()`},
	{"events", `SELECT GROUP_CONCAT(CONCAT_WS('|', EVENT_NAME, DEFINER, TIME_ZONE, EVENT_TYPE, IFNULL(EXECUTE_AT, ''), IFNULL(INTERVAL_VALUE, ''), IFNULL(INTERVAL_FIELD, ''), IFNULL(STARTS, ''), IFNULL(ENDS, ''), STATUS, ON_COMPLETION, EVENT_COMMENT, SQL_MODE, EVENT_DEFINITION) ORDER BY EVENT_NAME SEPARATOR '\n') FROM information_schema.EVENTS WHERE EVENT_SCHEMA = DATABASE()`},
	{"sequence order_seq", `SELECT CONCAT_WS('|', next_not_cached_value, minimum_value, maximum_value, start_value, increment, cache_size, cycle_option, cycle_count) FROM order_seq`},
	{"sequence countdown", `SELECT CONCAT_WS('|', next_not_cached_value, minimum_value, maximum_value, start_value, increment, cache_size, cycle_option, cycle_count) FROM countdown`},
}

// objectsOf runs objectQueries in database name.
func objectsOf(t *testing.T, dsn, name string) map[string]string {
	t.Helper()
	db := testenv.OpenDB(t, dsn)
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(context.Background(), "USE "+quoteIdent(name)); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, q := range objectQueries {
		var v sql.NullString
		if err := conn.QueryRowContext(context.Background(), q.sql).Scan(&v); err != nil {
			t.Fatalf("%s of %s: %v", q.name, name, err)
		}
		if !v.Valid || v.String == "" {
			t.Fatalf("%s of %s: none, want the fixture's (the comparison would prove nothing)", q.name, name)
		}
		out[q.name] = v.String
	}
	return out
}

// baseTables lists the base tables of database name (system-versioned ones included) with
// their row counts and checksums.
func baseTables(t *testing.T, dsn, name string) map[string]dump.TableSum {
	t.Helper()
	db := testenv.OpenDB(t, dsn)
	rows, err := db.Query("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED')", name)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var tn string
		rows.Scan(&tn)
		tables = append(tables, tn)
	}
	rows.Close()
	out := map[string]dump.TableSum{}
	for _, tn := range tables {
		sum, err := dump.Checksum(context.Background(), db, name, tn)
		if err != nil {
			t.Fatalf("checksum %s.%s: %v", name, tn, err)
		}
		out[tn] = sum
	}
	return out
}

// TestEveryObjectKind backs up a database holding every kind of object the dump
// carries (testdata/allobjects.sql: events enabled and disabled, sequences, system-versioned and
// partitioned tables, views on views, routines and triggers with a definer that exists on no
// server, generated and invisible columns) and drills it into an embedded scratch and into a DSN
// scratch, then restores it: each gives PASS with every table's rows and checksum equal, and
// every object is there afterwards as information_schema shows it (the drills check that with
// SQL checks, the restore by reading the copy).
func TestEveryObjectKind(t *testing.T) {
	dsn := testenv.MariaDBDSN(t)
	src := testenv.UniqueName("bk_allobj")
	testenv.DropDatabaseLater(t, dsn, src)
	fixture, err := os.ReadFile(filepath.Join("testdata", "allobjects.sql"))
	if err != nil {
		t.Fatal(err)
	}
	testenv.MariaDBCLI(t, dsn, bytes.ReplaceAll(fixture, []byte("`bk_allobj`"), []byte(quoteIdent(src))))
	want := objectsOf(t, dsn, src)
	wantTables := baseTables(t, dsn, src)
	if len(wantTables) != 11 {
		t.Fatalf("the fixture has %d base tables, want 11", len(wantTables))
	}

	tmp := drillTempDir(t)
	keyFile, pub := testKey(t)
	policy := testenv.UniqueName("ao")
	var checks strings.Builder
	for _, q := range objectQueries {
		var sum string
		db := testenv.OpenDB(t, dsn)
		conn, _ := db.Conn(context.Background())
		conn.ExecContext(context.Background(), "USE "+quoteIdent(src))
		if err := conn.QueryRowContext(context.Background(), "SELECT SHA2(("+q.sql+"), 256)").Scan(&sum); err != nil {
			t.Fatal(err)
		}
		conn.Close()
		fmt.Fprintf(&checks, "        - name: %s\n          database: %s\n          sql: %s\n          expect: {equals: %s}\n",
			yamlString(q.name), src, yamlString("SELECT SHA2(("+q.sql+"), 256)"), sum)
	}
	cfg := writeConfig(t, fmt.Sprintf(`
state_dir: %[1]s/state
targets:
  local: {type: dir, path: %[1]s/target}
encryption:
  recipients: [%[2]s]
  identity_file: %[3]s
policies:
  %[4]s:
    schedule: "@daily"
    mysql:
      dsn: %[5]s
      databases: [%[6]s]
    targets: [local]
    drill:
      checks:
%[7]s`, t.TempDir(), pub, keyFile, policy, yamlString(dsn), src, checks.String()))
	if code, out, errOut := runCLI(t, "backup", "--config", cfg, "--policy", policy); code != 0 {
		t.Fatalf("backup: exit %d\n%s\n%s", code, out, errOut)
	}

	drillPass := func(t *testing.T, kind string) {
		code, out, errOut := runCLI(t, "drill", "--config", cfg, "--policy", policy, "--json")
		var rep drill.Report
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("drill: exit %d, printed %q (%v)\n%s", code, out, err, errOut)
		}
		if code != 0 || rep.Result != drill.Pass || rep.Scratch.Kind != kind {
			t.Errorf("drill: exit %d, %s in a %q scratch, reasons %q; want exit 0, PASS in a %q scratch", code, rep.Result, rep.Scratch.Kind, rep.Reasons, kind)
		}
		tables := 0
		for _, db := range rep.Databases {
			for _, tr := range db.Tables {
				tables++
				w, ok := wantTables[tr.Name]
				if !ok || tr.Status != drill.TableOK || tr.RowsFound == nil || *tr.RowsFound != w.Rows || tr.ChecksumFound != w.Checksum {
					t.Errorf("table %s: got %+v, want ok with %d rows and checksum %s", tr.Name, tr, w.Rows, w.Checksum)
				}
			}
		}
		if tables != len(wantTables) {
			t.Errorf("the report lists %d tables, want %d", tables, len(wantTables))
		}
		if len(rep.Checks) != len(objectQueries) {
			t.Errorf("the report has %d checks, want %d", len(rep.Checks), len(objectQueries))
		}
		for _, c := range rep.Checks {
			if c.Status != drill.CheckPass {
				t.Errorf("the %s on the scratch differ from the source's: %s %s", c.Name, c.Status, c.Detail)
			}
		}
		drillNothingLeft(t, tmp, dsn, policy)
	}
	t.Run("drill embedded", func(t *testing.T) { drillPass(t, "embedded") })
	t.Run("drill dsn", func(t *testing.T) {
		dsnCfg := strings.Replace(mustRead(t, cfg), "    drill:\n", "    drill:\n      scratch: {dsn: "+yamlString(dsn)+"}\n", 1)
		if err := os.WriteFile(cfg, []byte(dsnCfg), 0o600); err != nil {
			t.Fatal(err)
		}
		drillPass(t, "dsn")
	})
	t.Run("restore", func(t *testing.T) {
		dest := testenv.UniqueName("bk_allobj_copy")
		testenv.DropDatabaseLater(t, dsn, dest)
		code, out, errOut := runCLI(t, "restore", "--config", cfg, "--policy", policy, "--to", dsn, "--as", dest, "--yes")
		if code != 0 {
			t.Fatalf("restore: exit %d\n%s\n%s", code, out, errOut)
		}
		got := objectsOf(t, dsn, dest)
		for _, q := range objectQueries {
			if got[q.name] != want[q.name] {
				t.Errorf("%s after the restore:\n got %s\nwant %s", q.name, got[q.name], want[q.name])
			}
		}
		gotTables := baseTables(t, dsn, dest)
		for name, w := range wantTables {
			if g, ok := gotTables[name]; !ok || g != w {
				t.Errorf("table %s after the restore: got %+v (present %v), want %+v", name, g, ok, w)
			}
		}
		if len(gotTables) != len(wantTables) {
			t.Errorf("the restore made %d base tables, want %d", len(gotTables), len(wantTables))
		}
	})
}
