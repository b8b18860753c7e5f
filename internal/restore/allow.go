package restore

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/backupd/backupd/internal/dump"
)

// What a restore executes is limited to the statement shapes a dump writes (FORMAT.md), per
// object kind; anything else is refused before it runs, whatever the manifest says. A set is
// written by backupd, but its bytes come from a target anyone with write access to the bucket
// and the public age recipient can fill, so this is defence in depth behind the manifest's
// integrity:
//
//   - every object: the session SETs the dump writes (NAMES, time_zone, sql_mode,
//     foreign_key_checks, unique_checks, character_set_client/results, collation_connection),
//     each with a plain literal; never SET GLOBAL, SET PASSWORD or an expression;
//   - data: INSERT INTO the object's own table, unqualified, with literal rows only (no
//     function, no subquery: LOAD_FILE or a SELECT of another table never runs);
//   - database: CREATE DATABASE IF NOT EXISTS of the set's own database;
//   - sequence, table, view, procedure, function, trigger, event: one CREATE of that kind
//     naming the object itself, unqualified (so nothing lands in another database), plus DO
//     SETVAL of the sequence itself;
//   - users (only with --users, which restores accounts by design): CREATE USER, CREATE ROLE,
//     GRANT and SET DEFAULT ROLE.
//
// Definitions can hold any SQL in their bodies (routines, triggers, events, view queries,
// column defaults), which run later, often with the definer's privileges. Bodies are refused
// when they contain a form a restored database never needs and an attacker would want
// (scanBody): reading or writing server files (LOAD_FILE, LOAD DATA/XML, INTO OUTFILE or
// DUMPFILE), changing accounts or privileges (GRANT, REVOKE, CREATE/ALTER/DROP/RENAME USER or
// ROLE, SET PASSWORD), the mysql system database, server settings (SET GLOBAL/PERSIST), dynamic
// SQL that no scan can see (PREPARE, EXECUTE, DEALLOCATE), plugins (INSTALL, SONAME), server
// administration (SHUTDOWN, KILL, FLUSH, RESET, PURGE, BINLOG, CHANGE MASTER, START/STOP
// SLAVE), other databases as a whole (CREATE/ALTER/DROP DATABASE or SERVER) and HANDLER reads;
// tables are refused with DATA DIRECTORY, INDEX DIRECTORY or ENGINE=CONNECT (files outside the
// data directory). DEFINER clauses are checked against the destination (definers.go).

// ErrRefused marks a statement a dump never writes: the set is probably forged or damaged.
var ErrRefused = errors.New("statement refused")

// objectCheck checks the statements of one object in order.
type objectCheck struct {
	obj       dump.Object
	database  string // the source database (for the database object)
	mode      lexMode
	modeKnown bool
	n         int
	creates   int
	definers  []definer
}

// definer is the account a DEFINER clause names; user only for a role, current for
// CURRENT_USER.
type definer struct {
	user, host string
	role       bool
	current    bool
}

func (d definer) String() string {
	if d.current {
		return "CURRENT_USER"
	}
	if d.role {
		return dump.QuoteIdent(d.user)
	}
	return dump.QuoteIdent(d.user) + "@" + dump.QuoteIdent(d.host)
}

func newObjectCheck(o dump.Object, database string) *objectCheck {
	return &objectCheck{obj: o, database: database}
}

// refuse builds the error for statement n of the object.
func (c *objectCheck) refuse(what, why string) error {
	return fmt.Errorf("%w: object %s (%s), statement %d: %s %s; a dump never writes that, so the set is probably forged or damaged: restore another set (--set or --before) and check who can write to the targets",
		ErrRefused, c.obj.Key, c.obj.Kind, c.n, what, why)
}

var allModes = []lexMode{{}, {noBackslash: true}, {ansiQuotes: true}, {noBackslash: true, ansiQuotes: true}}

// check checks one statement (without its delimiter). Until the object sets sql_mode, the
// session's is unknown, and the statement must pass read under every lexing mode.
func (c *objectCheck) check(stmt []byte) error {
	c.n++
	modes := allModes
	if c.modeKnown {
		modes = []lexMode{c.mode}
	}
	var setMode *lexMode
	creates, defs := c.creates, len(c.definers)
	for _, m := range modes {
		// Each reading counts the statement's CREATE and definer once.
		c.creates, c.definers = creates, c.definers[:defs]
		nm, err := c.checkIn(stmt, m)
		if err != nil {
			return err
		}
		if nm != nil {
			setMode = nm
		}
	}
	if setMode != nil {
		c.mode, c.modeKnown = *setMode, true
	}
	return nil
}

// checkIn checks stmt lexed under mode; it returns the new lexing mode when stmt sets sql_mode.
func (c *objectCheck) checkIn(stmt []byte, mode lexMode) (*lexMode, error) {
	l := lexer{b: stmt, mode: mode}
	first, err := l.next()
	if err != nil {
		return nil, c.refuse("text", "with "+err.Error())
	}
	if first.kind != tokWord {
		return nil, c.refuse("a statement", "that does not start with a keyword")
	}
	verb := strings.ToUpper(string(stmt[first.s:first.e]))
	if verb == "INSERT" && c.obj.Kind == dump.KindData {
		return nil, c.checkInsert(&l, stmt)
	}
	toks, err := lexAll(stmt, mode)
	if err != nil {
		return nil, c.refuse("text", "with "+err.Error())
	}
	t := &toks2{b: stmt, t: toks}
	switch verb {
	case "SET":
		return c.checkSet(t)
	case "CREATE":
		return nil, c.checkCreate(t)
	case "DO":
		if c.obj.Kind == dump.KindSequence {
			return nil, c.checkSetval(t)
		}
	case "GRANT":
		if c.obj.Kind == dump.KindUsers {
			return nil, nil
		}
	}
	return nil, c.refuse(t.describe(), "in a "+c.obj.Kind+" object")
}

// toks2 is a lexed statement with helpers to match it.
type toks2 struct {
	b []byte
	t []token
	i int
}

func (t *toks2) text(k token) string { return string(t.b[k.s:k.e]) }

func (t *toks2) peek(n int) token {
	if t.i+n < len(t.t) {
		return t.t[t.i+n]
	}
	return token{kind: tokEOF}
}

// word reports whether the next token is the keyword w (and consumes it).
func (t *toks2) word(w string) bool {
	k := t.peek(0)
	if k.kind == tokWord && strings.EqualFold(t.text(k), w) {
		t.i++
		return true
	}
	return false
}

func (t *toks2) punct(p byte) bool {
	k := t.peek(0)
	if k.kind == tokPunct && t.b[k.s] == p {
		t.i++
		return true
	}
	return false
}

func (t *toks2) eof() bool { return t.i >= len(t.t) }

// describe names the statement for an error: its first two keywords.
func (t *toks2) describe() string {
	var words []string
	for _, k := range t.t {
		if k.kind != tokWord || len(words) == 2 {
			break
		}
		words = append(words, strings.ToUpper(t.text(k)))
	}
	if len(words) == 0 {
		return "a statement"
	}
	return strings.Join(words, " ")
}

// identName returns the name a quoted identifier (or a plain word) stands for.
func identName(s string) string {
	if len(s) >= 2 && (s[0] == '`' || s[0] == '"') && s[len(s)-1] == s[0] {
		q := s[:1]
		return strings.ReplaceAll(s[1:len(s)-1], q+q, q)
	}
	return s
}

// ownName consumes the object's own name: one identifier, not qualified with a database.
func (t *toks2) ownName(want string) (string, bool) {
	k := t.peek(0)
	if k.kind != tokIdent && k.kind != tokWord {
		return "", false
	}
	t.i++
	if t.peek(0).kind == tokPunct && t.b[t.peek(0).s] == '.' {
		return "", false
	}
	name := identName(t.text(k))
	return name, name == want
}

// sessionVars are the variables a dump sets, with a literal, in the session that loads an
// object.
var sessionVars = map[string]bool{
	"time_zone": true, "sql_mode": true, "foreign_key_checks": true, "unique_checks": true,
	"character_set_client": true, "character_set_results": true, "collation_connection": true,
}

func (c *objectCheck) checkSet(t *toks2) (*lexMode, error) {
	t.i = 1
	if t.word("NAMES") {
		if k := t.peek(0); k.kind == tokWord || k.kind == tokString {
			t.i++
			if t.word("COLLATE") {
				if k := t.peek(0); k.kind == tokWord || k.kind == tokString {
					t.i++
				}
			}
			if t.eof() {
				return nil, nil
			}
		}
		return nil, c.refuse("SET NAMES", "with more than a character set")
	}
	if c.obj.Kind == dump.KindUsers && t.word("DEFAULT") && t.word("ROLE") {
		return nil, nil
	}
	k := t.peek(0)
	if k.kind != tokWord || !sessionVars[strings.ToLower(t.text(k))] {
		return nil, c.refuse("SET of "+t.text(k), "(only the session settings a dump writes are executed, never SET GLOBAL, SET PASSWORD or another variable)")
	}
	name := strings.ToLower(t.text(k))
	t.i++
	if !t.punct('=') {
		return nil, c.refuse("SET "+name, "without =")
	}
	v := t.peek(0)
	t.i++
	if (v.kind != tokString && v.kind != tokNumber) || !t.eof() {
		return nil, c.refuse("SET "+name, "to something other than one literal")
	}
	if name != "sql_mode" {
		return nil, nil
	}
	s := t.text(v)
	var m lexMode
	for _, w := range strings.Split(strings.ToUpper(strings.Trim(s, "'\"")), ",") {
		switch strings.TrimSpace(w) {
		case "NO_BACKSLASH_ESCAPES":
			m.noBackslash = true
		case "ANSI_QUOTES", "ANSI", "ORACLE", "MSSQL", "DB2", "POSTGRESQL", "MAXDB":
			m.ansiQuotes = true
		}
	}
	return &m, nil
}

// checkInsert checks a data statement without building a token list (data objects are most
// of a restore's bytes): INSERT INTO `own table` (`col`, …) VALUES (literal, …), (…), ….
func (c *objectCheck) checkInsert(l *lexer, stmt []byte) error {
	next := func() token {
		k, err := l.next()
		if err != nil {
			return token{kind: -1}
		}
		return k
	}
	isPunct := func(k token, p byte) bool { return k.kind == tokPunct && stmt[k.s] == p }
	k := next()
	if k.kind != tokWord || !strings.EqualFold(string(stmt[k.s:k.e]), "INTO") {
		return c.refuse("INSERT", "without INTO")
	}
	k = next()
	if k.kind != tokIdent || identName(string(stmt[k.s:k.e])) != c.obj.Name {
		return c.refuse("INSERT", fmt.Sprintf("into another table than the object's own %s", dump.QuoteIdent(c.obj.Name)))
	}
	k = next()
	if !isPunct(k, '(') {
		return c.refuse("INSERT", "without its column list (or into a qualified name)")
	}
	for {
		if k = next(); k.kind != tokIdent {
			return c.refuse("INSERT", "with something other than a column in its column list")
		}
		if k = next(); isPunct(k, ')') {
			break
		}
		if !isPunct(k, ',') {
			return c.refuse("INSERT", "with something other than a column in its column list")
		}
	}
	if k = next(); k.kind != tokWord || !strings.EqualFold(string(stmt[k.s:k.e]), "VALUES") {
		return c.refuse("INSERT", "without VALUES")
	}
	for {
		if k = next(); !isPunct(k, '(') {
			return c.refuse("INSERT", "with a row that is not a list of values")
		}
		for {
			k = next()
			if isPunct(k, '-') || isPunct(k, '+') {
				if k = next(); k.kind != tokNumber {
					return c.refuse("INSERT", "with a value that is not a literal")
				}
			} else if k.kind == tokWord {
				w := stmt[k.s:k.e]
				switch {
				case bytes.EqualFold(w, []byte("NULL")):
				case w[0] == '_' || len(w) == 1 && bytes.ContainsAny(w, "xXbBnN"):
					// A character set introducer (_utf8mb4'…') or X'…', B'…', N'…'.
					if k = next(); k.kind != tokString || stmt[k.s] != '\'' {
						return c.refuse("INSERT", "with a value that is not a literal")
					}
				default:
					return c.refuse("INSERT", fmt.Sprintf("with %s among its values (only literals are executed)", strings.ToUpper(string(w))))
				}
			} else if k.kind != tokNumber && k.kind != tokString {
				return c.refuse("INSERT", "with a value that is not a literal")
			}
			if k = next(); isPunct(k, ')') {
				break
			}
			if !isPunct(k, ',') {
				return c.refuse("INSERT", "with a value that is not a literal")
			}
		}
		k = next()
		if k.kind == tokEOF {
			return nil
		}
		if !isPunct(k, ',') {
			return c.refuse("INSERT", "with more than rows after VALUES")
		}
	}
}

// checkSetval checks DO SETVAL(`own sequence`, n, 0, n).
func (c *objectCheck) checkSetval(t *toks2) error {
	t.i = 1
	ok := t.word("SETVAL") && t.punct('(')
	if ok {
		_, ok = t.ownName(c.obj.Name)
	}
	for i := 0; ok && i < 3; i++ {
		ok = t.punct(',')
		t.punct('-')
		if k := t.peek(0); ok && k.kind == tokNumber {
			t.i++
		} else {
			ok = false
		}
	}
	if !ok || !t.punct(')') || !t.eof() {
		return c.refuse("DO", "other than SETVAL of the sequence itself")
	}
	return nil
}

// createKinds maps the keyword after CREATE [...] to the object kind it creates.
var createKinds = map[string]string{
	"DATABASE": dump.KindDatabase, "SEQUENCE": dump.KindSequence, "TABLE": dump.KindTable,
	"VIEW": dump.KindView, "PROCEDURE": dump.KindProcedure, "FUNCTION": dump.KindFunction,
	"TRIGGER": dump.KindTrigger, "EVENT": dump.KindEvent,
}

func (c *objectCheck) checkCreate(t *toks2) error {
	t.i = 1
	if c.obj.Kind == dump.KindUsers {
		if t.word("USER") || t.word("ROLE") {
			return nil
		}
		return c.refuse(t.describe(), "in a users object")
	}
	// The clauses SHOW CREATE puts between CREATE and the kind.
	var def *definer
	for {
		switch {
		case t.word("ALGORITHM"):
			if !t.punct('=') || !t.word(t.text(t.peek(0))) {
				return c.refuse("CREATE", "with a malformed ALGORITHM clause")
			}
			continue
		case t.word("DEFINER"):
			d, ok := t.definer()
			if !ok {
				return c.refuse("CREATE", "with a malformed DEFINER clause")
			}
			def = &d
			continue
		case t.word("SQL"):
			if !t.word("SECURITY") || !(t.word("DEFINER") || t.word("INVOKER")) {
				return c.refuse("CREATE", "with a malformed SQL SECURITY clause")
			}
			continue
		case t.word("AGGREGATE"):
			continue
		}
		break
	}
	k := t.peek(0)
	kind := ""
	if k.kind == tokWord {
		kind = createKinds[strings.ToUpper(t.text(k))]
	}
	if kind == "" || kind != c.obj.Kind {
		return c.refuse("CREATE "+strings.ToUpper(t.text(k)), "in a "+c.obj.Kind+" object")
	}
	if c.creates++; c.creates > 1 {
		return c.refuse("a second CREATE", "in one object")
	}
	t.i++
	if kind == dump.KindDatabase {
		ok := t.word("IF") && t.word("NOT") && t.word("EXISTS")
		if ok {
			_, ok = t.ownName(c.database)
		}
		ok = ok && t.word("CHARACTER") && t.word("SET") && t.peek(0).kind == tokWord
		t.i++
		ok = ok && t.word("COLLATE") && t.peek(0).kind == tokWord
		t.i++
		if !ok || !t.eof() {
			return c.refuse("CREATE DATABASE", "other than of the set's own database "+dump.QuoteIdent(c.database)+" with a character set and collation")
		}
		return nil
	}
	if name, ok := t.ownName(c.obj.Name); !ok {
		return c.refuse("CREATE "+strings.ToUpper(kind), fmt.Sprintf("of %s, not of the object itself (%s) in the database restored", dump.QuoteIdent(name), dump.QuoteIdent(c.obj.Name)))
	}
	if kind == dump.KindTrigger {
		ok := (t.word("BEFORE") || t.word("AFTER")) && (t.word("INSERT") || t.word("UPDATE") || t.word("DELETE")) && t.word("ON")
		if ok {
			_, ok = t.ownName(c.obj.Table)
		}
		if !ok {
			return c.refuse("CREATE TRIGGER", "on another table than its own "+dump.QuoteIdent(c.obj.Table))
		}
	}
	if kind == dump.KindSequence {
		for _, k := range t.t[t.i:] {
			if k.kind != tokWord && k.kind != tokNumber && !(k.kind == tokPunct && (t.b[k.s] == '=' || t.b[k.s] == '-')) {
				return c.refuse("CREATE SEQUENCE", "with more than its options")
			}
		}
		return nil
	}
	if what := scanBody(t.b, t.t[t.i:], kind == dump.KindTable); what != "" {
		return c.refuse("CREATE "+strings.ToUpper(kind), "whose definition contains "+what)
	}
	if def != nil {
		c.definers = append(c.definers, *def)
	}
	return nil
}

// definer reads the account after DEFINER =.
func (t *toks2) definer() (definer, bool) {
	if !t.punct('=') {
		return definer{}, false
	}
	if t.word("CURRENT_USER") {
		if t.punct('(') && !t.punct(')') {
			return definer{}, false
		}
		return definer{current: true}, true
	}
	k := t.peek(0)
	if k.kind != tokIdent && k.kind != tokString && k.kind != tokWord {
		return definer{}, false
	}
	t.i++
	d := definer{user: unquoteAny(t.text(k))}
	h := t.peek(0)
	if h.kind != tokUserVar {
		d.role = true
		return d, true
	}
	t.i++
	d.host = unquoteAny(t.text(h)[1:])
	return d, true
}

// unquoteAny returns the value of a quoted identifier or simple string (the forms SHOW CREATE
// writes account names in), or s itself.
func unquoteAny(s string) string {
	if len(s) >= 2 && s[0] == '\'' && s[len(s)-1] == '\'' {
		return strings.ReplaceAll(strings.ReplaceAll(s[1:len(s)-1], "''", "'"), `\\`, `\`)
	}
	return identName(s)
}

// scanBody returns what forbidden form a definition contains, or "".
func scanBody(b []byte, toks []token, table bool) string {
	word := func(i int) string {
		if i < 0 || i >= len(toks) || toks[i].kind != tokWord {
			return ""
		}
		// A word after a dot is a name (t.grant), never a keyword.
		if i > 0 && toks[i-1].kind == tokPunct && b[toks[i-1].s] == '.' {
			return ""
		}
		return strings.ToUpper(string(b[toks[i].s:toks[i].e]))
	}
	punct := func(i int, p byte) bool {
		return i >= 0 && i < len(toks) && toks[i].kind == tokPunct && b[toks[i].s] == p
	}
	assigns := func(i int) bool { // = or := at i
		return punct(i, '=') || punct(i, ':') && punct(i+1, '=')
	}
	for i, k := range toks {
		switch k.kind {
		case tokSysVar:
			v := strings.ToUpper(string(b[k.s:k.e]))
			if (strings.HasPrefix(v, "@@GLOBAL.") || strings.HasPrefix(v, "@@PERSIST")) && assigns(i+1) {
				return "an assignment to a global server variable (" + v + ")"
			}
			continue
		case tokIdent:
			if strings.EqualFold(identName(string(b[k.s:k.e])), "mysql") && punct(i+1, '.') {
				return "a reference to the mysql system database"
			}
			continue
		case tokWord:
		default:
			continue
		}
		w := word(i)
		switch w {
		case "":
		case "MYSQL":
			if punct(i+1, '.') {
				return "a reference to the mysql system database"
			}
		case "LOAD_FILE":
			return "LOAD_FILE (reads a file of the server)"
		case "OUTFILE", "DUMPFILE":
			return "INTO " + w + " (writes a file on the server)"
		case "LOAD":
			if n := word(i + 1); n == "DATA" || n == "XML" {
				return "LOAD " + n + " (reads a file)"
			}
		case "GRANT", "REVOKE":
			return w + " (changes privileges)"
		case "CREATE", "ALTER", "DROP", "RENAME":
			j := i + 1
			if word(j) == "OR" && word(j+1) == "REPLACE" {
				j += 2
			}
			switch n := word(j); n {
			case "USER", "ROLE":
				return w + " " + n + " (changes accounts)"
			case "DATABASE", "SCHEMA", "SERVER":
				return w + " " + n + " (acts outside the database restored)"
			}
		case "SET":
			if n := word(i + 1); n == "PASSWORD" {
				return "SET PASSWORD (changes an account)"
			}
		case "GLOBAL", "PERSIST", "PERSIST_ONLY":
			if n := toks[min(i+1, len(toks)-1)]; i+1 < len(toks) && (n.kind == tokWord || n.kind == tokIdent) && assigns(i+2) {
				return "SET " + w + " (changes the server's settings)"
			}
		case "PREPARE", "EXECUTE", "DEALLOCATE":
			return w + " (dynamic SQL, which cannot be checked)"
		case "INSTALL", "UNINSTALL", "SONAME":
			return w + " (loads server plugins or libraries)"
		case "SHUTDOWN":
			return w + " (server administration)"
		case "KILL", "FLUSH", "RESET", "PURGE", "BINLOG":
			// Used as a statement, the word has an argument (KILL 5, FLUSH PRIVILEGES); as a
			// variable or column name it has none, or is declared.
			if n := toks[min(i+1, len(toks)-1)]; i+1 < len(toks) && n.kind != tokPunct && word(i-1) != "DECLARE" {
				return w + " (server administration)"
			}
		case "CHANGE":
			if n := word(i + 1); n == "MASTER" || n == "REPLICATION" {
				return "CHANGE " + n + " (replication administration)"
			}
		case "START", "STOP":
			if n := word(i + 1); n == "SLAVE" || n == "REPLICA" || n == "ALL" {
				return w + " " + n + " (replication administration)"
			}
		case "HANDLER":
			if n := word(i + 2); n == "OPEN" || n == "READ" || n == "CLOSE" {
				return "HANDLER (reads tables around their privileges' views)"
			}
		case "DIRECTORY":
			if table {
				return word(i-1) + " DIRECTORY (files outside the data directory)"
			}
		case "ENGINE":
			if table && punct(i+1, '=') && word(i+2) == "CONNECT" {
				return "ENGINE=CONNECT (tables that are files of the server)"
			}
		}
	}
	return ""
}
