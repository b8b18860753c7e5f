package dump

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// TestIncludeUsers: roles, users and their grants (including one on a procedure) are dumped as
// one object; after dropping them, loading that object's statements brings back the same grants.
func TestIncludeUsers(t *testing.T) {
	db, dsn := openRoot(t)
	name := uniqueName("bk_users")
	dropDatabaseLater(t, db, name)
	mustExec(t, db, "CREATE DATABASE "+QuoteIdent(name))
	mustExec(t, db, "CREATE TABLE "+qualified(name, "t")+" (id INT PRIMARY KEY)")
	mustExec(t, db, "CREATE PROCEDURE "+qualified(name, "p")+"() SELECT 1")
	role, user := uniqueName("bk_role"), uniqueName("bk_user")
	acct := quoteString(user) + "@'%'"
	t.Cleanup(func() {
		db.Exec("DROP USER IF EXISTS " + acct)
		db.Exec("DROP ROLE IF EXISTS " + quoteString(role))
	})
	mustExec(t, db, "CREATE ROLE "+quoteString(role))
	mustExec(t, db, "GRANT SELECT ON "+QuoteIdent(name)+".* TO "+quoteString(role))
	mustExec(t, db, "CREATE USER "+acct+" IDENTIFIED BY 'not-in-the-result'")
	mustExec(t, db, "GRANT "+quoteString(role)+" TO "+acct)
	mustExec(t, db, "GRANT INSERT ON "+qualified(name, "t")+" TO "+acct)
	mustExec(t, db, "GRANT EXECUTE ON PROCEDURE "+qualified(name, "p")+" TO "+acct)
	mustExec(t, db, "SET DEFAULT ROLE "+quoteString(role)+" FOR "+acct)
	grants := func(who string) string {
		rows, err := db.Query("SHOW GRANTS FOR " + who)
		if err != nil {
			t.Fatalf("SHOW GRANTS FOR %s: %v", who, err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var g string
			rows.Scan(&g)
			out = append(out, g)
		}
		sort.Strings(out)
		return strings.Join(out, "\n")
	}
	beforeUser, beforeRole := grants(acct), grants(quoteString(role))

	res, dir := dumpToDir(t, Options{DSN: dsn, Databases: []string{name}, IncludeUsers: true})
	if res.Users == nil || res.Users.Key != usersObject || res.Users.Phase != PhaseUsers {
		t.Fatalf("Result.Users: got %+v, want the %s object", res.Users, usersObject)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "@global", "users.sql")); !bytes.Contains(b, []byte(user)) || bytes.Contains(b, []byte("`root`@`localhost`")) {
		t.Fatalf("users object: want %s and no root account in it:\n%s", user, b)
	}

	mustExec(t, db, "DROP USER "+acct)
	mustExec(t, db, "DROP ROLE "+quoteString(role))
	// Load only this test's statements: the object holds every account on the shared server.
	f, err := os.Open(filepath.Join(dir, "@global", "users.sql"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	err = ReadStatements(f, func(s []byte) error {
		if bytes.HasPrefix(s, []byte("SET ")) || bytes.Contains(s, []byte(user)) || bytes.Contains(s, []byte(role)) {
			_, err := db.ExecContext(context.Background(), string(s))
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatalf("load the users object: %v", err)
	}
	if got := grants(acct); got != beforeUser {
		t.Errorf("grants of the user after loading:\n got %s\nwant %s", got, beforeUser)
	}
	if got := grants(quoteString(role)); got != beforeRole {
		t.Errorf("grants of the role after loading:\n got %s\nwant %s", got, beforeRole)
	}
}
