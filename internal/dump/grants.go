package dump

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// The server hides from information_schema the triggers, events and routines the account may
// not see, without an error: a dump by such an account would silently lack them. So before the
// snapshot the account's own grants (SHOW GRANTS, which needs no privilege and, on MariaDB,
// lists the grants of the enabled roles and PUBLIC too) are checked for every database dumped.
// The reading is conservative: a grant it does not understand grants nothing, so the check can
// refuse an account that would have seen everything (it then names the grant to add), never
// pass one that would not.

// objectGrant is an object kind the server hides without the privilege, with what shows it.
type objectGrant struct {
	kind      string // plural, as in the message
	privilege string // database-level privilege, "" if it is not one
}

var objectGrants = []objectGrant{
	{kind: "triggers", privilege: "TRIGGER"},
	{kind: "events", privilege: "EVENT"},
	{kind: "routines"}, // SELECT on mysql.proc (MariaDB), SHOW_ROUTINE (MySQL 8)
}

// checkVisibility fails unless the account can see every trigger, event and routine of the
// databases, naming each database, object kind and the grant to add.
func checkVisibility(ctx context.Context, q querier, flavor string, dbs []string) error {
	var account string
	if err := q.QueryRowContext(ctx, "SELECT CURRENT_USER()").Scan(&account); err != nil {
		return fmt.Errorf("read the account's name: %w", err)
	}
	rows, err := q.QueryContext(ctx, "SHOW GRANTS")
	if err != nil {
		return fmt.Errorf("read the account's grants (SHOW GRANTS): %w", err)
	}
	defer rows.Close()
	var lines []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return fmt.Errorf("read the account's grants (SHOW GRANTS): %w", err)
		}
		lines = append(lines, s)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read the account's grants (SHOW GRANTS): %w", err)
	}
	return missingGrants(parseGrants(lines), flavor, dbs, quoteAccount(account))
}

// missingGrants is checkVisibility on parsed grants.
func missingGrants(g *grantSet, flavor string, dbs []string, account string) error {
	var errs []error
	for _, db := range dbs {
		for _, og := range objectGrants {
			var grant string
			switch {
			case og.privilege != "":
				if g.onDatabase(db, og.privilege) {
					continue
				}
				grant = fmt.Sprintf("GRANT %s ON %s.* TO %s", og.privilege, QuoteIdent(db), account)
			case flavor == FlavorMySQL:
				if g.global("SHOW_ROUTINE") || g.global("SELECT") {
					continue
				}
				grant = "GRANT SHOW_ROUTINE ON *.* TO " + account
			default:
				if g.onTable("mysql", "proc", "SELECT") {
					continue
				}
				grant = "GRANT SELECT ON mysql.proc TO " + account
			}
			errs = append(errs, fmt.Errorf("the account cannot see %s of %s: %s", og.kind, QuoteIdent(db), grant))
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("the server hides from this account objects it would have to dump, and the backup would silently lack them:\n%w", errors.Join(errs...))
}

// quoteAccount turns CURRENT_USER()'s user@host into 'user'@'host'.
func quoteAccount(s string) string {
	i := strings.LastIndexByte(s, '@')
	if i < 0 {
		return quoteString(s)
	}
	return quoteString(s[:i]) + "@" + quoteString(s[i+1:])
}

// grantSet is what SHOW GRANTS said, by grantee pool. The server adds up the account's own
// privileges, its roles' and PUBLIC's, but within one of them a database-level grant naming the
// database exactly hides the wildcard grants matching it. The enabled roles' grants are kept
// as one pool, since a role's grants are merged with those of the roles granted to it.
type grantSet struct {
	pools map[string]*grantPool
}

type grantPool struct {
	global  map[string]bool
	dbs     []dbGrant
	tables  map[[2]string]map[string]bool
	revoked []dbGrant // MySQL 8 partial revokes: taken out of the global privileges
}

type dbGrant struct {
	pattern string // as shown, with MySQL's wildcards and backslash escapes
	privs   map[string]bool
}

// parseGrants reads SHOW GRANTS output. Lines it does not recognise (role grants, SET DEFAULT
// ROLE, PROXY, routine-level and column-level grants) grant nothing here.
func parseGrants(lines []string) *grantSet {
	g := &grantSet{pools: map[string]*grantPool{}}
	for _, line := range lines {
		verb, rest, ok := strings.Cut(line, " ")
		if !ok || (verb != "GRANT" && verb != "REVOKE") {
			continue
		}
		privText, rest, ok := cutOutside(rest, " ON ")
		if !ok {
			continue
		}
		sep := " TO "
		if verb == "REVOKE" {
			sep = " FROM "
		}
		target, grantee, ok := cutOutside(rest, sep)
		if !ok {
			continue
		}
		privs := map[string]bool{}
		for _, p := range splitOutside(privText, ',') {
			p = strings.TrimSpace(p)
			if p == "" || strings.Contains(p, "(") {
				continue // column privileges cover only those columns
			}
			privs[strings.ToUpper(p)] = true
		}
		dbName, table, ok := parseTarget(target)
		if !ok {
			continue
		}
		pool := g.pool(grantee)
		switch {
		case verb == "REVOKE":
			if table == "*" && dbName != "*" {
				pool.revoked = append(pool.revoked, dbGrant{dbName, privs})
			}
		case dbName == "*" && table == "*":
			for p := range privs {
				pool.global[p] = true
			}
		case table == "*":
			pool.dbs = append(pool.dbs, dbGrant{dbName, privs})
		case dbName != "*":
			k := [2]string{dbName, table}
			if pool.tables[k] == nil {
				pool.tables[k] = map[string]bool{}
			}
			for p := range privs {
				pool.tables[k][p] = true
			}
		}
	}
	return g
}

// pool returns the pool of a grantee: the account itself ('user'@'host'), PUBLIC, or any role.
func (g *grantSet) pool(grantee string) *grantPool {
	grantee = strings.TrimSpace(grantee)
	key := "roles"
	switch {
	case strings.HasPrefix(grantee, "PUBLIC"):
		key = "PUBLIC"
	case strings.Contains(grantee, "`@`") || strings.Contains(grantee, "'@'"):
		key = "account"
	}
	p := g.pools[key]
	if p == nil {
		p = &grantPool{global: map[string]bool{}, tables: map[[2]string]map[string]bool{}}
		g.pools[key] = p
	}
	return p
}

func has(privs map[string]bool, priv string) bool {
	return privs[priv] || privs["ALL PRIVILEGES"] || privs["ALL"]
}

// global reports whether priv is granted on *.*.
func (g *grantSet) global(priv string) bool {
	for _, p := range g.pools {
		if has(p.global, priv) {
			return true
		}
	}
	return false
}

// onDatabase reports whether priv applies to every table of db.
func (g *grantSet) onDatabase(db, priv string) bool {
	for _, p := range g.pools {
		if p.onDatabase(db, priv) {
			return true
		}
	}
	return false
}

// onTable reports whether priv applies to db.table.
func (g *grantSet) onTable(db, table, priv string) bool {
	for _, p := range g.pools {
		if p.onDatabase(db, priv) || has(p.tables[[2]string{db, table}], priv) {
			return true
		}
	}
	return false
}

func (p *grantPool) onDatabase(db, priv string) bool {
	if has(p.global, priv) {
		revoked := false
		for _, r := range p.revoked {
			if r.pattern == db && has(r.privs, priv) {
				revoked = true
			}
		}
		if !revoked {
			return true
		}
	}
	// The server takes the privileges of the first matching database grant, the exact name
	// before the patterns; which pattern comes first is not worth predicting, so all must
	// grant it.
	var exact, matched []dbGrant
	for _, d := range p.dbs {
		lit, wild := unescapePattern(d.pattern)
		switch {
		case !wild && lit == db:
			exact = append(exact, d)
		case wild && likeMatch(d.pattern, db):
			matched = append(matched, d)
		}
	}
	if len(exact) > 0 {
		matched = exact
	}
	if len(matched) == 0 {
		return false
	}
	for _, d := range matched {
		if !has(d.privs, priv) {
			return false
		}
	}
	return true
}

// parseTarget splits a grant's object (*.*, `db`.*, `db`.`table`); routine grants (PROCEDURE
// `db`.`p`) and anything else are not understood.
func parseTarget(s string) (db, table string, ok bool) {
	s = strings.TrimSpace(s)
	db, s, ok = parseIdentOrStar(s)
	if !ok || !strings.HasPrefix(s, ".") {
		return "", "", false
	}
	table, s, ok = parseIdentOrStar(s[1:])
	if !ok || s != "" {
		return "", "", false
	}
	return db, table, true
}

func parseIdentOrStar(s string) (ident, rest string, ok bool) {
	if strings.HasPrefix(s, "*") {
		return "*", s[1:], true
	}
	if !strings.HasPrefix(s, "`") {
		return "", "", false
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		if s[i] != '`' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 < len(s) && s[i+1] == '`' {
			b.WriteByte('`')
			i++
			continue
		}
		return b.String(), s[i+1:], true
	}
	return "", "", false
}

// cutOutside is strings.Cut ignoring sep inside backquotes and parentheses.
func cutOutside(s, sep string) (before, after string, ok bool) {
	depth, quoted := 0, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '`':
			quoted = !quoted
		case quoted:
		case c == '(':
			depth++
		case c == ')':
			depth--
		case depth == 0 && strings.HasPrefix(s[i:], sep):
			return s[:i], s[i+len(sep):], true
		}
	}
	return s, "", false
}

func splitOutside(s string, sep byte) []string {
	var out []string
	for {
		before, after, ok := cutOutside(s, string(sep))
		out = append(out, before)
		if !ok {
			return out
		}
		s = after
	}
}

// unescapePattern returns a database grant's name without its backslash escapes, and whether
// it has an unescaped wildcard.
func unescapePattern(p string) (literal string, wild bool) {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c == '\\' && i+1 < len(p):
			i++
			b.WriteByte(p[i])
		case c == '%' || c == '_':
			wild = true
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), wild
}

// likeMatch matches name against a grant pattern: % any run, _ any one character, \ escapes.
// Names are compared byte for byte, as the server does with lower_case_table_names=0.
func likeMatch(pattern, name string) bool {
	if pattern == "" {
		return name == ""
	}
	switch c := pattern[0]; {
	case c == '%':
		for i := 0; i <= len(name); i++ {
			if likeMatch(pattern[1:], name[i:]) {
				return true
			}
		}
		return false
	case name == "":
		return false
	case c == '_':
		return likeMatch(pattern[1:], name[1:])
	case c == '\\' && len(pattern) > 1:
		return pattern[1] == name[0] && likeMatch(pattern[2:], name[1:])
	default:
		return c == name[0] && likeMatch(pattern[1:], name[1:])
	}
}
