package dump

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"strings"
	"sync"
)

// systemDatabases are never dumped as databases; users and grants come from IncludeUsers.
var systemDatabases = map[string]bool{
	"mysql": true, "sys": true, "information_schema": true, "performance_schema": true,
}

// transactionalEngines support consistent snapshots; every other engine's data is read outside
// the snapshot and needs its own handling (see consistency.go).
var transactionalEngines = map[string]bool{"innodb": true, "rocksdb": true, "tokudb": true}

// noDataEngines hold no local rows of their own (the rows belong to other tables or servers);
// like mysqldump, backupd keeps their definitions but not their data.
var noDataEngines = map[string]string{
	"mrg_myisam": "MERGE table: its rows belong to the underlying tables, which are dumped themselves",
	"mrg_isam":   "MERGE table: its rows belong to the underlying tables, which are dumped themselves",
	"federated":  "FEDERATED table: its rows live on another server",
	"federatedx": "FEDERATED table: its rows live on another server",
	"blackhole":  "BLACKHOLE table: it stores nothing",
}

// dbInfo is one database being dumped.
type dbInfo struct {
	Name, Charset, Collation string
	tables                   []*table    // every table, view and sequence, by name
	triggers                 []*namedDef // in creation order
	routines                 []*namedDef
	events                   []*namedDef
	views                    []*table // in dependency order

	// Written objects, in load order (filled by writeDefinitions).
	schemaObjects []Object
	postObjects   []Object
}

// namedDef is a trigger, routine or event as SHOW CREATE returned it.
type namedDef struct {
	kind      string // KindTrigger, KindProcedure, KindFunction, KindEvent
	name      string
	table     string // triggers: the table
	create    []byte // the CREATE statement, in the bytes the server stored
	sqlMode   string
	charset   string // character_set_client at creation
	collation string // collation_connection at creation
	timeZone  string // events
}

// table is one table, view or sequence, with the dump's per-table results.
type table struct {
	db, name        string
	typ             string // TypeTable, TypeView, TypeSequence
	engine          string
	rows            int64 // statistics
	avgRowLength    int64
	dataLength      int64
	cols            []column
	insertIdx       []int // indexes into cols of the columns that are inserted
	keyIdx          int   // chunk key column index in cols, or -1
	keyUnsigned     bool
	transactional   bool
	systemVersioned bool
	noData          string
	create          []byte // SHOW CREATE TABLE / SEQUENCE / VIEW
	viewCharset     string // views: character_set_client at creation
	viewColl        string // views: collation_connection at creation

	mu      sync.Mutex
	acc     sumAcc
	objects []Object
	seq     int // last data object sequence number
}

func (t *table) qualified() string { return qualified(t.db, t.name) }

// inList renders names as a parenthesized list of SQL string literals.
func inList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = quoteString(n)
	}
	return "(" + strings.Join(q, ",") + ")"
}

// listDatabases returns the databases to dump with their charset and collation.
func listDatabases(ctx context.Context, q querier, want []string) ([]*dbInfo, error) {
	rows, err := q.QueryContext(ctx, "SELECT SCHEMA_NAME, DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA")
	if err != nil {
		return nil, fmt.Errorf("list databases: %w", err)
	}
	defer rows.Close()
	all := map[string]*dbInfo{}
	for rows.Next() {
		d := &dbInfo{}
		if err := rows.Scan(&d.Name, &d.Charset, &d.Collation); err != nil {
			return nil, fmt.Errorf("list databases: %w", err)
		}
		all[d.Name] = d
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list databases: %w", err)
	}
	var out []*dbInfo
	if len(want) == 0 {
		for name, d := range all {
			if !systemDatabases[strings.ToLower(name)] {
				out = append(out, d)
			}
		}
	} else {
		seen := map[string]bool{}
		for _, name := range want {
			d, ok := all[name]
			if !ok {
				return nil, fmt.Errorf("database %s does not exist on the server (or the account cannot see it)", QuoteIdent(name))
			}
			if !seen[name] {
				seen[name] = true
				out = append(out, d)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// discover fills in the tables, columns and chunk keys of the databases, dropping excluded
// tables. It is run while DDL is blocked, so what it sees is what the snapshot contains.
func discover(ctx context.Context, q querier, dbs []*dbInfo, exclude map[string]bool) error {
	if len(dbs) == 0 {
		return nil
	}
	names := make([]string, len(dbs))
	byName := map[string]*dbInfo{}
	for i, d := range dbs {
		names[i] = d.Name
		byName[d.Name] = d
	}
	in := inList(names)
	type key struct{ db, t string }
	tables := map[key]*table{}

	rows, err := q.QueryContext(ctx, "SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_TYPE, COALESCE(ENGINE,''), COALESCE(TABLE_ROWS,0), COALESCE(AVG_ROW_LENGTH,0), COALESCE(DATA_LENGTH,0) FROM information_schema.TABLES WHERE TABLE_SCHEMA IN "+in)
	if err != nil {
		return fmt.Errorf("list tables: %w", err)
	}
	for rows.Next() {
		t := &table{keyIdx: -1}
		var typ string
		if err := rows.Scan(&t.db, &t.name, &typ, &t.engine, &t.rows, &t.avgRowLength, &t.dataLength); err != nil {
			rows.Close()
			return fmt.Errorf("list tables: %w", err)
		}
		if exclude[t.db+"."+t.name] {
			continue
		}
		switch typ {
		case "VIEW", "SYSTEM VIEW":
			t.typ = TypeView
		case "SEQUENCE":
			t.typ = TypeSequence
		default: // BASE TABLE, SYSTEM VERSIONED
			t.typ = TypeTable
			t.systemVersioned = typ == "SYSTEM VERSIONED"
			eng := strings.ToLower(t.engine)
			t.transactional = transactionalEngines[eng]
			t.noData = noDataEngines[eng]
		}
		tables[key{t.db, t.name}] = t
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("list tables: %w", err)
	}

	rows, err = q.QueryContext(ctx, "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, COALESCE(CHARACTER_SET_NAME,''), IF(COALESCE(GENERATION_EXPRESSION,'') IN ('ROW START','ROW END'), GENERATION_EXPRESSION, EXTRA), IS_NULLABLE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA IN "+in+" ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION")
	if err != nil {
		return fmt.Errorf("list columns: %w", err)
	}
	nullable := map[key]map[string]bool{}
	for rows.Next() {
		var db, tn, extra, isNull string
		var c column
		if err := rows.Scan(&db, &tn, &c.Name, &c.DataType, &c.ColumnType, &c.Charset, &extra, &isNull); err != nil {
			rows.Close()
			return fmt.Errorf("list columns: %w", err)
		}
		t := tables[key{db, tn}]
		if t == nil || t.typ != TypeTable {
			continue
		}
		period, err := c.describe(extra)
		if err != nil {
			rows.Close()
			return fmt.Errorf("table %s: %w", t.qualified(), err)
		}
		if period {
			continue
		}
		if !c.Generated {
			t.insertIdx = append(t.insertIdx, len(t.cols))
		}
		t.cols = append(t.cols, c)
		if nullable[key{db, tn}] == nil {
			nullable[key{db, tn}] = map[string]bool{}
		}
		nullable[key{db, tn}][c.Name] = isNull == "YES"
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("list columns: %w", err)
	}

	// Chunk keys: the primary key's first column if it is an integer (ranges on a key prefix
	// still partition the rows), else a single-column unique key on a NOT NULL integer.
	rows, err = q.QueryContext(ctx, "SELECT TABLE_SCHEMA, TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX, COLUMN_NAME FROM information_schema.STATISTICS WHERE NON_UNIQUE = 0 AND TABLE_SCHEMA IN "+in+" ORDER BY TABLE_SCHEMA, TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX")
	if err != nil {
		return fmt.Errorf("list keys: %w", err)
	}
	type idx struct {
		name string
		cols []string
	}
	indexes := map[key][]*idx{}
	for rows.Next() {
		var db, tn, in, col string
		var seq int
		if err := rows.Scan(&db, &tn, &in, &seq, &col); err != nil {
			rows.Close()
			return fmt.Errorf("list keys: %w", err)
		}
		k := key{db, tn}
		l := indexes[k]
		if len(l) == 0 || l[len(l)-1].name != in {
			l = append(l, &idx{name: in})
			indexes[k] = l
		}
		l[len(l)-1].cols = append(l[len(l)-1].cols, col)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("list keys: %w", err)
	}
	for k, t := range tables {
		if t.typ != TypeTable {
			continue
		}
		colIdx := func(name string) int {
			for i := range t.cols {
				if t.cols[i].Name == name && !t.cols[i].Generated && t.cols[i].kind == kindInt && isIntegerType(t.cols[i].DataType) {
					return i
				}
			}
			return -1
		}
		for _, ix := range indexes[k] {
			if ix.name == "PRIMARY" {
				t.keyIdx = colIdx(ix.cols[0])
			}
		}
		if t.keyIdx < 0 {
			for _, ix := range indexes[k] {
				if len(ix.cols) == 1 && !nullable[k][ix.cols[0]] {
					if i := colIdx(ix.cols[0]); i >= 0 {
						t.keyIdx = i
						break
					}
				}
			}
		}
		if t.keyIdx >= 0 {
			t.keyUnsigned = strings.Contains(strings.ToLower(t.cols[t.keyIdx].ColumnType), "unsigned")
		}
		if len(t.cols) == 0 {
			return fmt.Errorf("table %s: no columns visible to this account", t.qualified())
		}
	}

	for _, t := range tables {
		d := byName[t.db]
		d.tables = append(d.tables, t)
	}
	for _, d := range dbs {
		sort.Slice(d.tables, func(i, j int) bool { return d.tables[i].name < d.tables[j].name })
	}
	return nil
}

func isIntegerType(dt string) bool {
	switch dt {
	case "tinyint", "smallint", "mediumint", "int", "integer", "bigint":
		return true
	}
	return false
}

// loadTableColumns reads one table's columns for Checksum, with the same rules as discover.
func loadTableColumns(ctx context.Context, q querier, database, tableName string) ([]column, error) {
	rows, err := q.QueryContext(ctx, "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, COALESCE(CHARACTER_SET_NAME,''), IF(COALESCE(GENERATION_EXPRESSION,'') IN ('ROW START','ROW END'), GENERATION_EXPRESSION, EXTRA) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = "+quoteString(database)+" AND TABLE_NAME = "+quoteString(tableName)+" ORDER BY ORDINAL_POSITION")
	if err != nil {
		return nil, fmt.Errorf("list columns of %s: %w", qualified(database, tableName), err)
	}
	defer rows.Close()
	var cols []column
	for rows.Next() {
		var c column
		var extra string
		if err := rows.Scan(&c.Name, &c.DataType, &c.ColumnType, &c.Charset, &extra); err != nil {
			return nil, fmt.Errorf("list columns of %s: %w", qualified(database, tableName), err)
		}
		period, err := c.describe(extra)
		if err != nil {
			return nil, fmt.Errorf("table %s: %w", qualified(database, tableName), err)
		}
		if period {
			continue
		}
		cols = append(cols, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list columns of %s: %w", qualified(database, tableName), err)
	}
	if len(cols) == 0 {
		return nil, fmt.Errorf("table %s does not exist or has no columns visible to this account", qualified(database, tableName))
	}
	return cols, nil
}

// scanByName reads one row of a SHOW statement whose column set varies between versions.
func scanByName(rows *sql.Rows) (map[string][]byte, error) {
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	vals := make([]sql.RawBytes, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return nil, err
	}
	m := make(map[string][]byte, len(cols))
	for i, c := range cols {
		if vals[i] != nil {
			m[strings.ToLower(c)] = append([]byte{}, vals[i]...)
		}
	}
	return m, nil
}

// showOne runs a SHOW CREATE statement that returns one row.
// describe completes a column read from information_schema.COLUMNS with its EXTRA text. It
// reports a system-versioning period column, which the dump leaves out: the server sets it on
// insert, and history is not dumped (a warning says so). Declared ones (row_start … GENERATED
// ALWAYS AS ROW START) show it in GENERATION_EXPRESSION, implicit ones in EXTRA.
func (c *column) describe(extra string) (period bool, err error) {
	c.DataType = strings.ToLower(c.DataType)
	ex := strings.ToUpper(extra)
	if strings.Contains(ex, "ROW START") || strings.Contains(ex, "ROW END") {
		return true, nil
	}
	c.Generated = strings.Contains(ex, "VIRTUAL GENERATED") || strings.Contains(ex, "STORED GENERATED") || strings.Contains(ex, "PERSISTENT GENERATED")
	return false, c.classify()
}

func showOne(ctx context.Context, q querier, stmt string) (map[string][]byte, error) {
	rows, err := q.QueryContext(ctx, stmt)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%s returned nothing", stmt)
	}
	m, err := scanByName(rows)
	if err != nil {
		return nil, err
	}
	return m, rows.Err()
}
