package restore

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/backupd/backupd/internal/dump"
	"github.com/backupd/backupd/internal/testenv"
)

// TestCharsetsAgree: for every character set the server reports, the dump writes a column's
// values as quoted text exactly when the restore sends that column through LOAD DATA. Both
// read the same table (dump.QuotedTextCharset); this proves that each side looks the column's
// charset up the same way, for charsets nobody thought of when the table was written.
func TestCharsetsAgree(t *testing.T) {
	ctx := context.Background()
	dsn := testenv.MariaDBDSN(t)
	db := testenv.OpenDB(t, dsn)
	rows, err := db.QueryContext(ctx, "SHOW CHARACTER SET")
	if err != nil {
		t.Fatal(err)
	}
	var charsets []string
	for rows.Next() {
		var name, desc, coll string
		var maxlen int
		if err := rows.Scan(&name, &desc, &coll, &maxlen); err != nil {
			t.Fatal(err)
		}
		charsets = append(charsets, name)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(charsets) < 20 {
		t.Fatalf("SHOW CHARACTER SET lists %d charsets, want the server's full list", len(charsets))
	}
	var cols, names, values []string
	for _, cs := range charsets {
		if cs == "binary" {
			continue // a binary string, not a character column
		}
		cols = append(cols, dump.QuoteIdent("c_"+cs)+" VARCHAR(2) CHARACTER SET "+cs)
		names = append(names, dump.QuoteIdent("c_"+cs))
		values = append(values, "'a'")
	}
	name := testenv.UniqueName("charsets")
	newTable(t, db, name, "id INT PRIMARY KEY, "+strings.Join(cols, ", "),
		"INSERT INTO "+qualified(name, "t")+" (id, "+strings.Join(names, ", ")+") VALUES (1, "+strings.Join(values, ", ")+")")
	restoreCols, err := (&destination{db: db}).bulkColumns(ctx, name, "t")
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	res, err := dump.Run(ctx, dump.Options{DSN: dsn, Databases: []string{name}, Threads: 1}, dump.DirSink{Dir: dir})
	if err != nil {
		t.Fatalf("dump: %v", err)
	}
	var data []byte
	for _, o := range res.Databases[0].Objects {
		if o.Kind == dump.KindData {
			b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(o.Key)))
			if err != nil {
				t.Fatal(err)
			}
			data = append(data, b...)
		}
	}
	_, row, ok := strings.Cut(string(data), "VALUES (")
	row, _, ok2 := strings.Cut(row, ");")
	if !ok || !ok2 {
		t.Fatalf("no INSERT row in the dump's data object:\n%s", data)
	}
	literals := strings.Split(row, ",")[1:] // after id
	if len(literals) != len(names) {
		t.Fatalf("the dumped row has %d string values, want %d: %s", len(literals), len(names), row)
	}
	quoted := 0
	i := 0
	for _, cs := range charsets {
		if cs == "binary" {
			continue
		}
		lit := literals[i]
		i++
		dumpQuoted := strings.HasPrefix(lit, "'")
		col, found := restoreCols["c_"+cs]
		if !found {
			t.Fatalf("the restore does not see column c_%s", cs)
		}
		loadData := bulkTypeOK(col)
		if dumpQuoted != loadData {
			t.Errorf("charset %s: dump writes %s (quoted text: %v), restore sends it through LOAD DATA: %v; want the same answer",
				cs, lit, dumpQuoted, loadData)
		}
		if dumpQuoted {
			quoted++
		}
	}
	if quoted == 0 || quoted == len(names) {
		t.Errorf("%d of %d charsets are written as quoted text; want some of each, or the test proves nothing", quoted, len(names))
	}
	t.Logf("%d charsets, %d written as quoted text", len(names), quoted)
}
