// Package testenv points integration tests at the real servers that scripts/testenv.sh starts
// (MariaDB, MinIO, versitygw, mailpit, toxiproxy). A test that needs a server it cannot reach
// fails with the command that starts it: a silent skip would hide a missing install step.
//
// Addresses come from BACKUPD_TEST_* environment variables, or else from .tools/testenv.env,
// which `scripts/testenv.sh start` writes, so a plain `go test ./...` works after it.
package testenv

import (
	"bufio"
	"context"
	"database/sql"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql" // the driver for MariaDB's DSN
)

// StartHint is what a failing test tells the reader to run.
const StartHint = "start the test servers with: scripts/testenv.sh start (or run the whole suite with scripts/test.sh)"

// S3 is an S3-compatible server reachable from the tests.
type S3 struct {
	Name      string // "minio" or "versitygw"
	Endpoint  string // http://127.0.0.1:PORT
	Region    string
	AccessKey string
	SecretKey string
}

// Mail is the mailpit server: SMTP for sending, HTTP API for reading what arrived.
type Mail struct {
	SMTPHost string
	SMTPPort string
	APIURL   string // http://127.0.0.1:PORT
}

var (
	fileOnce sync.Once
	fileVars map[string]string
)

// Get returns the value of a BACKUPD_TEST_* setting from the environment or .tools/testenv.env.
func Get(key string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	fileOnce.Do(loadFile)
	return fileVars[key]
}

func loadFile() {
	fileVars = map[string]string{}
	dir, err := os.Getwd()
	if err != nil {
		return
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return
		}
		dir = parent
	}
	f, err := os.Open(filepath.Join(dir, ".tools", "testenv.env"))
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(sc.Text()), "export "))
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		fileVars[k] = strings.Trim(v, `"'`)
	}
}

func require(t testing.TB, key, what string) string {
	t.Helper()
	v := Get(key)
	if v == "" {
		t.Fatalf("%s is not configured (%s is empty); %s", what, key, StartHint)
	}
	return v
}

// reachable fails the test unless a TCP connection to hostport succeeds.
func reachable(t testing.TB, what, hostport string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", hostport, 3*time.Second)
	if err != nil {
		t.Fatalf("%s at %s is not reachable: %v; %s", what, hostport, err, StartHint)
	}
	c.Close()
}

func hostPort(endpoint string) string {
	s := strings.TrimPrefix(strings.TrimPrefix(endpoint, "http://"), "https://")
	if i := strings.IndexByte(s, '/'); i >= 0 {
		s = s[:i]
	}
	return s
}

func s3server(t testing.TB, name, prefix string) S3 {
	t.Helper()
	s := S3{
		Name:      name,
		Endpoint:  require(t, prefix+"_ENDPOINT", name),
		AccessKey: require(t, prefix+"_ACCESS_KEY", name),
		SecretKey: require(t, prefix+"_SECRET_KEY", name),
		Region:    Get(prefix + "_REGION"),
	}
	if s.Region == "" {
		s.Region = "us-east-1"
	}
	reachable(t, name, hostPort(s.Endpoint))
	return s
}

// MinIO returns the MinIO server started by scripts/testenv.sh.
func MinIO(t testing.TB) S3 { t.Helper(); return s3server(t, "minio", "BACKUPD_TEST_MINIO") }

// Versity returns the versitygw server started by scripts/testenv.sh.
func Versity(t testing.TB) S3 { t.Helper(); return s3server(t, "versitygw", "BACKUPD_TEST_VERSITYGW") }

// S3Servers returns every real S3 implementation the tests run against.
func S3Servers(t testing.TB) []S3 { t.Helper(); return []S3{MinIO(t), Versity(t)} }

// MariaDBDSN returns a go-sql-driver DSN for the local MariaDB (root, all privileges), checked
// with a ping. The DSN has no database selected and ends with "/".
func MariaDBDSN(t testing.TB) string {
	t.Helper()
	dsn := Get("BACKUPD_TEST_MYSQL_DSN")
	if dsn == "" {
		dsn = "root@tcp(127.0.0.1:3306)/"
	}
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatalf("MariaDB DSN %q: %v", dsn, err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		t.Fatalf("MariaDB at %q is not reachable: %v; %s", dsn, err, StartHint)
	}
	return dsn
}

// Mailpit returns the mailpit server started by scripts/testenv.sh.
func Mailpit(t testing.TB) Mail {
	t.Helper()
	m := Mail{
		SMTPHost: "127.0.0.1",
		SMTPPort: require(t, "BACKUPD_TEST_MAILPIT_SMTP_PORT", "mailpit"),
		APIURL:   require(t, "BACKUPD_TEST_MAILPIT_API", "mailpit"),
	}
	reachable(t, "mailpit SMTP", net.JoinHostPort(m.SMTPHost, m.SMTPPort))
	return m
}

// Toxiproxy returns the URL of the toxiproxy API started by scripts/testenv.sh.
func Toxiproxy(t testing.TB) string {
	t.Helper()
	u := require(t, "BACKUPD_TEST_TOXIPROXY_API", "toxiproxy")
	reachable(t, "toxiproxy", hostPort(u))
	return u
}
