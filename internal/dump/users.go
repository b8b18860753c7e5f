package dump

import (
	"context"
	"fmt"
	"strings"
)

// skippedAccounts exist on every server and are managed by it; restoring them would fight the
// target's own.
var skippedAccounts = map[string]bool{
	"root": true, "mariadb.sys": true, "mysql.sys": true, "mysql.session": true, "mysql.infoschema": true,
	"debian-sys-maint": true,
	"mysql@localhost":  true, // Debian's MariaDB packaging creates it (unix_socket)
}

func skipAccount(user, host string) bool {
	return skippedAccounts[user] || skippedAccounts[user+"@"+host]
}

// writeUsers writes roles, users (with their authentication) and grants as one object, loaded
// after every database so grants on routines find them.
func (d *dumper) writeUsers(ctx context.Context) error {
	c := d.control.conn
	q := "SELECT User, Host, 0 FROM mysql.user ORDER BY User, Host"
	if d.info.Flavor == FlavorMariaDB {
		q = "SELECT User, Host, is_role = 'Y' FROM mysql.user ORDER BY User, Host"
	}
	rows, err := c.QueryContext(ctx, q)
	if err != nil {
		return fmt.Errorf("list users (IncludeUsers needs SELECT on mysql.user): %w", err)
	}
	type account struct {
		user, host string
		role       bool
	}
	var accts []account
	for rows.Next() {
		var a account
		if err := rows.Scan(&a.user, &a.host, &a.role); err != nil {
			rows.Close()
			return fmt.Errorf("list users: %w", err)
		}
		if !skipAccount(a.user, a.host) {
			accts = append(accts, a)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("list users: %w", err)
	}
	if d.info.Flavor == FlavorMySQL {
		// MySQL prints binary password hashes raw unless asked for hex (8.0.17+).
		if _, err := c.ExecContext(ctx, "SET SESSION print_identified_with_as_hex = ON"); err != nil {
			d.log.Debug("print_identified_with_as_hex not available", "error", err)
		}
	}
	var o objText
	o.comment("backupd users, roles and grants (root and system accounts excluded); load with: mariadb < this-file, after every database")
	o.stmtString("SET NAMES utf8mb4")
	var grants [][]byte
	for _, a := range accts {
		name := quoteString(a.user) + "@" + quoteString(a.host)
		if a.role {
			o.stmtString("CREATE ROLE IF NOT EXISTS " + quoteString(a.user))
			name = quoteString(a.user)
		} else {
			m, err := showOne(ctx, c, "SHOW CREATE USER "+name)
			if err != nil {
				return fmt.Errorf("read user %s: %w", name, err)
			}
			var create []byte
			for _, v := range m {
				create = v
			}
			s := string(create)
			if rest, ok := strings.CutPrefix(s, "CREATE USER "); ok && !strings.HasPrefix(rest, "IF NOT EXISTS") {
				s = "CREATE USER IF NOT EXISTS " + rest
			}
			o.stmtString(s)
		}
		rows, err := c.QueryContext(ctx, "SHOW GRANTS FOR "+name)
		if err != nil {
			return fmt.Errorf("read grants of %s: %w", name, err)
		}
		for rows.Next() {
			var g []byte
			if err := rows.Scan(&g); err != nil {
				rows.Close()
				return fmt.Errorf("read grants of %s: %w", name, err)
			}
			grants = append(grants, g)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read grants of %s: %w", name, err)
		}
	}
	for _, g := range grants {
		o.stmt(g)
	}
	obj := Object{Key: usersObject, Kind: KindUsers, Phase: PhaseUsers}
	var list []Object
	if err := d.putObject(ctx, &list, obj, o.b); err != nil {
		return err
	}
	d.res.Users = &list[0]
	return nil
}
