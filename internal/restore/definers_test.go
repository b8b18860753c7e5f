package restore

import (
	"context"
	"database/sql"
	"errors"
	"testing"

	"github.com/go-sql-driver/mysql"

	"github.com/backupd/backupd/internal/dump"
	"github.com/backupd/backupd/internal/testenv"
)

// TestDefinerRule on the real server: a restoring account with a few global privileges keeps
// definers that hold no more, and refuses one (root) that would give an object privileges it
// does not have itself.
func TestDefinerRule(t *testing.T) {
	dsn := testenv.MariaDBDSN(t)
	root, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	restorer, app := testenv.UniqueName("w_rs"), testenv.UniqueName("w_app")
	for _, q := range []string{
		"CREATE USER '" + restorer + "'@'%' IDENTIFIED BY 'pw'",
		"GRANT SELECT, CREATE ROUTINE, SET USER ON *.* TO '" + restorer + "'@'%'",
		"CREATE USER '" + app + "'@'%'",
		"GRANT SELECT ON *.* TO '" + app + "'@'%'",
	} {
		if _, err := root.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	t.Cleanup(func() {
		root.Exec("DROP USER IF EXISTS '" + restorer + "'@'%'")
		root.Exec("DROP USER IF EXISTS '" + app + "'@'%'")
	})
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.User, cfg.Passwd = restorer, "pw"
	ctx := context.Background()
	dest, err := openDestination(ctx, cfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer dest.Close()
	conn, err := dest.session(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	p := &Plan{}
	o := dump.Object{Key: "shop/procedures/p.sql", Kind: dump.KindProcedure, Name: "p"}
	for _, tc := range []struct {
		d      definer
		refuse bool
	}{
		{definer{current: true}, false},
		{definer{user: restorer, host: "%"}, false},
		{definer{user: app, host: "%"}, false},           // SELECT only: the restorer has it
		{definer{user: "nobody_here", host: "%"}, false}, // does not exist
		{definer{user: "root", host: "localhost"}, true}, // ALL PRIVILEGES
	} {
		err := p.checkDefiners(ctx, conn, o, []definer{tc.d})
		if got := errors.Is(err, ErrRefused); got != tc.refuse {
			t.Errorf("definer %s: got %v, want refused %v", tc.d, err, tc.refuse)
		}
	}
}
