package restore

import (
	"fmt"
	"sort"
	"strings"

	"github.com/backupd/backupd/internal/dump"
)

// MarkerTable is created in every destination database before anything else is loaded and
// dropped only once the restore has finished and, unless verification is off, been verified. A
// database that holds it is not a faithful copy of the set: the restore failed, was
// interrupted, or is still running. Its one row says which set, since when, and why it stopped.
const MarkerTable = "_backupd_restore_incomplete"

// Selection says what part of a set to restore and under which names.
type Selection struct {
	// Database restores only this database of the set; empty means every database.
	Database string
	// As restores Database (or the set's only database) under this name.
	As string
	// Tables restores only these tables, views or sequences (with a table's triggers) into the
	// destination database, leaving everything else in it alone. Each is "db.name", or just
	// "name" when one database is selected.
	Tables []string
	// Users also loads the set's users, roles and grants, after everything else.
	Users bool
}

// DatabasePlan is one database to restore.
type DatabasePlan struct {
	Source    string // name in the set
	Dest      string // name in the destination
	Charset   string
	Collation string
	// Whole is a whole-database restore: every object of the database. Otherwise only Tables
	// (and their triggers) are restored.
	Whole bool
	// Schema, Data and Post are the objects to load, by phase, in load order. Schema holds the
	// database object only for a whole database restored under its own name; otherwise the
	// database is created from Charset and Collation.
	Schema, Data, Post []dump.Object
	// Tables are the restored tables, views and sequences, as the set describes them.
	Tables []dump.Table
}

// loadsDatabaseObject reports whether the set's database object is loaded as it is (rather than
// the database being created under another name by the restore itself).
func (d *DatabasePlan) loadsDatabaseObject() bool {
	return len(d.Schema) > 0 && d.Schema[0].Kind == dump.KindDatabase
}

// selectObjects applies sel to a dump: which databases, under which names, which objects in
// which order. It is a pure function of its inputs; errors wrap ErrSelection and say what the
// set holds instead. warnings are things a person should know but that do not stop a restore.
func selectObjects(res *dump.Result, sel Selection) (dbs []DatabasePlan, users *dump.Object, warnings []string, err error) {
	if res == nil || len(res.Databases) == 0 {
		return nil, nil, nil, withKind(ErrSelection, fmt.Errorf("the set holds no database"))
	}
	names := make([]string, len(res.Databases))
	for i, d := range res.Databases {
		names[i] = d.Name
	}
	var chosen []dump.Database
	if sel.Database != "" {
		for _, d := range res.Databases {
			if d.Name == sel.Database {
				chosen = append(chosen, d)
			}
		}
		if len(chosen) == 0 {
			return nil, nil, nil, withKind(ErrSelection, fmt.Errorf("database %q is not in the set; it holds: %s", sel.Database, quoteList(names)))
		}
	} else {
		chosen = res.Databases
	}
	if sel.As != "" && len(chosen) != 1 {
		return nil, nil, nil, withKind(ErrSelection, fmt.Errorf("--as needs one database, and the set holds %d (%s): add --database", len(chosen), quoteList(names)))
	}
	if sel.As != "" {
		if err := checkDatabaseName(sel.As); err != nil {
			return nil, nil, nil, withKind(ErrSelection, err)
		}
	}
	wanted, err := parseTables(sel.Tables, chosen, sel.As)
	if err != nil {
		return nil, nil, nil, err
	}
	for _, d := range chosen {
		dest := d.Name
		if sel.As != "" {
			dest = sel.As
		}
		dp := DatabasePlan{Source: d.Name, Dest: dest, Charset: d.Charset, Collation: d.Collation, Whole: wanted == nil}
		only := wanted[d.Name]
		if wanted != nil && len(only) == 0 {
			continue // --tables names nothing in this database
		}
		keep := func(t dump.Table) bool {
			if t.Name == MarkerTable {
				return false
			}
			return dp.Whole || only[t.Name]
		}
		kept := map[string]bool{}
		for _, t := range d.Tables {
			if keep(t) {
				dp.Tables = append(dp.Tables, t)
				kept[t.Name] = true
			} else if t.Name == MarkerTable {
				warnings = append(warnings, fmt.Sprintf("database %s of the set holds the marker %s of an unfinished restore: the source was itself an incomplete restore; the marker is not restored", d.Name, MarkerTable))
			}
		}
		for _, o := range d.Objects {
			switch o.Kind {
			case dump.KindDatabase:
				if dp.Whole && dest == d.Name {
					dp.Schema = append(dp.Schema, o)
				}
			case dump.KindTable, dump.KindSequence:
				if kept[o.Name] {
					dp.Schema = append(dp.Schema, o)
				}
			case dump.KindData:
				if kept[o.Name] {
					dp.Data = append(dp.Data, o)
				}
			case dump.KindView:
				if kept[o.Name] {
					dp.Post = append(dp.Post, o)
				}
			case dump.KindTrigger:
				if dp.Whole || kept[o.Table] {
					dp.Post = append(dp.Post, o)
				}
			default: // procedures, functions, events: whole databases only
				if dp.Whole {
					dp.Post = append(dp.Post, o)
				}
			}
		}
		dbs = append(dbs, dp)
	}
	if sel.Users {
		if res.Users == nil {
			return nil, nil, nil, withKind(ErrSelection, fmt.Errorf("the set holds no users (the policy's mysql.include_users was off): leave out --users"))
		}
		u := *res.Users
		users = &u
		if sel.As != "" {
			warnings = append(warnings, fmt.Sprintf("grants in the users object name the databases as they were backed up (%s), not %s", chosen[0].Name, sel.As))
		}
	}
	return dbs, users, warnings, nil
}

// parseTables resolves --tables against the chosen databases: nil when no tables were given,
// otherwise the wanted names per source database. A name may be qualified with the source
// database or with the --as name; unqualified names need exactly one chosen database. Database
// names may contain dots, so the longest database name that prefixes the entry wins.
func parseTables(list []string, dbs []dump.Database, as string) (map[string]map[string]bool, error) {
	if len(list) == 0 {
		return nil, nil
	}
	out := map[string]map[string]bool{}
	for _, raw := range list {
		entry := strings.TrimSpace(raw)
		if entry == "" {
			continue
		}
		var db *dump.Database
		name := ""
		best := -1
		for i := range dbs {
			for _, prefix := range []string{dbs[i].Name, as} {
				if prefix == "" || !strings.HasPrefix(entry, prefix+".") || len(prefix) <= best {
					continue
				}
				db, name, best = &dbs[i], entry[len(prefix)+1:], len(prefix)
			}
		}
		if db == nil {
			if len(dbs) != 1 {
				return nil, withKind(ErrSelection, fmt.Errorf("--tables %q: qualify it with its database (db.table); the set holds %s", entry, quoteList(dbNames(dbs))))
			}
			db, name = &dbs[0], entry
		}
		found := false
		for _, t := range db.Tables {
			if t.Name == name && t.Name != MarkerTable {
				found = true
			}
		}
		if !found {
			return nil, withKind(ErrSelection, fmt.Errorf("--tables: %s is not a table, view or sequence of database %s in the set; it has: %s",
				dump.QuoteIdent(name), dump.QuoteIdent(db.Name), quoteList(tableNames(db))))
		}
		if out[db.Name] == nil {
			out[db.Name] = map[string]bool{}
		}
		out[db.Name][name] = true
	}
	if len(out) == 0 {
		return nil, withKind(ErrSelection, fmt.Errorf("--tables names no table"))
	}
	return out, nil
}

// checkDatabaseName rejects names the server would refuse or silently change.
func checkDatabaseName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("empty database name")
	case len(name) > 64:
		return fmt.Errorf("database name %q is longer than 64 characters", name)
	case strings.HasSuffix(name, " "):
		return fmt.Errorf("database name %q ends with a space, which the server does not allow", name)
	case strings.ContainsRune(name, 0):
		return fmt.Errorf("database name contains a NUL byte")
	}
	switch strings.ToLower(name) {
	case "mysql", "information_schema", "performance_schema", "sys":
		return fmt.Errorf("%s is a system database: choose another name with --as", name)
	}
	return nil
}

func dbNames(dbs []dump.Database) []string {
	out := make([]string, len(dbs))
	for i, d := range dbs {
		out[i] = d.Name
	}
	return out
}

func tableNames(db *dump.Database) []string {
	var out []string
	for _, t := range db.Tables {
		if t.Name != MarkerTable {
			out = append(out, t.Name)
		}
	}
	return out
}

// quoteList lists names for a message, shortened when long.
func quoteList(names []string) string {
	const max = 12
	s := append([]string{}, names...)
	sort.Strings(s)
	more := ""
	if len(s) > max {
		more = fmt.Sprintf(" and %d more", len(s)-max)
		s = s[:max]
	}
	for i := range s {
		s[i] = dump.QuoteIdent(s[i])
	}
	return strings.Join(s, ", ") + more
}

// quoteIdent quotes a MySQL identifier.

// qualified is `db`.`name`.
func qualified(db, name string) string { return dump.QuoteIdent(db) + "." + dump.QuoteIdent(name) }

// quoteString is a MySQL string literal that is safe under any sql_mode (NO_BACKSLASH_ESCAPES
// included): backslashes are not used as escapes, and every quote is doubled.
func quoteString(s string) string {
	if strings.ContainsAny(s, "\\\x00\n\r\x1a") {
		// Hex keeps the bytes exact whatever the sql_mode; CONVERT makes it a string again.
		return fmt.Sprintf("CONVERT(0x%x USING utf8mb4)", s)
	}
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}
