package shop_test

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"

	"github.com/backupd/backupd/internal/dump"
	"github.com/backupd/backupd/internal/testenv"
	"github.com/backupd/backupd/internal/testenv/shop"
)

func TestCountsFor(t *testing.T) {
	for _, tc := range []struct {
		scale float64
		want  shop.Counts
	}{
		{1, shop.Counts{Users: 500000, Orders: 4000000, Events: 1500000}},
		{0.1, shop.Counts{Users: 50000, Orders: 400000, Events: 150000}},
		{0.001, shop.Counts{Users: 500, Orders: 4000, Events: 1500}},
		{2.5, shop.Counts{Users: 1250000, Orders: 10000000, Events: 3750000}},
		{0.000001, shop.Counts{Users: 1, Orders: 4, Events: 1}},
		{1e-9, shop.Counts{Users: 1, Orders: 1, Events: 1}}, // at least one row each
	} {
		if got := shop.CountsFor(tc.scale); got != tc.want {
			t.Errorf("CountsFor(%v): got %+v, want %+v", tc.scale, got, tc.want)
		}
	}
}

func TestGenerateRefusesBadOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts shop.Options
		want string
	}{
		{"no database", shop.Options{DSN: "root@tcp(127.0.0.1:3306)/", Scale: 1}, "no database name"},
		{"zero scale", shop.Options{DSN: "root@tcp(127.0.0.1:3306)/", Database: "x", Scale: 0}, "want a number above 0"},
		{"negative scale", shop.Options{DSN: "root@tcp(127.0.0.1:3306)/", Database: "x", Scale: -1}, "want a number above 0"},
		{"bad DSN", shop.Options{DSN: "root@nonsense", Database: "x", Scale: 1}, "parse DSN"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := shop.Generate(context.Background(), tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// reference is the original bash+SQL generator's INSERT … SELECT statements (MariaDB's
// SEQUENCE engine), kept here only to prove that seed 0 reproduces its values exactly; its
// tables are made by Generate and emptied first, so the schema is the same by construction.
func reference(db string, c shop.Counts) []string {
	return []string{
		"TRUNCATE " + db + ".users", "TRUNCATE " + db + ".orders", "TRUNCATE " + db + ".events",
		"SET time_zone = '+00:00'",
		"USE " + db, // the SEQUENCE engine's seq_1_to_N tables exist in the current database
		fmt.Sprintf(`INSERT INTO %s.users (id,name,email,email_verified_at,password,remember_token,created_at,updated_at)
SELECT seq, CONCAT('User ', seq, ' Ñandú ✓'), CONCAT('user', seq, '@example.com'),
  IF(seq%%3=0, NULL, FROM_UNIXTIME(1600000000+seq)), CONCAT('$2y$10$', SHA2(seq,256)),
  IF(seq%%2=0, NULL, LEFT(MD5(seq),60)), FROM_UNIXTIME(1500000000+seq), FROM_UNIXTIME(1600000000+seq)
FROM seq_1_to_%d`, db, c.Users),
		fmt.Sprintf(`INSERT INTO %s.orders (id,user_id,status,total,currency,note,meta,created_at)
SELECT seq, 1+(seq*7919)%%%d, ELT(1+seq%%4,'pending','paid','shipped','refunded'), (seq%%100000)/100, 'EUR',
  IF(seq%%5=0, NULL, CONCAT('Note ', seq, ' with \'quotes\' and "double" and \\backslash\\ and newline\n and tab\t')),
  JSON_OBJECT('ip', CONCAT('10.0.', seq%%256, '.', seq%%250), 'ua', 'Mozilla/5.0', 'n', seq),
  FROM_UNIXTIME(1600000000 + seq*3, '%%Y-%%m-%%d %%H:%%i:%%s.123456')
FROM seq_1_to_%d`, db, c.Users, c.Orders),
		fmt.Sprintf(`INSERT INTO %s.events (id,subject_type,subject_id,payload,digest,happened_at)
SELECT seq, 'App\\Models\\Order', seq%%%d, REPEAT(CONCAT('{"k":', seq, ',"v":"', MD5(seq), '"}'), 8), UNHEX(SHA2(seq,256)), FROM_UNIXTIME(1600000000+seq)
FROM seq_1_to_%d`, db, c.Orders, c.Events),
	}
}

type sums map[string]dump.TableSum

func checksums(t *testing.T, db *sql.DB, name string) sums {
	t.Helper()
	s := sums{}
	for _, table := range []string{"users", "orders", "events"} {
		sum, err := dump.Checksum(context.Background(), db, name, table)
		if err != nil {
			t.Fatal(err)
		}
		s[table] = sum
	}
	return s
}

func generate(t *testing.T, dsn string, scale float64, seed uint64) string {
	t.Helper()
	name := testenv.UniqueName("bk_shopgen")
	testenv.DropDatabaseLater(t, dsn, name)
	c, err := shop.Generate(context.Background(), shop.Options{DSN: dsn, Database: name, Scale: scale, Seed: seed})
	if err != nil {
		t.Fatalf("generate %s (scale %v, seed %d): %v", name, scale, seed, err)
	}
	if want := shop.CountsFor(scale); c != want {
		t.Errorf("generate %s: got counts %+v, want %+v", name, c, want)
	}
	return name
}

// TestGenerate checks, on the real server, the rows per table, that the same seed gives the
// same tables and another seed other ones, and that seed 0 gives exactly what the original
// SQL generator gives.
func TestGenerate(t *testing.T) {
	dsn := testenv.MariaDBDSN(t)
	db := testenv.OpenDB(t, dsn)
	const scale = 0.002 // 1000 users, 8000 orders, 3000 events
	c := shop.CountsFor(scale)

	a, b, other, ref := generate(t, dsn, scale, 42), generate(t, dsn, scale, 42), generate(t, dsn, scale, 43), generate(t, dsn, scale, 0)
	sa, sb, so, s0 := checksums(t, db, a), checksums(t, db, b), checksums(t, db, other), checksums(t, db, ref)
	for table, want := range map[string]int64{"users": c.Users, "orders": c.Orders, "events": c.Events} {
		if got := sa[table].Rows; got != want {
			t.Errorf("%s: got %d rows, want %d", table, got, want)
		}
		if sa[table] != sb[table] {
			t.Errorf("%s, seed 42 twice: got %v and %v, want the same", table, sa[table], sb[table])
		}
		if sa[table].Checksum == so[table].Checksum {
			t.Errorf("%s, seeds 42 and 43: both %v, want different rows", table, sa[table])
		}
		if sa[table].Checksum == s0[table].Checksum {
			t.Errorf("%s, seeds 42 and 0: both %v, want different rows", table, sa[table])
		}
	}

	// The original generator's statements into tables of the same schema.
	orig := generate(t, dsn, 0.000001, 0)
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, q := range reference("`"+orig+"`", c) {
		if _, err := conn.ExecContext(context.Background(), q); err != nil {
			t.Fatalf("reference generator: %v\n%s", err, q)
		}
	}
	so = checksums(t, db, orig)
	for _, table := range []string{"users", "orders", "events"} {
		if so[table] != s0[table] {
			t.Errorf("%s, seed 0: got %v, want %v as the original generator makes it", table, s0[table], so[table])
		}
	}

	// Values of the shapes the benchmark relies on, spot-checked in seed 0's first rows.
	for _, tc := range []struct{ query, want string }{
		{"SELECT CONCAT_WS('|', name, email, IFNULL(email_verified_at, 'NULL'), IFNULL(remember_token, 'NULL')) FROM `" + ref + "`.users WHERE id = 3",
			"User 3 Ñandú ✓|user3@example.com|NULL|eccbc87e4b5ce2fe28308fd9f2a7baf3"},
		{"SELECT CONCAT_WS('|', status, total, note, meta, created_at) FROM `" + ref + "`.orders WHERE id = 7",
			"refunded|0.07|Note 7 with 'quotes' and \"double\" and \\backslash\\ and newline\n and tab\t|{\"ip\": \"10.0.7.7\", \"ua\": \"Mozilla/5.0\", \"n\": 7}|2020-09-13 12:27:01.123456"},
		{"SELECT IFNULL(note, 'NULL') FROM `" + ref + "`.orders WHERE id = 10", "NULL"},
		{"SELECT CONCAT_WS('|', subject_type, subject_id, LENGTH(payload), HEX(digest), happened_at) FROM `" + ref + "`.events WHERE id = 1",
			"App\\Models\\Order|1|368|6B86B273FF34FCE19D6B804EFF5A3F5747ADA4EAA22F1D49C01E52DDB7875B4B|2020-09-13 12:26:41.000"},
	} {
		var got string
		if _, err := conn.ExecContext(context.Background(), "SET time_zone = '+00:00'"); err != nil {
			t.Fatal(err)
		}
		if err := conn.QueryRowContext(context.Background(), tc.query).Scan(&got); err != nil {
			t.Fatalf("%s: %v", tc.query, err)
		}
		if got != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.query, got, tc.want)
		}
	}
}
