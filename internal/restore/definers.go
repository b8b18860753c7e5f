package restore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/go-sql-driver/mysql"

	"github.com/backupd/backupd/internal/dump"
)

// A view, routine, trigger or event runs with its DEFINER's privileges (triggers and events
// always; views and routines unless SQL SECURITY INVOKER), and a restoring account with SUPER or
// SET USER may create objects for any definer. So a forged DEFINER=`root`@`localhost` would
// hand whoever can call the routine, fire the trigger or read the view root's privileges, and an
// event would run as root by itself.
//
// The rule: a DEFINER is kept as written when it is CURRENT_USER, the restoring account itself,
// or an account whose global privileges on the destination the restoring account holds too
// (an application account with none, an account that does not exist there, or an admin when
// the restore runs as an admin): the operator chose those privileges by choosing the account
// to restore with. A definer with a global privilege the restoring account lacks is refused:
// restore as that account, or recreate the object by hand. Roles are followed two levels;
// GRANT OPTION is not compared (a body that grants is refused by allow.go).

// checkDefiners applies the rule to the definers of one object, on the destination.
func (p *Plan) checkDefiners(ctx context.Context, conn *loaderConn, o dump.Object, defs []definer) error {
	for _, d := range defs {
		if d.current {
			continue
		}
		var me string
		if err := conn.QueryRowContext(ctx, "SELECT CURRENT_USER()").Scan(&me); err != nil {
			return fmt.Errorf("load %s: read the restoring account: %w", o.Key, err)
		}
		if u, h, ok := strings.Cut(me, "@"); ok && !d.role && u == d.user && strings.EqualFold(h, d.host) {
			continue
		}
		theirs, err := globalPrivileges(ctx, conn, definer{user: d.user, host: d.host, role: d.role}, 2)
		var mine map[string]bool
		if err == nil && len(theirs) > 0 {
			u, h, _ := strings.Cut(me, "@")
			mine, err = globalPrivileges(ctx, conn, definer{user: u, host: h}, 2)
		}
		if err != nil {
			return fmt.Errorf("%w: object %s (%s): its DEFINER %s cannot be checked on the destination (%v): restore as an account that may read other accounts' grants (SELECT on mysql.*), or as %s",
				ErrRefused, o.Key, o.Kind, d, err, d)
		}
		if extra := missing(theirs, mine); extra != "" {
			return fmt.Errorf("%w: object %s (%s): its DEFINER %s holds global privileges on the destination that the restoring account %s lacks (%s): the object would run with them. If the set is yours, restore as %s or recreate the object by hand; otherwise the set is probably forged: restore another set (--set or --before)",
				ErrRefused, o.Key, o.Kind, d, me, extra, d)
		}
	}
	return nil
}

// missing lists the privileges in theirs that mine lacks ("ALL" stands for every one).
func missing(theirs, mine map[string]bool) string {
	if mine["ALL"] {
		return ""
	}
	var out []string
	for p := range theirs {
		if !mine[p] {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

// globalPrivileges returns the global privileges of account d and of the roles it was granted
// (depth levels deep), without GRANT OPTION (a body that grants is refused anyway): none for an
// account that does not exist.
func globalPrivileges(ctx context.Context, conn *loaderConn, d definer, depth int) (map[string]bool, error) {
	out := map[string]bool{}
	who := quoteString(d.user)
	if !d.role {
		who += "@" + quoteString(d.host)
	}
	noAccount := func(err error) bool {
		var me *mysql.MySQLError
		return errors.As(err, &me) && (me.Number == 1141 || me.Number == 1133 || me.Number == 1449)
	}
	rows, err := conn.QueryContext(ctx, "SHOW GRANTS FOR "+who)
	if noAccount(err) {
		return out, nil // no such account or role
	}
	if err != nil {
		return nil, err
	}
	var grants []string
	for rows.Next() {
		var g sql.RawBytes
		if err := rows.Scan(&g); err != nil {
			rows.Close()
			return nil, err
		}
		grants = append(grants, string(g))
	}
	rows.Close()
	if err := rows.Err(); noAccount(err) {
		return out, nil
	} else if err != nil {
		return nil, err
	}
	for _, g := range grants {
		rest, ok := strings.CutPrefix(g, "GRANT ")
		if !ok {
			continue
		}
		privs, on, found := strings.Cut(rest, " ON ")
		if found {
			if strings.HasPrefix(on, "*.* ") && privs != "USAGE" {
				for _, p := range strings.Split(privs, ", ") {
					if p == "ALL PRIVILEGES" || p == "ALL" {
						p = "ALL"
					}
					out[p] = true
				}
			}
			continue
		}
		// GRANT `role` TO account: the role's privileges count too.
		role, _, _ := strings.Cut(rest, " TO ")
		if depth > 0 {
			rp, err := globalPrivileges(ctx, conn, definer{user: identName(strings.TrimSpace(role)), role: true}, depth-1)
			if err != nil {
				return nil, err
			}
			for p := range rp {
				out[p] = true
			}
		}
	}
	return out, nil
}
