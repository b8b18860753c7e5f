package testenv

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// UniqueName returns prefix_<random hex>, so concurrent test runs never share a database,
// bucket or policy.
func UniqueName(prefix string) string {
	b := make([]byte, 4)
	rand.Read(b)
	return prefix + "_" + hex.EncodeToString(b)
}

// RepoRoot is the directory holding go.mod; fixtures are under RepoRoot()/testdata.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test's directory")
		}
		dir = parent
	}
}

// ClientArgs returns the connection arguments of the stock mariadb client tools (mariadb,
// mariadb-dump, mydumper-style tools take the same) for a go-sql-driver DSN, and the
// environment to run them with (the password goes in MYSQL_PWD, never on the command line).
func ClientArgs(t testing.TB, dsn string) (args, env []string) {
	t.Helper()
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatalf("parse DSN: %v", err)
	}
	args = []string{"--user=" + cfg.User}
	if cfg.Net == "unix" {
		args = append(args, "--socket="+cfg.Addr)
	} else {
		host, port, _ := strings.Cut(cfg.Addr, ":")
		args = append(args, "--host="+host, "--protocol=TCP")
		if port != "" {
			args = append(args, "--port="+port)
		}
	}
	env = os.Environ()
	if cfg.Passwd != "" {
		env = append(env, "MYSQL_PWD="+cfg.Passwd)
	}
	return args, env
}

// MariaDBCLI runs the stock mariadb client against dsn with input on stdin — the tool of the
// manual restore path — and fails the test with its output on error.
func MariaDBCLI(t testing.TB, dsn string, input []byte, extra ...string) {
	t.Helper()
	args, env := ClientArgs(t, dsn)
	cmd := exec.Command("mariadb", append(args, extra...)...)
	cmd.Env = env
	cmd.Stdin = bytes.NewReader(input)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("mariadb %s: %v\n%s", strings.Join(extra, " "), err, out.String())
	}
}

// OpenDB opens dsn and closes it when the test ends.
func OpenDB(t testing.TB, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatalf("open database: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// DropDatabaseLater drops a database when the test ends.
func DropDatabaseLater(t testing.TB, dsn, name string) {
	t.Cleanup(func() {
		db, err := sql.Open("mysql", dsn)
		if err != nil {
			return
		}
		defer db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		db.ExecContext(ctx, "DROP DATABASE IF EXISTS `"+strings.ReplaceAll(name, "`", "``")+"`")
	})
}

var sakilaWord = regexp.MustCompile(`\bsakila\b`)

// LoadSakila loads testdata/sakila under a unique database name, dropped when the
// test ends, and returns the name.
func LoadSakila(t testing.TB, dsn string) string {
	t.Helper()
	name := UniqueName("bk_sakila")
	DropDatabaseLater(t, dsn, name)
	LoadSakilaAs(t, dsn, name)
	return name
}

// LoadSakilaAs loads testdata/sakila as database name (the caller drops it).
func LoadSakilaAs(t testing.TB, dsn, name string) {
	t.Helper()
	for _, f := range []string{"sakila-schema.sql", "sakila-data.sql"} {
		b, err := os.ReadFile(filepath.Join(RepoRoot(t), "testdata", "sakila", f))
		if err != nil {
			t.Fatalf("read sakila fixture: %v", err)
		}
		MariaDBCLI(t, dsn, sakilaWord.ReplaceAll(b, []byte(name)))
	}
}

// LoadEdgeCases loads internal/dump/testdata/edgecases.sql (every column type and schema
// object the dump must carry) under a unique name that itself contains a backtick and
// non-ASCII characters, dropped when the test ends, and returns the name.
func LoadEdgeCases(t testing.TB, dsn string) string {
	t.Helper()
	name := UniqueName("bk_edge`ü select")
	DropDatabaseLater(t, dsn, name)
	LoadEdgeCasesAs(t, dsn, name)
	return name
}

// LoadEdgeCasesAs loads the edge-case database as name (the caller drops it).
func LoadEdgeCasesAs(t testing.TB, dsn, name string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(RepoRoot(t), "internal", "dump", "testdata", "edgecases.sql"))
	if err != nil {
		t.Fatalf("read edge-case fixture: %v", err)
	}
	quoted := "`" + strings.ReplaceAll(name, "`", "``") + "`"
	MariaDBCLI(t, dsn, bytes.ReplaceAll(b, []byte("`bk_edge`"), []byte(quoted)))
}

// NewBucket creates a bucket on srv for this test only and removes it, with everything in it,
// when the test ends.
func NewBucket(t testing.TB, srv S3) string {
	t.Helper()
	c := S3Client(t, srv)
	bucket := strings.ReplaceAll(UniqueName("backupd-test"), "_", "-")
	ctx := context.Background()
	if err := c.MakeBucket(ctx, bucket, minio.MakeBucketOptions{Region: srv.Region}); err != nil {
		t.Fatalf("create bucket %s on %s: %v", bucket, srv.Name, err)
	}
	t.Cleanup(func() {
		for u := range c.ListIncompleteUploads(ctx, bucket, "", true) {
			c.RemoveIncompleteUpload(ctx, bucket, u.Key)
		}
		objects := c.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true})
		for e := range c.RemoveObjects(ctx, bucket, objects, minio.RemoveObjectsOptions{}) {
			t.Logf("clean up %s: remove %s: %v", bucket, e.ObjectName, e.Err)
		}
		if err := c.RemoveBucket(ctx, bucket); err != nil {
			t.Logf("clean up: remove bucket %s: %v", bucket, err)
		}
	})
	return bucket
}

// S3Client is a raw minio-go client for srv, for tests that inspect buckets directly.
func S3Client(t testing.TB, srv S3) *minio.Client {
	t.Helper()
	host := hostPort(srv.Endpoint)
	c, err := minio.New(host, &minio.Options{
		Creds:        credentials.NewStaticV4(srv.AccessKey, srv.SecretKey, ""),
		Secure:       strings.HasPrefix(srv.Endpoint, "https://"),
		Region:       srv.Region,
		BucketLookup: minio.BucketLookupPath,
	})
	if err != nil {
		t.Fatalf("minio client for %s: %v", srv.Name, err)
	}
	return c
}

// SmallDatabase creates a database with one three-row table (items), for tests that need
// something quick to back up; it is dropped when the test ends.
func SmallDatabase(t testing.TB, dsn, prefix string) string {
	t.Helper()
	name := UniqueName(prefix)
	DropDatabaseLater(t, dsn, name)
	db := OpenDB(t, dsn)
	for _, q := range []string{
		"CREATE DATABASE `" + name + "`",
		"CREATE TABLE `" + name + "`.items (id INT PRIMARY KEY, v VARCHAR(20))",
		"INSERT INTO `" + name + "`.items VALUES (1, 'a'), (2, 'b'), (3, 'c')",
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("create a small database: %v", err)
		}
	}
	return name
}
