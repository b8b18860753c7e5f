package dump

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"
)

func TestMissingGrants(t *testing.T) {
	const acct = "`bk`@`%`"
	base := []string{
		"GRANT USAGE ON *.* TO " + acct,
		"GRANT SELECT, SHOW VIEW ON `shop`.* TO " + acct,
	}
	tests := []struct {
		name   string
		flavor string
		lines  []string
		want   []string // the object kinds reported missing for `shop`
	}{
		{"none", FlavorMariaDB, nil, []string{"triggers", "events", "routines"}},
		{"documented", FlavorMariaDB, []string{"GRANT SELECT, SHOW VIEW, TRIGGER, EVENT ON `shop`.* TO " + acct, "GRANT SELECT ON `mysql`.`proc` TO " + acct}, nil},
		{"global", FlavorMariaDB, []string{"GRANT SELECT, TRIGGER, EVENT ON *.* TO " + acct}, nil},
		{"all privileges", FlavorMariaDB, []string{"GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION"}, nil},
		{"mysql database", FlavorMariaDB, []string{"GRANT TRIGGER ON `shop`.* TO " + acct, "GRANT SELECT ON `mysql`.* TO " + acct}, []string{"events"}},
		{"pattern", FlavorMariaDB, []string{"GRANT TRIGGER, EVENT ON `sh%`.* TO " + acct}, []string{"routines"}},
		{"pattern not matching", FlavorMariaDB, []string{"GRANT TRIGGER, EVENT ON `sh\\_%`.* TO " + acct, "GRANT TRIGGER ON `s_op`.* TO " + acct}, []string{"events", "routines"}},
		// The exact database grant is the one the server applies; the pattern's is hidden.
		{"pattern hidden by exact name", FlavorMariaDB, append(base, "GRANT TRIGGER, EVENT ON `sh%`.* TO "+acct), []string{"triggers", "events", "routines"}},
		{"role", FlavorMariaDB, append(base, "GRANT `r` TO "+acct, "GRANT TRIGGER, EVENT ON `shop`.* TO `r`", "GRANT SELECT ON `mysql`.`proc` TO `r`"), nil},
		{"nested role", FlavorMariaDB, append(base, "GRANT `r1` TO "+acct, "GRANT `r2` TO `r1`", "GRANT EVENT ON `shop`.* TO `r2`", "GRANT TRIGGER ON *.* TO `r1`"), []string{"routines"}},
		{"public", FlavorMariaDB, append(base, "GRANT TRIGGER ON `shop`.* TO PUBLIC"), []string{"events", "routines"}},
		{"table-level TRIGGER is not enough", FlavorMariaDB, append(base, "GRANT TRIGGER ON `shop`.`t` TO "+acct), []string{"triggers", "events", "routines"}},
		{"column privileges", FlavorMariaDB, []string{"GRANT SELECT (`a`, `b`), INSERT (`c`) ON `mysql`.`proc` TO " + acct}, []string{"triggers", "events", "routines"}},
		{"routine grant", FlavorMariaDB, []string{"GRANT EXECUTE ON PROCEDURE `shop`.`p` TO " + acct}, []string{"triggers", "events", "routines"}},
		{"mysql show_routine", FlavorMySQL, []string{"GRANT TRIGGER, EVENT ON `shop`.* TO " + acct, "GRANT SHOW_ROUTINE ON *.* TO " + acct}, nil},
		{"mysql proc is not mysql 8's", FlavorMySQL, []string{"GRANT TRIGGER, EVENT ON `shop`.* TO " + acct, "GRANT SELECT ON `mysql`.`proc` TO " + acct}, []string{"routines"}},
		{"mysql partial revoke", FlavorMySQL, []string{"GRANT SELECT, TRIGGER, EVENT ON *.* TO " + acct, "REVOKE TRIGGER ON `shop`.* FROM " + acct}, []string{"triggers"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := missingGrants(parseGrants(tc.lines), tc.flavor, []string{"shop"}, "'bk'@'%'")
			var got []string
			if err != nil {
				for _, kind := range []string{"triggers", "events", "routines"} {
					if strings.Contains(err.Error(), "cannot see "+kind+" of `shop`") {
						got = append(got, kind)
					}
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("missing kinds: got %v, want %v (error: %v)", got, tc.want, err)
			}
		})
	}
}

func TestMissingGrantsMessage(t *testing.T) {
	err := missingGrants(parseGrants(nil), FlavorMariaDB, []string{"shop"}, "'bk'@'%'")
	for _, want := range []string{
		"the account cannot see triggers of `shop`: GRANT TRIGGER ON `shop`.* TO 'bk'@'%'",
		"the account cannot see events of `shop`: GRANT EVENT ON `shop`.* TO 'bk'@'%'",
		"the account cannot see routines of `shop`: GRANT SELECT ON mysql.proc TO 'bk'@'%'",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error: got %v, want it to contain %q", err, want)
		}
	}
}

// TestCheckVisibility runs dumps as accounts holding the privileges globally, on the database,
// through a default role, and without one of them, over a database whose trigger, event and
// procedure another account defined (so the server hides them from an account without the
// privilege).
func TestCheckVisibility(t *testing.T) {
	root, dsn := openRoot(t)
	db := uniqueName("bk_vis")
	dropDatabaseLater(t, root, db)
	q := QuoteIdent(db)
	for _, s := range []string{
		"CREATE DATABASE " + q,
		"CREATE TABLE " + q + ".t (a INT PRIMARY KEY)",
		"CREATE TRIGGER " + q + ".trg BEFORE INSERT ON " + q + ".t FOR EACH ROW SET @x = 1",
		"CREATE EVENT " + q + ".ev ON SCHEDULE EVERY 1 DAY DISABLE DO SELECT 1",
		"CREATE PROCEDURE " + q + ".p() SELECT 1",
	} {
		mustExec(t, root, s)
	}
	all := "TRIGGER, EVENT"
	tests := []struct {
		name   string
		grants []string // @db and @user are replaced
		role   []string // granted to a role that is the account's default role
		want   string   // "" for success
	}{
		{"global", []string{"GRANT SELECT, SHOW VIEW, " + all + " ON *.* TO @user"}, nil, ""},
		{"database", []string{"GRANT SELECT, SHOW VIEW, " + all + " ON @db.* TO @user", "GRANT SELECT ON mysql.proc TO @user"}, nil, ""},
		{"role", []string{"GRANT SELECT, SHOW VIEW ON @db.* TO @user"}, []string{"GRANT " + all + " ON @db.* TO @role", "GRANT SELECT ON mysql.* TO @role"}, ""},
		{"without TRIGGER", []string{"GRANT SELECT, SHOW VIEW, EVENT ON @db.* TO @user", "GRANT SELECT ON mysql.proc TO @user"}, nil, "the account cannot see triggers of " + q + ": GRANT TRIGGER ON " + q + ".* TO '"},
		{"without EVENT", []string{"GRANT SELECT, SHOW VIEW, TRIGGER ON @db.* TO @user", "GRANT SELECT ON mysql.proc TO @user"}, nil, "the account cannot see events of " + q + ": GRANT EVENT ON " + q + ".* TO '"},
		{"without mysql.proc", []string{"GRANT SELECT, SHOW VIEW, " + all + " ON @db.* TO @user"}, nil, "the account cannot see routines of " + q + ": GRANT SELECT ON mysql.proc TO '"},
		{"role not enabled", []string{"GRANT SELECT, SHOW VIEW, EVENT ON @db.* TO @user", "GRANT SELECT ON mysql.proc TO @user"}, []string{"GRANT TRIGGER ON @db.* TO @role", "-"}, "cannot see triggers of " + q},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			user, role := uniqueName("bk_vis_u"), uniqueName("bk_vis_r")
			account := fmt.Sprintf("'%s'@'%%'", user)
			mustExec(t, root, "CREATE USER "+account+" IDENTIFIED BY 'vis-test-pw'")
			t.Cleanup(func() { root.Exec("DROP USER IF EXISTS " + account) })
			r := strings.NewReplacer("@db", q, "@user", account, "@role", QuoteIdent(role))
			for _, g := range tc.grants {
				mustExec(t, root, r.Replace(g))
			}
			if tc.role != nil {
				mustExec(t, root, "CREATE ROLE "+QuoteIdent(role))
				t.Cleanup(func() { root.Exec("DROP ROLE IF EXISTS " + QuoteIdent(role)) })
				setDefault := true
				for _, g := range tc.role {
					if g == "-" {
						setDefault = false
						continue
					}
					mustExec(t, root, r.Replace(g))
				}
				mustExec(t, root, "GRANT "+QuoteIdent(role)+" TO "+account)
				if setDefault {
					mustExec(t, root, "SET DEFAULT ROLE "+QuoteIdent(role)+" FOR "+account)
				}
			}
			cfg, err := mysql.ParseDSN(dsn)
			if err != nil {
				t.Fatal(err)
			}
			cfg.User, cfg.Passwd = user, "vis-test-pw"
			dir := t.TempDir()
			res, err := Run(context.Background(), Options{DSN: cfg.FormatDSN(), Databases: []string{db}, Threads: 1}, DirSink{Dir: dir})
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("dump: got error %v, want one containing %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatalf("dump: %v", err)
			}
			// The check passed: the dump must indeed hold every object.
			kinds := map[string]int{}
			for _, o := range res.Databases[0].Objects {
				kinds[o.Kind]++
			}
			for _, k := range []string{KindTrigger, KindEvent, KindProcedure} {
				if kinds[k] != 1 {
					t.Errorf("%s objects in the dump: got %d, want 1", k, kinds[k])
				}
			}
		})
	}
}
