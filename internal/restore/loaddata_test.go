package restore

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/backupd/backupd/internal/dump"
	"github.com/backupd/backupd/internal/testenv"
)

func TestSplitInsert(t *testing.T) {
	target, cols, tuples, ok := splitInsert([]byte("INSERT INTO `a``b` (`x`,`y z`,`w``v`) VALUES (1,'a'),(2,NULL)"))
	if !ok || string(target) != "`a``b`" || string(cols) != "(`x`,`y z`,`w``v`)" || string(tuples) != "(1,'a'),(2,NULL)" {
		t.Fatalf("splitInsert = %q %q %q %v", target, cols, tuples, ok)
	}
	names, ok := splitIdentList(cols)
	if !ok || strings.Join(names, "|") != "x|y z|w`v" {
		t.Fatalf("splitIdentList = %q %v", names, ok)
	}
	for _, stmt := range []string{
		"INSERT INTO `t` VALUES (1)",              // no column list
		"INSERT INTO t (`a`) VALUES (1)",          // unquoted name
		"INSERT IGNORE INTO `t` (`a`) VALUES (1)", // not plain
		"insert into `t` (`a`) values (1)",        // not as dump writes it
		"INSERT INTO `t` (`a`) SELECT 1",
		"INSERT INTO `t` (`a`,b) VALUES (1,2)",
		"INSERT INTO `t` (`a` VALUES (1)",
	} {
		if _, _, _, ok := splitInsert([]byte(stmt)); ok {
			t.Errorf("splitInsert(%q) accepted it", stmt)
		}
	}
}

func TestAppendRows(t *testing.T) {
	for _, c := range []struct {
		tuples string
		ncols  int
		want   string
	}{
		{"(1,-2,3.5e-7,+4,.5)", 5, "1\t-2\t3.5e-7\t+4\t.5\n"},
		{"(1.,-0.10000000149011612e0,3.4028234663852886e+38,18446744073709551615)", 4, "1.\t-0.10000000149011612e0\t3.4028234663852886e+38\t18446744073709551615\n"},
		{"(NULL,'NULL','\\\\N','')", 4, "\\N\tNULL\t\\\\N\t\n"},
		{`('a\'b\"c','tab	here','x\\y','\0\n\r\Z\t\b')`, 4, "a'b\"c\ttab\\there\tx\\\\y\t\\0\\n\\r\\Z\\t\\b\n"},
		{"(0x00095C0A41ff,0xAB)", 2, "\\0\\t\\\\\\nA\xff\t\xab\n"},
		{"(1,'x'),(2,'y'),(3,NULL)", 2, "1\tx\n2\ty\n3\t\\N\n"},
		{"('ünï\x00cödé')", 1, "ünï\\0cödé\n"},
	} {
		got, rows, ok := appendRows([]byte("keep"), []byte(c.tuples), c.ncols)
		if !ok || string(got) != "keep"+c.want || rows != int64(strings.Count(c.want, "\n")) {
			t.Errorf("appendRows(%q) = %q, %d rows, %v; want %q", c.tuples, got, rows, ok, c.want)
		}
	}
	for _, tuples := range []string{
		"(1,2)",             // three columns expected
		"(1,2,3,4)",         // three columns expected
		"(1, 2,3)",          // a space: not as dump writes it
		"(_utf8mb4'x',2,3)", // an introducer
		"(b'101',2,3)",
		"(X'00',2,3)",
		"(0x0,2,3)",  // odd digits
		"(0X00,2,3)", // not a hex literal in SQL
		"(1-2,2,3)",  // an expression in SQL
		"(1e,2,3)",
		"(-,2,3)",
		"(.,2,3)",
		"(1.5.2,2,3)",
		"(--1,2,3)",
		"(1e5e5,2,3)",
		"(0x,2,3)",
		"('a\\%',2,3)", // SQL keeps \% as two bytes
		"('a' 'b',2,3)",
		"('a'',2,3)",
		"(1,2,3)x",
		"(1,2,3),",
		"(1,2,3)(4,5,6)",
		"(NUL,2,3)",
		"(DEFAULT,2,3)",
		"(1,2,'unterminated)",
		"",
	} {
		got, _, ok := appendRows([]byte("keep"), []byte(tuples), 3)
		if ok || string(got) != "keep" {
			t.Errorf("appendRows(%q) = %q, %v; want it refused with the buffer unchanged", tuples, got, ok)
		}
	}
}

func TestBulkPlan(t *testing.T) {
	cols := map[string]bulkColumn{"id": {DataType: "int"}, "e": {DataType: "enum", Charset: "utf8mb4"},
		"y": {DataType: "year"}, "s": {DataType: "varchar", Charset: "utf8mb4"}}
	p := newBulkPlan(cols)
	if p == nil {
		t.Fatal("no plan for plain columns")
	}
	header, n, err := p.loadDataStatement([]byte("`t`"), []byte("(`id`,`e`,`s`,`y`)"))
	want := "' INTO TABLE `t` CHARACTER SET binary FIELDS TERMINATED BY 0x09 ESCAPED BY 0x5c LINES TERMINATED BY 0x0a (`id`,@c1,`s`,@c3) SET `e` = CAST(@c1 AS UNSIGNED), `y` = CAST(@c3 AS UNSIGNED)"
	if err != nil || n != 4 || string(header) != want {
		t.Fatalf("loadDataStatement = %q, %d, %v; want %q", header, n, err, want)
	}
	if _, _, err := p.loadDataStatement([]byte("`t`"), []byte("(`id`,`gone`)")); err == nil {
		t.Error("a column the destination lacks was accepted")
	}
	for _, c := range []bulkColumn{{DataType: "bit"}, {DataType: "point"}, {DataType: "json"},
		{DataType: "inet6"}, {DataType: "varchar", Charset: "ucs2"}, {DataType: "text", Charset: "sjis"}} {
		if newBulkPlan(map[string]bulkColumn{"id": {DataType: "int"}, "x": c}) != nil {
			t.Errorf("a table with a %s %s column goes through LOAD DATA", c.DataType, c.Charset)
		}
	}
}

// TestLoadDataMatchesInserts loads every data object of two databases twice, once with the
// INSERT statements as written and once through LOAD DATA, and checks that both give the
// checksums the dump computed. One database is the shared edge-case fixture; the other has a
// table made to trip a careless conversion (an ENUM member named "2", YEAR 0, bytes that are
// LOAD DATA's separators and escapes, '\N' and 'NULL' strings, -0.0).
func TestLoadDataMatchesInserts(t *testing.T) {
	ctx := context.Background()
	dsn := testenv.MariaDBDSN(t)
	db := testenv.OpenDB(t, dsn)
	edge := testenv.UniqueName("ld_edge")
	testenv.LoadEdgeCasesAs(t, dsn, edge)
	tricky := testenv.UniqueName("ld_tricky")
	testenv.DropDatabaseLater(t, dsn, tricky)
	var all []byte
	for i := 0; i < 256; i++ {
		all = append(all, byte(i))
	}
	for _, q := range []string{
		"CREATE DATABASE " + dump.QuoteIdent(tricky) + " CHARACTER SET utf8mb4",
		"CREATE TABLE " + qualified(tricky, "t") + ` (
			id INT PRIMARY KEY, e ENUM('a','2','1','') NULL, s SET('x','1','y') NULL, y YEAR NULL,
			txt TEXT NULL, l1 VARCHAR(50) CHARACTER SET latin1 NULL, vb VARBINARY(300) NULL,
			f FLOAT NULL, d DOUBLE NULL, dec1 DECIMAL(40,12) NULL, u BIGINT UNSIGNED NULL, i BIGINT NULL,
			dt DATETIME(6) NULL, ts TIMESTAMP(3) NULL, tm TIME(6) NULL, j LONGTEXT NULL CHECK (JSON_VALID(j)),
			g INT GENERATED ALWAYS AS (id * 2) VIRTUAL, inv INT NULL INVISIBLE,
			KEY (txt(10)), UNIQUE KEY (i))`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	ins := "INSERT INTO " + qualified(tricky, "t") + " (id,e,s,y,txt,l1,vb,f,d,dec1,u,i,dt,ts,tm,j,inv) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
	rows := [][]any{
		{1, "2", "1", 0, "\\N", "NULL", all, -0.0, -0.0, "-0.000000000001", uint64(18446744073709551615), int64(-9223372036854775808), "0000-00-00 00:00:00", nil, "-838:59:59", `{"a":"\t\n\\"}`, 7},
		{2, "1", "x,y", 2155, "tab\there\nnew\\line 'q' \"d\" \x1a end", "café", []byte{}, 3.4028234e38, 2.2250738585072014e-308, "12345678901234567890.123456789012", 0, 0, "9999-12-31 23:59:59.999999", "2038-01-19 03:14:07.999", "00:00:00.000001", "[]", nil},
		{3, "", "", 1901, "", "", []byte("\\N"), 1.0e-45, 5e-324, "0", nil, nil, nil, nil, nil, nil, nil},
		{4, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil},
	}
	for _, r := range rows {
		if _, err := db.ExecContext(ctx, ins, r...); err != nil {
			t.Fatalf("insert %v: %v", r[0], err)
		}
	}
	// An ENUM index 0 (the invalid-value entry), which only a non-strict insert makes.
	if _, err := db.ExecContext(ctx, "SET SESSION sql_mode = ''"); err != nil {
		t.Fatal(err)
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, "SET SESSION sql_mode = ''"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, "INSERT INTO "+qualified(tricky, "t")+" (id, e) VALUES (5, 'not a member')"); err != nil {
		t.Fatal(err)
	}
	conn.Close()

	dir := t.TempDir()
	res, err := dump.Run(ctx, dump.Options{DSN: dsn, Databases: []string{edge, tricky}, Threads: 2, ChunkBytes: 4 << 10}, dump.DirSink{Dir: dir})
	if err != nil {
		t.Fatalf("dump: %v", err)
	}
	dest := &destination{db: db}
	var bulkTables, bulkRows int
	for _, rdb := range res.Databases {
		for _, tbl := range rdb.Tables {
			if tbl.Type != dump.TypeTable || tbl.NoData != "" || tbl.Checksum == "" {
				continue
			}
			var objects []dump.Object
			for _, o := range rdb.Objects {
				if o.Kind == dump.KindData && o.Name == tbl.Name {
					objects = append(objects, o)
				}
			}
			sums := map[string]dump.TableSum{}
			for _, mode := range []string{"inserts", "load data"} {
				name := testenv.UniqueName("ld_dest")
				testenv.DropDatabaseLater(t, dsn, name)
				for _, q := range []string{
					"CREATE DATABASE " + dump.QuoteIdent(name),
					"CREATE TABLE " + qualified(name, tbl.Name) + " LIKE " + qualified(rdb.Name, tbl.Name),
				} {
					if _, err := db.ExecContext(ctx, q); err != nil {
						t.Fatalf("%s: %v", q, err)
					}
				}
				var plan *bulkPlan
				if mode == "load data" {
					cols, err := dest.bulkColumns(ctx, name, tbl.Name)
					if err != nil {
						t.Fatal(err)
					}
					if plan = newBulkPlan(cols); plan != nil {
						bulkTables++
					}
				}
				var sent int64
				for _, o := range objects {
					f, err := os.Open(filepath.Join(dir, filepath.FromSlash(o.Key)))
					if err != nil {
						t.Fatal(err)
					}
					n, err := loadInto(t, db, name, f, plan)
					f.Close()
					if err != nil {
						t.Fatalf("load %s into %s: %v", o.Key, name, err)
					}
					sent += n
				}
				bulkRows += int(sent)
				if rdb.Name == tricky && mode == "load data" && sent != tbl.Rows {
					t.Errorf("%d of the %d rows of %s.%s went through LOAD DATA, want all", sent, tbl.Rows, tricky, tbl.Name)
				}
				got, err := dump.Checksum(ctx, db, name, tbl.Name)
				if err != nil {
					t.Fatal(err)
				}
				sums[mode] = got
				if want := (dump.TableSum{Rows: tbl.Rows, Checksum: tbl.Checksum}); got != want {
					t.Errorf("%s.%s loaded with %s: %d rows %s, the dump says %d rows %s", rdb.Name, tbl.Name, mode, got.Rows, got.Checksum, want.Rows, want.Checksum)
				}
			}
		}
	}
	if bulkTables < 3 || bulkRows < 5 {
		t.Errorf("only %d tables and %d rows went through LOAD DATA; the test proves nothing", bulkTables, bulkRows)
	}
	t.Logf("%d tables, %d rows through LOAD DATA", bulkTables, bulkRows)
}

// loadInto loads one data object into database with loadStatements in a loader session, as
// the restore does (plan nil: the INSERTs as written), and returns the rows it sent with LOAD
// DATA. The session is closed before it returns, so anything left uncommitted is rolled back.
func loadInto(t *testing.T, db *sql.DB, database string, object io.Reader, plan *bulkPlan) (int64, error) {
	t.Helper()
	ctx := context.Background()
	conn, err := (&destination{db: db}).session(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "USE "+dump.QuoteIdent(database)); err != nil {
		t.Fatal(err)
	}
	var before int64
	if plan != nil {
		before = plan.sent
	}
	var counted atomic.Int64
	err = loadStatements(ctx, conn, "object", object, nil, dump.MaxStatementBytes, DefaultTxBytes, &counted, nil, plan, slog.New(slog.DiscardHandler))
	if plan == nil {
		return 0, err
	}
	return plan.sent - before, err
}

// newTable creates database with one table t of these columns (and rows) and returns the LOAD
// DATA plan for it.
func newTable(t *testing.T, db *sql.DB, database, columns string, inserts ...string) *bulkPlan {
	t.Helper()
	ctx := context.Background()
	testenv.DropDatabaseLater(t, testenv.MariaDBDSN(t), database)
	stmts := append([]string{"CREATE DATABASE " + dump.QuoteIdent(database),
		"CREATE TABLE " + qualified(database, "t") + " (" + columns + ")"}, inserts...)
	for _, q := range stmts {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	cols, err := (&destination{db: db}).bulkColumns(ctx, database, "t")
	if err != nil {
		t.Fatal(err)
	}
	return newBulkPlan(cols)
}

// TestLoadDataRefusesDuplicates: LOAD DATA LOCAL skips a row whose key exists instead of failing
// as the INSERT would; the loader notices the missing row and fails.
func TestLoadDataRefusesDuplicates(t *testing.T) {
	db := testenv.OpenDB(t, testenv.MariaDBDSN(t))
	name := testenv.UniqueName("ld_dup")
	plan := newTable(t, db, name, "id INT PRIMARY KEY, v VARCHAR(10)", "INSERT INTO "+qualified(name, "t")+" VALUES (2, 'old')")
	object := "SET NAMES binary;\nSET sql_mode = 'NO_AUTO_VALUE_ON_ZERO';\nINSERT INTO `t` (`id`,`v`) VALUES (1,'a'),(2,'b'),(3,'c');\n"
	_, err := loadInto(t, db, name, strings.NewReader(object), plan)
	if err == nil || !strings.Contains(err.Error(), "stored 2 of 3 rows") {
		t.Fatalf("loading a duplicate key: err = %v, want one saying a row was refused", err)
	}
	var v string
	if err := db.QueryRow("SELECT v FROM " + qualified(name, "t") + " WHERE id = 2").Scan(&v); err != nil || v != "old" {
		t.Errorf("the existing row is %q (%v), want it untouched", v, err)
	}
}

// TestRowSenderPreconditions: rows are converted only once the object has set the session up
// as dump does (SET NAMES binary, backslash escapes on), and not after it changes that.
func TestRowSenderPreconditions(t *testing.T) {
	insert := []byte("INSERT INTO `t` (`id`) VALUES (1)")
	for _, c := range []struct {
		setup []string
		want  bool
	}{
		{[]string{"SET NAMES binary", "SET time_zone = '+00:00'", "SET sql_mode = 'NO_AUTO_VALUE_ON_ZERO'"}, true},
		{[]string{"SET NAMES binary", "SET sql_mode = ''"}, true},
		{[]string{"SET sql_mode = 'NO_AUTO_VALUE_ON_ZERO'"}, false},
		{[]string{"SET NAMES binary"}, false},
		{[]string{"SET NAMES utf8mb4", "SET sql_mode = ''"}, false},
		{[]string{"SET NAMES binary", "SET sql_mode = 'NO_BACKSLASH_ESCAPES'"}, false},
		{[]string{"SET NAMES binary", "SET sql_mode = 'ANSI'"}, false},
		{[]string{"SET NAMES binary", "SET sql_mode = CONCAT(@@sql_mode, ',X')"}, false},
		{[]string{"SET NAMES binary", "SET sql_mode = ''", "SET character_set_client = 'utf8mb4'"}, false},
		{[]string{"SET NAMES binary", "SET sql_mode = ''", "SET SESSION sql_mode = 'NO_BACKSLASH_ESCAPES'"}, false},
		{[]string{"SET NAMES binary", "SET sql_mode = ''", "SET @@time_zone = '+00:00'"}, true},
	} {
		s := newRowSender(context.Background(), nil, "k", newBulkPlan(map[string]bulkColumn{"id": {DataType: "int"}}), slog.New(slog.DiscardHandler))
		for _, q := range c.setup {
			s.observe([]byte(q))
		}
		if got := s.add(insert); got != c.want {
			t.Errorf("after %q: converted %v, want %v", c.setup, got, c.want)
		}
		s.release()
	}
}

// FuzzAppendRows: any bytes, written as dump writes a quoted literal and a hex literal, come out
// of a LOAD DATA field exactly as they went in.
func FuzzAppendRows(f *testing.F) {
	f.Add([]byte("plain"), []byte{0, 1, 2})
	f.Add([]byte("\\N"), []byte("\\N"))
	f.Add([]byte("tab\tnl\ncr\rq'dq\"bs\\z\x1anul\x00"), []byte("\t\n\\"))
	f.Add([]byte{}, []byte{0xff})
	f.Fuzz(func(t *testing.T, a, b []byte) {
		if len(b) == 0 {
			b = []byte{0} // dump writes an empty value quoted, never as 0x
		}
		tuples := "(" + sqlQuoted(a) + ",0x" + fmt.Sprintf("%X", b) + ",NULL,-1.5e-3)"
		out, rows, ok := appendRows(nil, []byte(tuples+","+tuples), 4)
		if !ok || rows != 2 {
			t.Fatalf("appendRows(%q): ok %v, %d rows", tuples, ok, rows)
		}
		lines := decodeLoadData(t, out)
		if len(lines) != 2 {
			t.Fatalf("%d rows decoded from %q", len(lines), out)
		}
		for _, fields := range lines {
			if len(fields) != 4 || fields[0] == nil || !bytes.Equal(*fields[0], a) || fields[1] == nil ||
				!bytes.Equal(*fields[1], b) || fields[2] != nil || fields[3] == nil || string(*fields[3]) != "-1.5e-3" {
				t.Fatalf("round trip of %q, %q gave %q", a, b, out)
			}
		}
	})
}

// sqlQuoted writes b as dump writes a string literal (FORMAT.md).
func sqlQuoted(b []byte) string {
	var s strings.Builder
	s.WriteByte('\'')
	for _, c := range b {
		switch c {
		case 0:
			s.WriteString(`\0`)
		case '\n':
			s.WriteString(`\n`)
		case '\r':
			s.WriteString(`\r`)
		case '\\':
			s.WriteString(`\\`)
		case '\'':
			s.WriteString(`\'`)
		case 0x1a:
			s.WriteString(`\Z`)
		default:
			s.WriteByte(c)
		}
	}
	s.WriteByte('\'')
	return s.String()
}

// decodeLoadData reads rows as LOAD DATA does with FIELDS TERMINATED BY '\t' ESCAPED BY '\\'
// LINES TERMINATED BY '\n' (a nil field is NULL).
func decodeLoadData(t *testing.T, data []byte) [][]*[]byte {
	var rows [][]*[]byte
	var row []*[]byte
	field := []byte{}
	escaped, null := false, false
	end := func() {
		if null && len(field) == 0 {
			row = append(row, nil)
		} else {
			f := field
			row = append(row, &f)
		}
		field, null = []byte{}, false
	}
	for i, c := range data {
		switch {
		case escaped:
			escaped = false
			switch c {
			case '0':
				field = append(field, 0)
			case 'n':
				field = append(field, '\n')
			case 't':
				field = append(field, '\t')
			case 'r':
				field = append(field, '\r')
			case 'b':
				field = append(field, '\b')
			case 'Z':
				field = append(field, 0x1a)
			case 'N':
				if len(field) == 0 && (i+1 == len(data) || data[i+1] == '\t' || data[i+1] == '\n') {
					null = true
				} else {
					field = append(field, 'N')
				}
			default:
				field = append(field, c)
			}
		case c == '\\':
			escaped = true
		case c == '\t':
			end()
		case c == '\n':
			end()
			rows = append(rows, row)
			row = nil
		default:
			field = append(field, c)
		}
	}
	if escaped || row != nil {
		t.Fatalf("rows do not end with a line end: %q", data)
	}
	return rows
}

// TestMixedObject: in one object, INSERTs LOAD DATA can take and ones it cannot (an introducer,
// an expression) interleave; every row goes in once, in both ways, and nothing is left
// uncommitted.
func TestMixedObject(t *testing.T) {
	db := testenv.OpenDB(t, testenv.MariaDBDSN(t))
	name := testenv.UniqueName("ld_mixed")
	plan := newTable(t, db, name, "id INT PRIMARY KEY, v VARCHAR(20)")
	object := "SET NAMES binary;\nSET sql_mode = 'NO_AUTO_VALUE_ON_ZERO';\n" +
		"INSERT INTO `t` (`id`,`v`) VALUES (1,'a'),(2,'b');\n" +
		"INSERT INTO `t` (`id`,`v`) VALUES (3,_utf8mb4'c');\n" +
		"INSERT INTO `t` (`id`,`v`) VALUES (2+2,'d');\n" +
		"INSERT INTO `t` (`id`,`v`) VALUES (5,'e'),(6,NULL);\n" +
		"INSERT INTO `t` (`id`,`v`) VALUES (7,CONCAT('f','g'));\n"
	sent, err := loadInto(t, db, name, strings.NewReader(object), plan)
	if err != nil {
		t.Fatal(err)
	}
	if sent != 4 {
		t.Errorf("%d rows went through LOAD DATA, want the 4 of the plain INSERTs", sent)
	}
	var got string
	if err := db.QueryRow("SELECT GROUP_CONCAT(id, '=', COALESCE(v, 'NULL') ORDER BY id) FROM " + qualified(name, "t")).Scan(&got); err != nil {
		t.Fatal(err)
	}
	if want := "1=a,2=b,3=c,4=d,5=e,6=NULL,7=fg"; got != want {
		t.Errorf("rows: got %s, want %s", got, want)
	}
}
