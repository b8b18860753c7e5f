package main

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"

	"github.com/backupd/backupd/internal/testenv"
)

// The least-privilege grants docs/security.md documents, one list per role; @db stands for the
// database (or, for the drill, the pattern of the scratch databases). TestGrantsLeastPrivilege
// runs backup, restore --as and a DSN-scratch drill with exactly these over a database holding
// every object kind, and shows that each role fails clearly without one of them.
var (
	backupGrants = []string{
		"GRANT SELECT, SHOW VIEW, TRIGGER, EVENT ON @db.* TO @user",
		// BACKUP STAGE, for a consistent dump over several connections.
		"GRANT RELOAD ON *.* TO @user",
		// SHOW CREATE PROCEDURE/FUNCTION of routines another account defined.
		"GRANT SELECT ON mysql.proc TO @user",
	}
	// restoreDBPrivileges are granted on the database restored (and for the drill on the
	// scratch databases' pattern): each is needed, as the test shows by revoking it.
	restoreDBPrivileges = []string{"CREATE", "DROP", "ALTER", "INSERT", "SELECT", "CREATE VIEW", "CREATE ROUTINE", "TRIGGER", "EVENT"}
	restoreGrants       = []string{
		"GRANT " + strings.Join(restoreDBPrivileges, ", ") + " ON @db.* TO @user",
		// Objects keep their DEFINER, and the definer rule compares the definer's global
		// privileges with the restoring account's (SHOW GRANTS FOR another account).
		"GRANT SET USER ON *.* TO @user",
		"GRANT SELECT ON mysql.* TO @user",
	}
)

// grantAccount creates a fresh account @user with password and the grants, @db replaced by db;
// it returns a DSN for it built from the test server's admin DSN.
func grantAccount(t *testing.T, admin, prefix, db string, grants []string) (dsn, user string) {
	t.Helper()
	user = testenv.UniqueName(prefix)
	account := fmt.Sprintf("'%s'@'%%'", user)
	conn := testenv.OpenDB(t, admin)
	if _, err := conn.Exec("CREATE USER " + account + " IDENTIFIED BY 'grants-test-pw'"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Exec("DROP USER IF EXISTS " + account) })
	for _, g := range grants {
		stmt := strings.NewReplacer("@db", db, "@user", account).Replace(g)
		if _, err := conn.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	cfg, err := mysql.ParseDSN(admin)
	if err != nil {
		t.Fatal(err)
	}
	cfg.User, cfg.Passwd = user, "grants-test-pw"
	return cfg.FormatDSN(), user
}

// revoke runs a REVOKE (or GRANT) statement for @user as the admin.
func revoke(t *testing.T, admin, user, stmt string) {
	t.Helper()
	s := strings.ReplaceAll(stmt, "@user", fmt.Sprintf("'%s'@'%%'", user))
	if _, err := testenv.OpenDB(t, admin).Exec(s); err != nil {
		t.Fatalf("%s: %v", s, err)
	}
}

func TestGrantsLeastPrivilege(t *testing.T) {
	admin := testenv.MariaDBDSN(t)
	src := testenv.UniqueName("bk_grants")
	testenv.DropDatabaseLater(t, admin, src)
	fixture, err := os.ReadFile(filepath.Join("testdata", "allobjects.sql"))
	if err != nil {
		t.Fatal(err)
	}
	// The fixture is loaded by the application's account, so the objects are defined by it
	// (its explicit root definers replaced too), as in a database a least-privilege account
	// can restore: a definer with global privileges the restoring account lacks is refused by
	// design (restore as an admin then). SET USER only for the fixture's ghost definer.
	appDSN, appUser := grantAccount(t, admin, "bk_app", "`"+src+"`", []string{"GRANT ALL ON @db.* TO @user", "GRANT SET USER ON *.* TO @user"})
	fixture = bytes.ReplaceAll(fixture, []byte("`root`@`localhost`"), []byte("`"+appUser+"`@`%`"))
	testenv.MariaDBCLI(t, appDSN, bytes.ReplaceAll(fixture, []byte("`bk_allobj`"), []byte(quoteIdent(src))))
	revoke(t, admin, appUser, "REVOKE SET USER ON *.* FROM @user")
	// A view with SQL SECURITY DEFINER is checked against its definer's rights when a view on
	// it is created: under another name (restore --as, a DSN scratch's drill_… databases) the
	// definer needs SELECT there too, or the load fails with Error 1356.
	revoke(t, admin, appUser, "GRANT SELECT, EXECUTE ON `drill\\_%`.* TO @user")

	backupDSN, backupUser := grantAccount(t, admin, "bk_b", "`"+src+"`", backupGrants)
	drillDSN, _ := grantAccount(t, admin, "bk_d", "`drill\\_%`", restoreGrants)
	drillTempDir(t)
	keyFile, pub := testKey(t)
	policy := testenv.UniqueName("gr")
	base := t.TempDir()
	cfg := writeConfig(t, fmt.Sprintf(`
state_dir: %[1]s/state
targets:
  local: {type: dir, path: %[1]s/target}
encryption:
  recipients: [%[2]s]
  identity_file: %[3]s
policies:
  %[4]s:
    schedule: "@daily"
    mysql:
      dsn: %[5]s
      databases: [%[6]s]
      threads: 2
    targets: [local]
    drill:
      scratch: {dsn: %[7]s}
`, base, pub, keyFile, policy, yamlString(backupDSN), src, yamlString(drillDSN)))

	code, out, errOut := runCLI(t, "backup", "--config", cfg, "--policy", policy)
	if code != 0 {
		t.Fatalf("backup with the documented grants: exit %d\n%s\n%s", code, out, errOut)
	}
	if strings.Contains(errOut, "may not run") {
		t.Errorf("backup with the documented grants fell back to a single connection:\n%s", errOut)
	}

	t.Run("restore", func(t *testing.T) {
		dest := testenv.UniqueName("bk_grants_copy")
		testenv.DropDatabaseLater(t, admin, dest)
		restoreDSN, restoreUser := grantAccount(t, admin, "bk_r", "`"+dest+"`", restoreGrants)
		revoke(t, admin, appUser, "GRANT SELECT, EXECUTE ON `"+dest+"`.* TO @user")
		code, out, errOut := runCLI(t, "restore", "--config", cfg, "--policy", policy, "--to", restoreDSN, "--as", dest, "--yes")
		if code != 0 {
			t.Fatalf("restore with the documented grants: exit %d\n%s\n%s", code, out, errOut)
		}
		want, got := objectsOf(t, admin, src), objectsOf(t, admin, dest)
		for _, q := range objectQueries {
			if got[q.name] != want[q.name] {
				t.Errorf("%s after the restore:\n got %s\nwant %s", q.name, got[q.name], want[q.name])
			}
		}
		// Each documented grant: without it, the restore fails and says what was denied.
		type revocation struct{ grant, on, want string }
		revocations := []revocation{
			{"SET USER", "*.*", "SET USER"},            // objects keep another account's DEFINER
			{"SELECT", "mysql.*", "cannot be checked"}, // the definer rule reads other accounts' grants
		}
		for _, p := range restoreDBPrivileges {
			revocations = append(revocations, revocation{p, "@db", "denied"})
		}
		for _, tc := range revocations {
			dest := testenv.UniqueName("bk_grants_rv")
			if tc.on == "@db" {
				tc.on = "`" + dest + "`.*"
			}
			testenv.DropDatabaseLater(t, admin, dest)
			for _, g := range restoreGrants {
				if strings.Contains(g, "@db") {
					revoke(t, admin, restoreUser, strings.ReplaceAll(g, "@db", "`"+dest+"`"))
				}
			}
			revoke(t, admin, appUser, "GRANT SELECT, EXECUTE ON `"+dest+"`.* TO @user")
			revoke(t, admin, restoreUser, "REVOKE "+tc.grant+" ON "+tc.on+" FROM @user")
			code, out, errOut := runCLI(t, "restore", "--config", cfg, "--policy", policy, "--to", restoreDSN, "--as", dest, "--yes")
			if code == 0 || !strings.Contains(out+errOut, tc.want) {
				t.Errorf("restore without %s ON %s: exit %d, want a failure saying %q\n%s\n%s", tc.grant, tc.on, code, tc.want, out, errOut)
			}
			revoke(t, admin, restoreUser, "GRANT "+tc.grant+" ON "+tc.on+" TO @user")
		}
	})

	t.Run("drill", func(t *testing.T) {
		code, out, errOut := runCLI(t, "drill", "--config", cfg, "--policy", policy)
		if code != 0 {
			t.Errorf("drill with the documented grants: exit %d\n%s\n%s", code, out, errOut)
		}
	})

	// Without SHOW VIEW, TRIGGER, EVENT or SELECT on mysql.proc the backup fails clearly, naming
	// the grant to add, and commits nothing (the server would otherwise hide the triggers,
	// events or routines from the dump); without RELOAD it takes the documented fallback to one
	// connection.
	quoted := "`" + src + "`"
	for _, tc := range []struct {
		grant, on, want string
		ok              bool
	}{
		{"SHOW VIEW", quoted + ".*", "SHOW VIEW", false},
		{"TRIGGER", quoted + ".*", "the account cannot see triggers of " + quoted + ": GRANT TRIGGER ON " + quoted + ".* TO '" + backupUser + "'@'%'", false},
		{"EVENT", quoted + ".*", "the account cannot see events of " + quoted + ": GRANT EVENT ON " + quoted + ".* TO '" + backupUser + "'@'%'", false},
		{"SELECT", "mysql.proc", "the account cannot see routines of " + quoted + ": GRANT SELECT ON mysql.proc TO '" + backupUser + "'@'%'", false},
		{"RELOAD", "*.*", "grant RELOAD for parallel dumps", true},
	} {
		t.Run("backup without "+tc.grant+" on "+tc.on, func(t *testing.T) {
			before := filesUnder(t, filepath.Join(base, "target"))
			revoke(t, admin, backupUser, "REVOKE "+tc.grant+" ON "+tc.on+" FROM @user")
			defer revoke(t, admin, backupUser, "GRANT "+tc.grant+" ON "+tc.on+" TO @user")
			code, out, errOut := runCLI(t, "backup", "--config", cfg, "--policy", policy)
			if (code == 0) != tc.ok || !strings.Contains(out+errOut, tc.want) {
				t.Errorf("backup without %s ON %s: exit %d, want success %v and %q\n%s\n%s", tc.grant, tc.on, code, tc.ok, tc.want, out, errOut)
			}
			if after := filesUnder(t, filepath.Join(base, "target")); !tc.ok && after != before {
				t.Errorf("backup without %s ON %s: files on the target: got %d, want %d (nothing uploaded or committed)", tc.grant, tc.on, after, before)
			}
		})
	}
}

// filesUnder counts the files in a directory tree.
func filesUnder(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(_ string, e fs.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			n++
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
