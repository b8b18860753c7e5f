package restore

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/backupd/backupd/internal/dump"
	"github.com/backupd/backupd/internal/humanize"
)

// testDump is a set with two databases: "shop" (tables orders and users, a view, a trigger on
// orders, a procedure, an event) and "my.db" (a dotted name, one table t).
func testDump() *dump.Result {
	obj := func(key, kind, phase, name, table string) dump.Object {
		return dump.Object{Key: key, Kind: kind, Phase: phase, Name: name, Table: table, Bytes: 10}
	}
	return &dump.Result{
		Databases: []dump.Database{
			{Name: "my.db", Charset: "utf8mb4", Collation: "utf8mb4_bin", Objects: []dump.Object{
				obj("my.db/database.sql", dump.KindDatabase, dump.PhaseSchema, "", ""),
				obj("my.db/tables/t.sql", dump.KindTable, dump.PhaseSchema, "t", ""),
				obj("my.db/data/t/00001.sql", dump.KindData, dump.PhaseData, "t", ""),
			}, Tables: []dump.Table{{Name: "t", Type: dump.TypeTable, Rows: 1, Checksum: "bk1:x"}}},
			{Name: "shop", Charset: "utf8mb4", Collation: "utf8mb4_unicode_ci", Objects: []dump.Object{
				obj("shop/database.sql", dump.KindDatabase, dump.PhaseSchema, "", ""),
				obj("shop/sequences/s.sql", dump.KindSequence, dump.PhaseSchema, "s", ""),
				obj("shop/tables/orders.sql", dump.KindTable, dump.PhaseSchema, "orders", ""),
				obj("shop/tables/users.sql", dump.KindTable, dump.PhaseSchema, "users", ""),
				obj("shop/tables/_backupd_restore_incomplete.sql", dump.KindTable, dump.PhaseSchema, MarkerTable, ""),
				obj("shop/data/orders/00001.sql", dump.KindData, dump.PhaseData, "orders", ""),
				obj("shop/data/orders/00002.sql", dump.KindData, dump.PhaseData, "orders", ""),
				obj("shop/data/users/00001.sql", dump.KindData, dump.PhaseData, "users", ""),
				obj("shop/procedures/p.sql", dump.KindProcedure, dump.PhasePost, "p", ""),
				obj("shop/views/v.sql", dump.KindView, dump.PhasePost, "v", ""),
				obj("shop/triggers/trg.sql", dump.KindTrigger, dump.PhasePost, "trg", "orders"),
				obj("shop/events/e.sql", dump.KindEvent, dump.PhasePost, "e", ""),
			}, Tables: []dump.Table{
				{Name: "s", Type: dump.TypeSequence},
				{Name: "orders", Type: dump.TypeTable, Rows: 2},
				{Name: "users", Type: dump.TypeTable, Rows: 1},
				{Name: MarkerTable, Type: dump.TypeTable},
				{Name: "v", Type: dump.TypeView},
			}},
		},
		Users: &dump.Object{Key: "@global/users.sql", Kind: dump.KindUsers, Phase: dump.PhaseUsers},
	}
}

// describe summarises a selection as "dest<-source whole|part: keys".
func describe(dbs []DatabasePlan) []string {
	var out []string
	for _, d := range dbs {
		var keys []string
		for _, list := range [][]dump.Object{d.Schema, d.Data, d.Post} {
			for _, o := range list {
				keys = append(keys, strings.TrimPrefix(o.Key, d.Source+"/"))
			}
		}
		what := "part"
		if d.Whole {
			what = "whole"
		}
		out = append(out, fmt.Sprintf("%s<-%s %s: %s", d.Dest, d.Source, what, strings.Join(keys, " ")))
	}
	return out
}

func TestSelectObjects(t *testing.T) {
	shopAll := "database.sql sequences/s.sql tables/orders.sql tables/users.sql data/orders/00001.sql data/orders/00002.sql data/users/00001.sql procedures/p.sql views/v.sql triggers/trg.sql events/e.sql"
	shopRenamed := strings.TrimPrefix(shopAll, "database.sql ")
	for _, tc := range []struct {
		name      string
		sel       Selection
		want      []string
		wantUsers bool
		wantErr   string
	}{
		{"everything", Selection{}, []string{
			"my.db<-my.db whole: database.sql tables/t.sql data/t/00001.sql",
			"shop<-shop whole: " + shopAll}, false, ""},
		{"one database", Selection{Database: "shop"}, []string{"shop<-shop whole: " + shopAll}, false, ""},
		{"renamed: no database object", Selection{Database: "shop", As: "shop2"}, []string{"shop2<-shop whole: " + shopRenamed}, false, ""},
		{"tables with their triggers", Selection{Tables: []string{"shop.orders", "my.db.t"}}, []string{
			"my.db<-my.db part: tables/t.sql data/t/00001.sql",
			"shop<-shop part: tables/orders.sql data/orders/00001.sql data/orders/00002.sql triggers/trg.sql"}, false, ""},
		{"a view and a sequence", Selection{Tables: []string{"shop.v", "shop.s"}}, []string{"shop<-shop part: sequences/s.sql views/v.sql"}, false, ""},
		{"unqualified table of the one database", Selection{Database: "shop", Tables: []string{"users"}}, []string{"shop<-shop part: tables/users.sql data/users/00001.sql"}, false, ""},
		{"table named by the --as name", Selection{Database: "shop", As: "shop2", Tables: []string{"shop2.users"}}, []string{"shop2<-shop part: tables/users.sql data/users/00001.sql"}, false, ""},
		{"users", Selection{Database: "my.db", Users: true}, []string{"my.db<-my.db whole: database.sql tables/t.sql data/t/00001.sql"}, true, ""},
		{"unknown database", Selection{Database: "nope"}, nil, false, `database "nope" is not in the set; it holds: ` + "`my.db`, `shop`"},
		{"--as with two databases", Selection{As: "x"}, nil, false, "--as needs one database"},
		{"--as a system database", Selection{Database: "shop", As: "mysql"}, nil, false, "system database"},
		{"unknown table", Selection{Tables: []string{"shop.nope"}}, nil, false, "`nope` is not a table, view or sequence of database `shop`"},
		{"the marker is not a table to restore", Selection{Tables: []string{"shop." + MarkerTable}}, nil, false, "is not a table"},
		{"unqualified table, two databases", Selection{Tables: []string{"orders"}}, nil, false, "qualify it with its database"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dbs, users, _, err := selectObjects(testDump(), tc.sel)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, ErrSelection) {
					t.Fatalf("got error %v, want ErrSelection containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := describe(dbs)
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			if (users != nil) != tc.wantUsers {
				t.Errorf("users: got %v, want %v", users != nil, tc.wantUsers)
			}
		})
	}
}

func TestConflicts(t *testing.T) {
	dbs, _, _, err := selectObjects(testDump(), Selection{Database: "shop"})
	if err != nil {
		t.Fatal(err)
	}
	dp := &dbs[0]
	for _, tc := range []struct {
		name  string
		inv   inventory
		lower bool
		want  string
	}{
		{"no database", inventory{}, false, ""},
		{"empty database", inventory{exists: true}, false, ""},
		{"other tables only", inventory{exists: true, tables: map[string]string{"logs": "BASE TABLE"}}, false, ""},
		{"same names of every kind", inventory{exists: true,
			tables:   map[string]string{"orders": "BASE TABLE", "v": "VIEW", "s": "SEQUENCE", "logs": "BASE TABLE"},
			routines: map[string]string{"PROCEDURE p": "P"}, triggers: map[string]string{"trg": "orders"}, events: map[string]bool{"e": true}},
			false, "view `shop`.`v`, trigger `shop`.`trg`, event `shop`.`e`, procedure `shop`.`P`, table `shop`.`orders`, sequence `shop`.`s`"},
		{"a view where a table was", inventory{exists: true, tables: map[string]string{"users": "VIEW"}}, false, "view `shop`.`users`"},
		{"case-insensitive names", inventory{exists: true, tables: map[string]string{"ORDERS": "BASE TABLE"}}, true, "table `shop`.`ORDERS`"},
		{"case-sensitive names", inventory{exists: true, tables: map[string]string{"ORDERS": "BASE TABLE"}}, false, ""},
		{"an earlier restore's marker", inventory{exists: true, tables: map[string]string{MarkerTable: "BASE TABLE"}, marker: "set X: failed"},
			false, "`shop`.`_backupd_restore_incomplete` (an unfinished restore: set X: failed)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, e := range conflicts(dp, &tc.inv, tc.lower) {
				got = append(got, e.String())
			}
			if g := strings.Join(got, ", "); g != tc.want {
				t.Errorf("got %q, want %q", g, tc.want)
			}
		})
	}
}

func TestSplitSecondaryIndexes(t *testing.T) {
	const orders = "CREATE TABLE `orders` (\n" +
		"  `id` bigint(20) unsigned NOT NULL AUTO_INCREMENT,\n" +
		"  `user_id` bigint(20) unsigned NOT NULL,\n" +
		"  `email` varchar(255) NOT NULL,\n" +
		"  PRIMARY KEY (`id`),\n" +
		"  UNIQUE KEY `email` (`email`),\n" +
		"  KEY `orders_user_id` (`user_id`) COMMENT 'by user',\n" +
		"  FULLTEXT KEY `ft` (`email`)\n" +
		") ENGINE=InnoDB AUTO_INCREMENT=5 DEFAULT CHARSET=utf8mb4"
	for _, tc := range []struct {
		name     string
		stmt     string
		wantStmt string // "" means unchanged
		wantDefs []string
	}{
		{"plain and unique keys deferred, fulltext kept", orders,
			"CREATE TABLE `orders` (\n  `id` bigint(20) unsigned NOT NULL AUTO_INCREMENT,\n  `user_id` bigint(20) unsigned NOT NULL,\n  `email` varchar(255) NOT NULL,\n  PRIMARY KEY (`id`),\n  FULLTEXT KEY `ft` (`email`)\n) ENGINE=InnoDB AUTO_INCREMENT=5 DEFAULT CHARSET=utf8mb4",
			[]string{"UNIQUE KEY `email` (`email`)", "KEY `orders_user_id` (`user_id`) COMMENT 'by user'"}},
		{"last item a key: no dangling comma",
			"CREATE TABLE `t` (\n  `id` int(11) NOT NULL,\n  `v` int(11) DEFAULT NULL,\n  PRIMARY KEY (`id`),\n  KEY `v` (`v`)\n) ENGINE=InnoDB",
			"CREATE TABLE `t` (\n  `id` int(11) NOT NULL,\n  `v` int(11) DEFAULT NULL,\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB",
			[]string{"KEY `v` (`v`)"}},
		{"no primary key", "CREATE TABLE `t` (\n  `v` int(11) DEFAULT NULL,\n  KEY `v` (`v`)\n) ENGINE=InnoDB", "", nil},
		{"not InnoDB", "CREATE TABLE `t` (\n  `id` int(11) NOT NULL,\n  `v` int(11),\n  PRIMARY KEY (`id`),\n  KEY `v` (`v`)\n) ENGINE=MyISAM", "", nil},
		{"foreign key", "CREATE TABLE `t` (\n  `id` int(11) NOT NULL,\n  `p` int(11),\n  PRIMARY KEY (`id`),\n  KEY `p` (`p`),\n  CONSTRAINT `f` FOREIGN KEY (`p`) REFERENCES `x` (`id`)\n) ENGINE=InnoDB", "", nil},
		{"auto_increment not leading the primary key",
			"CREATE TABLE `t` (\n  `a` int(11) NOT NULL,\n  `id` int(11) NOT NULL AUTO_INCREMENT,\n  PRIMARY KEY (`a`,`id`),\n  KEY `id` (`id`)\n) ENGINE=InnoDB", "", nil},
		{"partitioned", "CREATE TABLE `t` (\n  `id` int(11) NOT NULL,\n  `v` int(11),\n  PRIMARY KEY (`id`),\n  KEY `v` (`v`)\n) ENGINE=InnoDB\n PARTITION BY HASH (`id`)\nPARTITIONS 2", "", nil},
		{"system versioned", "CREATE TABLE `t` (\n  `id` int(11) NOT NULL,\n  `v` int(11),\n  PRIMARY KEY (`id`),\n  KEY `v` (`v`)\n) ENGINE=InnoDB WITH SYSTEM VERSIONING", "", nil},
		{"long unique (hash) kept", "CREATE TABLE `t` (\n  `id` int(11) NOT NULL,\n  `b` blob,\n  PRIMARY KEY (`id`),\n  UNIQUE KEY `b` (`b`) USING HASH\n) ENGINE=InnoDB", "", nil},
		{"a column name with a line break", "CREATE TABLE `t` (\n  `id` int(11) NOT NULL,\n  `a\nb` int(11),\n  PRIMARY KEY (`id`),\n  KEY `k` (`id`)\n) ENGINE=InnoDB", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, d := splitSecondaryIndexes([]byte(tc.stmt))
			want := tc.wantStmt
			if want == "" {
				want = tc.stmt
			}
			if string(got) != want {
				t.Errorf("statement:\n got %s\nwant %s", got, want)
			}
			var defs []string
			if d != nil {
				defs = d.defs
			}
			if strings.Join(defs, "|") != strings.Join(tc.wantDefs, "|") {
				t.Errorf("deferred: got %q, want %q", defs, tc.wantDefs)
			}
		})
	}
}

func TestOneLine(t *testing.T) {
	inner := errors.Join(errors.New("target a: refused"), errors.New("target b: gone"))
	err := humanize.OneLine(withKind(ErrUnreachable, fmt.Errorf("no target: %w", inner)))
	if got, want := err.Error(), "no target: target a: refused; target b: gone"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if !errors.Is(err, ErrUnreachable) {
		t.Errorf("OneLine lost the error kind")
	}
}

func TestDataJobsInterleaveTablesLargestFirst(t *testing.T) {
	dp := DatabasePlan{Source: "d", Dest: "d"}
	add := func(table string, n int, bytes int64) {
		for i := 1; i <= n; i++ {
			dp.Data = append(dp.Data, dump.Object{Key: fmt.Sprintf("d/data/%s/%05d.sql", table, i), Kind: dump.KindData, Name: table, Bytes: bytes})
		}
	}
	add("small", 1, 5)
	add("big", 3, 100)
	add("mid", 2, 60)
	p := &Plan{Databases: []DatabasePlan{dp}}
	tables := map[string]*tableState{}
	for _, n := range []string{"small", "big", "mid"} {
		tables[tableKey("d", n)] = &tableState{}
	}
	var got []string
	for _, j := range p.dataJobs(tables) {
		got = append(got, strings.TrimPrefix(j.obj.Key, "d/data/"))
	}
	want := "big/00001.sql mid/00001.sql small/00001.sql big/00002.sql mid/00002.sql big/00003.sql"
	if strings.Join(got, " ") != want {
		t.Errorf("got %s, want %s", strings.Join(got, " "), want)
	}
}

func TestCheckPacket(t *testing.T) {
	for _, tc := range []struct {
		stmt, allowed int64
		wantErr       string
	}{
		{1 << 20, 16 << 20, ""},
		{16<<20 - 1024, 16 << 20, ""},
		{16 << 20, 16 << 20, "SET GLOBAL max_allowed_packet = 17825792"},
		{100 << 20, 64 << 20, "statements of up to 104857600 bytes but the destination's max_allowed_packet is 67108864"},
	} {
		err := checkPacket(tc.stmt, tc.allowed)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("checkPacket(%d, %d): got %v, want nil", tc.stmt, tc.allowed, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, ErrDestination)):
			t.Errorf("checkPacket(%d, %d): got %v, want ErrDestination containing %q", tc.stmt, tc.allowed, err, tc.wantErr)
		}
	}
}
