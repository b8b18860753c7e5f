package dump

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
)

// readDefinitions reads every table, view, sequence, trigger, routine and event definition into
// memory. It runs while DDL is blocked (backup_stage mode), so it must be quick: the objects are
// written later by writeDefinitions.
func (d *dumper) readDefinitions(ctx context.Context) error {
	c := d.control.conn
	for _, db := range d.dbs {
		for _, t := range db.tables {
			var stmt, col string
			switch t.typ {
			case TypeTable:
				stmt, col = "SHOW CREATE TABLE "+t.qualified(), "create table"
			case TypeSequence:
				stmt, col = "SHOW CREATE SEQUENCE "+t.qualified(), "create table"
			default:
				continue
			}
			m, err := showOne(ctx, c, stmt)
			if err != nil {
				return fmt.Errorf("read definition of %s: %w", t.qualified(), err)
			}
			if t.create = m[col]; len(t.create) == 0 {
				return fmt.Errorf("read definition of %s: the server returned none", t.qualified())
			}
			if t.typ == TypeTable {
				t.create = unqualifySequenceCalls(t.create, db.Name)
			}
		}
		if err := d.readViews(ctx, db); err != nil {
			return err
		}
		if err := d.readTriggers(ctx, db); err != nil {
			return err
		}
		if err := d.readRoutines(ctx, db); err != nil {
			return err
		}
		if err := d.readEvents(ctx, db); err != nil {
			return err
		}
	}
	return nil
}

// readViews reads views with the current database set to theirs, so the server prints
// references to that database unqualified and the view can be created in a database of another
// name; the text is read in the view's own client charset, the one it is recreated with.
func (d *dumper) readViews(ctx context.Context, db *dbInfo) error {
	var views []*table
	byName := map[string]*table{}
	for _, t := range db.tables {
		if t.typ == TypeView {
			views = append(views, t)
			byName[t.name] = t
		}
	}
	if len(views) == 0 {
		return nil
	}
	c := d.control.conn
	rows, err := c.QueryContext(ctx, "SELECT TABLE_NAME, CHARACTER_SET_CLIENT, COLLATION_CONNECTION FROM information_schema.VIEWS WHERE TABLE_SCHEMA = "+quoteString(db.Name))
	if err != nil {
		return fmt.Errorf("list views of %s: %w", QuoteIdent(db.Name), err)
	}
	for rows.Next() {
		var name, cs, coll string
		if err := rows.Scan(&name, &cs, &coll); err != nil {
			rows.Close()
			return fmt.Errorf("list views of %s: %w", QuoteIdent(db.Name), err)
		}
		if t := byName[name]; t != nil {
			t.viewCharset, t.viewColl = cs, coll
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("list views of %s: %w", QuoteIdent(db.Name), err)
	}
	if _, err := c.ExecContext(ctx, "USE "+QuoteIdent(db.Name)); err != nil {
		return fmt.Errorf("read views of %s: %w", QuoteIdent(db.Name), err)
	}
	for _, t := range views {
		cs := t.viewCharset
		if cs == "" {
			cs = "utf8mb4"
		}
		if _, err := c.ExecContext(ctx, "SET character_set_results = "+quoteString(cs)); err != nil {
			return fmt.Errorf("read view %s: %w", t.qualified(), err)
		}
		m, err := showOne(ctx, c, "SHOW CREATE VIEW "+t.qualified())
		if _, err2 := c.ExecContext(ctx, "SET character_set_results = binary"); err == nil {
			err = err2
		}
		if err != nil {
			return fmt.Errorf("read view %s: %w", t.qualified(), err)
		}
		if t.create = m["create view"]; len(t.create) == 0 {
			return fmt.Errorf("read view %s: the server returned no definition (the account needs SHOW VIEW)", t.qualified())
		}
		t.create = unqualifyOwnDB(t.create, db.Name)
	}
	db.views = orderViews(db, views)
	return nil
}

// orderViews sorts views so each comes after the views it selects from. A reference is any
// backquoted identifier equal to another view's name; a false positive (a column named like a
// view) only adds an ordering constraint, and on a cycle the rest follow in name order.
func orderViews(db *dbInfo, views []*table) []*table {
	names := map[string]*table{}
	for _, v := range views {
		names[v.name] = v
	}
	deps := map[*table][]*table{}
	for _, v := range views {
		seen := map[*table]bool{}
		for _, id := range quotedIdentifiers(v.create) {
			if u := names[id]; u != nil && u != v && !seen[u] {
				seen[u] = true
				deps[v] = append(deps[v], u)
			}
		}
	}
	var out []*table
	done := map[*table]bool{}
	for len(out) < len(views) {
		progressed := false
		for _, v := range views {
			if done[v] {
				continue
			}
			ready := true
			for _, u := range deps[v] {
				if !done[u] {
					ready = false
					break
				}
			}
			if ready {
				done[v] = true
				out = append(out, v)
				progressed = true
			}
		}
		if !progressed { // a cycle: only possible through false positives
			for _, v := range views {
				if !done[v] {
					done[v] = true
					out = append(out, v)
				}
			}
		}
	}
	return out
}

// quotedIdentifiers returns the backquoted identifiers of an SQL text, skipping string literals.
func quotedIdentifiers(s []byte) []string {
	var out []string
	for _, q := range quotedSpans(s) {
		out = append(out, q.name)
	}
	return out
}

// quotedSpan is one backquoted identifier of an SQL text: its name, and where its quotes
// start and end (s[start:end] is the quoted form).
type quotedSpan struct {
	name       string
	start, end int
}

// quotedSpans returns the backquoted identifiers of an SQL text in order, skipping string
// literals.
func quotedSpans(s []byte) []quotedSpan {
	var out []quotedSpan
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\'', '"':
			for i++; i < len(s); i++ {
				if s[i] == '\\' {
					i++
				} else if s[i] == c {
					if i+1 < len(s) && s[i+1] == c {
						i++
						continue
					}
					break
				}
			}
		case '`':
			start := i
			var id []byte
			for i++; i < len(s); i++ {
				if s[i] == '`' {
					if i+1 < len(s) && s[i+1] == '`' {
						id = append(id, '`')
						i++
						continue
					}
					break
				}
				id = append(id, s[i])
			}
			out = append(out, quotedSpan{name: string(id), start: start, end: min(i+1, len(s))})
		}
	}
	return out
}

// unqualifyOwnDB removes the database part of three-part column names (`db`.`table`.`column`)
// that name the view's own database. The server prints a view's columns that way when it
// cannot resolve them as the definer (a definer that does not exist on the source), even with
// the view's database current; written as is, the view would load only into a database of the
// same name (error 1054 under another). Only three-part names are touched: their first part
// is always a database, where a two-part name may start with a table alias.
func unqualifyOwnDB(s []byte, db string) []byte {
	spans := quotedSpans(s)
	var out []byte
	last := 0
	for i := 0; i+2 < len(spans); i++ {
		a, b, c := spans[i], spans[i+1], spans[i+2]
		if a.name != db || b.start != a.end+1 || s[a.end] != '.' || c.start != b.end+1 || s[b.end] != '.' {
			continue
		}
		out = append(out, s[last:a.start]...)
		last = b.start
		i += 2
	}
	if out == nil {
		return s
	}
	return append(out, s[last:]...)
}

func (d *dumper) readTriggers(ctx context.Context, db *dbInfo) error {
	c := d.control.conn
	rows, err := c.QueryContext(ctx, "SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = "+quoteString(db.Name)+" ORDER BY EVENT_OBJECT_TABLE, ACTION_TIMING, EVENT_MANIPULATION, ACTION_ORDER")
	if err != nil {
		return fmt.Errorf("list triggers of %s: %w", QuoteIdent(db.Name), err)
	}
	var list []*namedDef
	for rows.Next() {
		nd := &namedDef{kind: KindTrigger}
		if err := rows.Scan(&nd.name, &nd.table); err != nil {
			rows.Close()
			return fmt.Errorf("list triggers of %s: %w", QuoteIdent(db.Name), err)
		}
		if !d.exclude[db.Name+"."+nd.table] {
			list = append(list, nd)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("list triggers of %s: %w", QuoteIdent(db.Name), err)
	}
	for _, nd := range list {
		m, err := showOne(ctx, c, "SHOW CREATE TRIGGER "+qualified(db.Name, nd.name))
		if err != nil {
			return fmt.Errorf("read trigger %s: %w", qualified(db.Name, nd.name), err)
		}
		if err := nd.fill(m, "sql original statement"); err != nil {
			return fmt.Errorf("read trigger %s: %w", qualified(db.Name, nd.name), err)
		}
	}
	db.triggers = list
	return nil
}

func (d *dumper) readRoutines(ctx context.Context, db *dbInfo) error {
	c := d.control.conn
	rows, err := c.QueryContext(ctx, "SELECT ROUTINE_NAME, ROUTINE_TYPE FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = "+quoteString(db.Name)+" ORDER BY ROUTINE_TYPE, ROUTINE_NAME")
	if err != nil {
		return fmt.Errorf("list routines of %s: %w", QuoteIdent(db.Name), err)
	}
	var list []*namedDef
	var skipped []string
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			rows.Close()
			return fmt.Errorf("list routines of %s: %w", QuoteIdent(db.Name), err)
		}
		switch typ {
		case "PROCEDURE":
			list = append(list, &namedDef{kind: KindProcedure, name: name})
		case "FUNCTION":
			list = append(list, &namedDef{kind: KindFunction, name: name})
		default:
			skipped = append(skipped, typ+" "+qualified(db.Name, name))
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("list routines of %s: %w", QuoteIdent(db.Name), err)
	}
	if len(skipped) > 0 {
		d.warn("not dumped (unsupported routine type): " + strings.Join(skipped, ", "))
	}
	for _, nd := range list {
		what := strings.ToUpper(nd.kind)
		m, err := showOne(ctx, c, "SHOW CREATE "+what+" "+qualified(db.Name, nd.name))
		if err != nil {
			return fmt.Errorf("read %s %s: %w", nd.kind, qualified(db.Name, nd.name), err)
		}
		if err := nd.fill(m, "create "+nd.kind); err != nil {
			return fmt.Errorf("read %s %s: %w (the account needs SELECT on mysql.proc, or SHOW CREATE ROUTINE)", nd.kind, qualified(db.Name, nd.name), err)
		}
	}
	db.routines = list
	return nil
}

func (d *dumper) readEvents(ctx context.Context, db *dbInfo) error {
	c := d.control.conn
	rows, err := c.QueryContext(ctx, "SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = "+quoteString(db.Name)+" ORDER BY EVENT_NAME")
	if err != nil {
		return fmt.Errorf("list events of %s: %w", QuoteIdent(db.Name), err)
	}
	var list []*namedDef
	for rows.Next() {
		nd := &namedDef{kind: KindEvent}
		if err := rows.Scan(&nd.name); err != nil {
			rows.Close()
			return fmt.Errorf("list events of %s: %w", QuoteIdent(db.Name), err)
		}
		list = append(list, nd)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("list events of %s: %w", QuoteIdent(db.Name), err)
	}
	for _, nd := range list {
		m, err := showOne(ctx, c, "SHOW CREATE EVENT "+qualified(db.Name, nd.name))
		if err != nil {
			return fmt.Errorf("read event %s: %w", qualified(db.Name, nd.name), err)
		}
		if err := nd.fill(m, "create event"); err != nil {
			return fmt.Errorf("read event %s: %w", qualified(db.Name, nd.name), err)
		}
		nd.timeZone = string(m["time_zone"])
	}
	db.events = list
	return nil
}

func (nd *namedDef) fill(m map[string][]byte, col string) error {
	nd.create = m[col]
	if len(nd.create) == 0 {
		return fmt.Errorf("the server returned no definition")
	}
	nd.sqlMode = string(m["sql_mode"])
	nd.charset = string(m["character_set_client"])
	nd.collation = string(m["collation_connection"])
	return nil
}

// --- object text ---

// objText builds a schema or post-data object. Single-line statements end in ";\n"; a statement
// that spans lines or contains ';' is wrapped in DELIMITER lines with a delimiter that does not
// occur in it (see FORMAT.md for how a loader splits such objects).
type objText struct{ b []byte }

func (o *objText) comment(s string) { o.b = append(o.b, "-- "+commentSafe(s)+"\n"...) }

func (o *objText) stmt(s []byte) {
	if bytes.IndexAny(s, ";\n\r") < 0 {
		o.b = append(o.b, s...)
		o.b = append(o.b, ";\n"...)
		return
	}
	delim := chooseDelimiter(s)
	o.b = append(o.b, "DELIMITER "+delim+"\n"...)
	o.b = append(o.b, s...)
	o.b = append(o.b, delim+"\n"...)
	o.b = append(o.b, "DELIMITER ;\n"...)
}

func (o *objText) stmtString(s string) { o.stmt([]byte(s)) }

// chooseDelimiter returns a statement delimiter that occurs in s followed by the delimiter only
// at the very end, so both the mariadb client and a line-by-line reader end the statement there.
func chooseDelimiter(s []byte) string {
	ok := func(d string) bool {
		return bytes.Index(append(append([]byte{}, s...), d...), []byte(d)) == len(s)
	}
	for _, d := range []string{";;", "$$", "//", ";;;;", "$$$$"} {
		if ok(d) {
			return d
		}
	}
	for i := 1; ; i++ {
		if d := "$$" + strconv.Itoa(i) + "$$"; ok(d) {
			return d
		}
	}
}

// sessionFor emits the settings an object was created under.
func (o *objText) sessionFor(charset, collation, sqlMode string) {
	if charset == "" {
		charset = "utf8mb4"
	}
	o.stmtString("SET character_set_client = " + quoteString(charset))
	o.stmtString("SET character_set_results = " + quoteString(charset))
	if collation != "" {
		o.stmtString("SET collation_connection = " + quoteString(collation))
	}
	o.stmtString("SET sql_mode = " + quoteString(sqlMode))
}

// schemaMode is the sql_mode schema objects are loaded with: zero-date defaults allowed, and an
// engine the target lacks is an error rather than a silent InnoDB.
const schemaMode = "NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION"

// writeDefinitions writes every schema and post-data object, and the users object. It runs on
// the control connection after the snapshot, while the workers dump data.
func (d *dumper) writeDefinitions(ctx context.Context) error {
	for _, db := range d.dbs {
		var o objText
		o.comment("backupd database " + QuoteIdent(db.Name) + "; load with: mariadb < this-file (a restore under another name creates the database itself)")
		o.stmtString("CREATE DATABASE IF NOT EXISTS " + QuoteIdent(db.Name) + " CHARACTER SET " + db.Charset + " COLLATE " + db.Collation)
		if err := d.putObject(ctx, &db.schemaObjects, Object{Key: databaseObject(db.Name), Kind: KindDatabase, Phase: PhaseSchema}, o.b); err != nil {
			return err
		}
		// Sequences before tables: a column default may call NEXTVAL on one.
		for _, t := range db.tables {
			if t.typ != TypeSequence {
				continue
			}
			var o objText
			o.comment("backupd sequence " + t.qualified() + "; load with: mariadb DBNAME < this-file")
			o.stmtString("SET NAMES utf8mb4")
			o.stmtString("SET sql_mode = " + quoteString(schemaMode))
			o.stmt(t.create)
			// Read after the snapshot: every value in the dumped rows was handed out before,
			// so it is below next_not_cached_value and is never handed out again.
			var next, round string
			if err := d.control.conn.QueryRowContext(ctx, "SELECT next_not_cached_value, cycle_count FROM "+t.qualified()).Scan(&next, &round); err != nil {
				return fmt.Errorf("read sequence %s: %w", t.qualified(), err)
			}
			o.stmtString("DO SETVAL(" + QuoteIdent(t.name) + ", " + next + ", 0, " + round + ")")
			if err := d.putObject(ctx, &db.schemaObjects, Object{Key: kindObject(db.Name, "sequences", t.name), Kind: KindSequence, Phase: PhaseSchema, Name: t.name}, o.b); err != nil {
				return err
			}
		}
		for _, t := range db.tables {
			if t.typ != TypeTable {
				continue
			}
			var o objText
			o.comment("backupd table " + t.qualified() + "; load with: mariadb DBNAME < this-file")
			o.stmtString("SET NAMES utf8mb4")
			o.stmtString("SET sql_mode = " + quoteString(schemaMode))
			o.stmtString("SET foreign_key_checks = 0")
			o.stmt(t.create)
			if err := d.putObject(ctx, &db.schemaObjects, Object{Key: kindObject(db.Name, "tables", t.name), Kind: KindTable, Phase: PhaseSchema, Name: t.name}, o.b); err != nil {
				return err
			}
		}
		// Post-data: routines first (views may call functions; routine bodies are not checked
		// at creation), then views in dependency order, triggers, events.
		for _, nd := range db.routines {
			dir := "procedures"
			if nd.kind == KindFunction {
				dir = "functions"
			}
			if err := d.putNamed(ctx, db, nd, dir); err != nil {
				return err
			}
		}
		for _, t := range db.views {
			var o objText
			o.comment("backupd view " + t.qualified() + "; load with: mariadb DBNAME < this-file")
			o.sessionFor(t.viewCharset, t.viewColl, "NO_ENGINE_SUBSTITUTION")
			o.stmt(t.create)
			if err := d.putObject(ctx, &db.postObjects, Object{Key: kindObject(db.Name, "views", t.name), Kind: KindView, Phase: PhasePost, Name: t.name}, o.b); err != nil {
				return err
			}
		}
		for _, nd := range db.triggers {
			if err := d.putNamed(ctx, db, nd, "triggers"); err != nil {
				return err
			}
		}
		for _, nd := range db.events {
			if err := d.putNamed(ctx, db, nd, "events"); err != nil {
				return err
			}
		}
	}
	if d.opts.IncludeUsers {
		return d.writeUsers(ctx)
	}
	return nil
}

func (d *dumper) putNamed(ctx context.Context, db *dbInfo, nd *namedDef, dir string) error {
	var o objText
	o.comment("backupd " + nd.kind + " " + qualified(db.Name, nd.name) + "; load with: mariadb DBNAME < this-file")
	o.sessionFor(nd.charset, nd.collation, nd.sqlMode)
	if nd.kind == KindEvent && nd.timeZone != "" {
		o.stmtString("SET time_zone = " + quoteString(nd.timeZone))
	}
	o.stmt(nd.create)
	return d.putObject(ctx, &db.postObjects, Object{Key: kindObject(db.Name, dir, nd.name), Kind: nd.kind, Phase: PhasePost, Name: nd.name, Table: nd.table}, o.b)
}

// putObject writes one whole object to the sink and records it.
func (d *dumper) putObject(ctx context.Context, list *[]Object, obj Object, text []byte) error {
	if len(text) > MaxDefinitionBytes {
		return fmt.Errorf("object %s is %d bytes, above the %d MiB the dump format allows for a definition (FORMAT.md): shorten the definition, or exclude it", obj.Key, len(text), MaxDefinitionBytes>>20)
	}
	w, err := d.sink.Create(ctx, obj.Key)
	if err != nil {
		return fmt.Errorf("create object %s: %w", obj.Key, err)
	}
	if _, err := w.Write(text); err != nil {
		if cw, ok := w.(interface{ CloseWithError(error) error }); ok {
			_ = cw.CloseWithError(err)
		} else {
			_ = w.Close()
		}
		return fmt.Errorf("write object %s: %w", obj.Key, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("finish object %s: %w", obj.Key, err)
	}
	obj.Bytes = int64(len(text))
	if list != nil {
		*list = append(*list, obj)
	}
	return nil
}

// unqualifySequenceCalls removes the table's own database from NEXTVAL/LASTVAL calls in a
// CREATE TABLE (MariaDB prints DEFAULT nextval(`db`.`seq`) fully qualified), so the table can
// be created in a database of another name and draws from that database's sequence.
func unqualifySequenceCalls(create []byte, db string) []byte {
	qual := []byte(QuoteIdent(db) + ".")
	var out []byte
	for i := 0; i < len(create); i++ {
		c := create[i]
		if c == '\'' || c == '"' {
			j := i + 1
			for ; j < len(create); j++ {
				if create[j] == '\\' {
					j++
				} else if create[j] == c {
					if j+1 < len(create) && create[j+1] == c {
						j++
						continue
					}
					break
				}
			}
			out = append(out, create[i:min(j+1, len(create))]...)
			i = j
			continue
		}
		out = append(out, c)
		for _, fn := range []string{"nextval(", "lastval("} {
			if c == '(' && len(out) >= len(fn) && bytes.EqualFold(out[len(out)-len(fn):], []byte(fn)) && bytes.HasPrefix(create[i+1:], qual) {
				i += len(qual)
			}
		}
	}
	return out
}
