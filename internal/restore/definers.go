package restore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
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
// The rule: a DEFINER is kept as written when it is CURRENT_USER, the restoring account itself
// (the operator chose its privileges by choosing the account), or an account that holds no
// global privilege on the destination (an application account, or one that does not exist
// there: the object then fails when used until it is created, for example with --users).
// A definer with global privileges other than the restoring account is refused: restore as
// that account, or recreate the object by hand. Roles a definer holds are followed one level.

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
		privs, err := globalPrivileges(ctx, conn, d, 2)
		if err != nil {
			return fmt.Errorf("%w: object %s (%s): its DEFINER %s cannot be checked on the destination (%v): restore as an account that may read other accounts' grants (SELECT on mysql.*), or as %s",
				ErrRefused, o.Key, o.Kind, d, err, d)
		}
		if privs != "" {
			return fmt.Errorf("%w: object %s (%s): its DEFINER %s holds global privileges on the destination (%s) and is not the restoring account %s: the object would run with them. If the set is yours, restore as %s or recreate the object by hand; otherwise the set is probably forged: restore another set (--set or --before)",
				ErrRefused, o.Key, o.Kind, d, privs, me, d)
		}
	}
	return nil
}

// globalPrivileges returns the global privileges of account d (and of the roles it was
// granted, depth levels deep), "" for none or an account that does not exist.
func globalPrivileges(ctx context.Context, conn *loaderConn, d definer, depth int) (string, error) {
	who := quoteString(d.user)
	if !d.role {
		who += "@" + quoteString(d.host)
	}
	rows, err := conn.QueryContext(ctx, "SHOW GRANTS FOR "+who)
	if err != nil {
		var me *mysql.MySQLError
		if errors.As(err, &me) && (me.Number == 1141 || me.Number == 1133 || me.Number == 1449) {
			return "", nil // no such account or role
		}
		return "", err
	}
	var grants []string
	for rows.Next() {
		var g sql.RawBytes
		if err := rows.Scan(&g); err != nil {
			rows.Close()
			return "", err
		}
		grants = append(grants, string(g))
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return "", err
	}
	for _, g := range grants {
		rest, ok := strings.CutPrefix(g, "GRANT ")
		if !ok {
			continue
		}
		privs, on, found := strings.Cut(rest, " ON ")
		if found {
			if strings.HasPrefix(on, "*.* ") && privs != "USAGE" {
				return privs, nil
			}
			continue
		}
		// GRANT `role` TO account: the role's privileges count too.
		role, _, _ := strings.Cut(rest, " TO ")
		if depth > 0 {
			p, err := globalPrivileges(ctx, conn, definer{user: identName(strings.TrimSpace(role)), role: true}, depth-1)
			if err != nil || p != "" {
				return p, err
			}
		}
	}
	return "", nil
}
