package restore_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"github.com/backupd/backupd/internal/keys"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/go-sql-driver/mysql"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/backupd/backupd/internal/backup"
	"github.com/backupd/backupd/internal/backupset"
	"github.com/backupd/backupd/internal/config"
	"github.com/backupd/backupd/internal/targets"
	"github.com/backupd/backupd/internal/testenv"
)

func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

func qualified(db, name string) string { return quoteIdent(db) + "." + quoteIdent(name) }

func openRoot(t testing.TB) (*sql.DB, string) {
	t.Helper()
	dsn := testenv.MariaDBDSN(t)
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatalf("open %s: %v", dsn, err)
	}
	t.Cleanup(func() { db.Close() })
	return db, dsn
}

func mustExec(t testing.TB, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("exec %q: %v", q, err)
	}
}

func dropDatabaseLater(t testing.TB, db *sql.DB, name string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+quoteIdent(name))
	})
}

// The fixtures and the mariadb client come from testenv, shared with every package's tests.
var (
	mariadbCLI = testenv.MariaDBCLI
	loadSakila = testenv.LoadSakilaAs
	loadEdge   = testenv.LoadEdgeCasesAs
	uniqueName = testenv.UniqueName
)

// s3Server is one S3 implementation with a bucket of this test's own.
type s3Server struct {
	srv    testenv.S3
	bucket string
}

// newBucket creates a bucket for this test only and removes it with everything in it at the end.
func newBucket(t testing.TB, srv testenv.S3) s3Server {
	t.Helper()
	bucket := strings.ReplaceAll(uniqueName("backupd-restore-test"), "_", "-")
	spec := targets.Spec{Type: "s3", Endpoint: srv.Endpoint, Region: srv.Region, Bucket: bucket,
		AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, BucketLookup: "path"}
	s3, err := targets.NewS3(spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := s3.EnsureBucket(context.Background()); err != nil {
		t.Fatalf("create bucket %s on %s: %v", bucket, srv.Name, err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		u, _ := url.Parse(srv.Endpoint)
		c, err := minio.New(u.Host, &minio.Options{Creds: credentials.NewStaticV4(srv.AccessKey, srv.SecretKey, ""),
			Region: srv.Region, BucketLookup: minio.BucketLookupPath})
		if err != nil {
			t.Logf("clean up %s: %v", bucket, err)
			return
		}
		objects := c.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true})
		for e := range c.RemoveObjects(ctx, bucket, objects, minio.RemoveObjectsOptions{}) {
			t.Logf("clean up %s: remove %s: %v", bucket, e.ObjectName, e.Err)
		}
		if err := c.RemoveBucket(ctx, bucket); err != nil {
			t.Logf("clean up: remove bucket %s: %v", bucket, err)
		}
	})
	return s3Server{srv: srv, bucket: bucket}
}

// setConfig is a config with one policy backing up dbs to MinIO, versitygw and a directory (in
// that order of preference).
func setConfig(t testing.TB, dsn string, dbs []string, chunk string) (*config.Config, *config.Policy, string) {
	t.Helper()
	dir := t.TempDir()
	mi, vg := newBucket(t, testenv.MinIO(t)), newBucket(t, testenv.Versity(t))
	var b strings.Builder
	fmt.Fprintf(&b, "state_dir: %s\ntargets:\n", filepath.Join(dir, "state"))
	for _, s := range []struct {
		name string
		s3   s3Server
	}{{"minio", mi}, {"versity", vg}} {
		fmt.Fprintf(&b, "  %s:\n    type: s3\n    endpoint: %s\n    region: %s\n    bucket: %s\n    bucket_lookup: path\n    access_key: %s\n    secret_key: %s\n",
			s.name, s.s3.srv.Endpoint, s.s3.srv.Region, s.s3.bucket, s.s3.srv.AccessKey, s.s3.srv.SecretKey)
	}
	fmt.Fprintf(&b, "  local:\n    type: dir\n    path: %s\n", filepath.Join(dir, "backups"))
	quoted := make([]string, len(dbs))
	for i, d := range dbs {
		quoted[i] = fmt.Sprintf("%q", d)
	}
	fmt.Fprintf(&b, "encryption:\n  identity_file: %s\npolicies:\n  restoretest:\n    schedule: \"@daily\"\n    mysql:\n      dsn: %q\n      databases: [%s]\n      threads: 2\n      chunk_size: %s\n    targets: [minio, versity, local]\n",
		filepath.Join(dir, "key.txt"), dsn, strings.Join(quoted, ", "), chunk)
	path := filepath.Join(dir, "backupd.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("load the test config: %v\n%s", err, b.String())
	}
	return cfg, cfg.Policies["restoretest"], path
}

// makeSet backs up the policy once and returns the committed manifest.
func makeSet(t testing.TB, cfg *config.Config, p *config.Policy) *backupset.Manifest {
	t.Helper()
	signer, err := keys.Signer(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	res, err := backup.Run(context.Background(), cfg, p, backup.Options{Logger: testLogger(t), Signer: signer})
	if err != nil {
		t.Fatalf("backup.Run: %v", err)
	}
	return res.Manifest
}

func openTargets(t testing.TB, cfg *config.Config, p *config.Policy) []backupset.Dest {
	t.Helper()
	dests, err := cfg.OpenTargets(p, targets.Options{Logger: testLogger(t), Retry: targets.RetryPolicy{MaxAttempts: 1}})
	if err != nil {
		t.Fatal(err)
	}
	return dests
}

func identities(t testing.TB, cfg *config.Config) []age.Identity {
	t.Helper()
	b, err := os.ReadFile(cfg.Encryption.IdentityFile)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := age.ParseIdentities(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// state is what a database holds, keyed by a description: per base table CHECKSUM TABLE, row
// count and SHOW CREATE TABLE; views, routines, triggers and events with their definitions. The
// database's own name is replaced by DB so that a copy under another name compares equal.
type state map[string]string

func captureState(t testing.TB, db *sql.DB, name string) state {
	t.Helper()
	s := state{}
	norm := func(v string) string {
		v = strings.ReplaceAll(v, quoteIdent(name), "`DB`")
		return strings.ReplaceAll(v, name, "DB")
	}
	rows, err := db.Query("SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME", name)
	if err != nil {
		t.Fatal(err)
	}
	type tt struct{ name, typ string }
	var tables []tt
	for rows.Next() {
		var x tt
		rows.Scan(&x.name, &x.typ)
		tables = append(tables, x)
	}
	rows.Close()
	for _, x := range tables {
		q := qualified(name, x.name)
		s["object "+x.name] = x.typ
		if x.typ != "BASE TABLE" {
			continue
		}
		var n string
		var sum sql.NullString
		if err := db.QueryRow("CHECKSUM TABLE "+q).Scan(&n, &sum); err != nil {
			t.Fatalf("CHECKSUM TABLE %s: %v", q, err)
		}
		s["CHECKSUM TABLE "+x.name] = sum.String
		var count int64
		if err := db.QueryRow("SELECT COUNT(*) FROM " + q).Scan(&count); err != nil {
			t.Fatal(err)
		}
		s["COUNT(*) "+x.name] = fmt.Sprint(count)
		var create string
		if err := db.QueryRow("SHOW CREATE TABLE "+q).Scan(&n, &create); err != nil {
			t.Fatal(err)
		}
		s["SHOW CREATE TABLE "+x.name] = norm(create)
	}
	for _, q := range []struct{ what, sql string }{
		{"view", "SELECT TABLE_NAME, VIEW_DEFINITION FROM information_schema.VIEWS WHERE TABLE_SCHEMA = ?"},
		{"routine", "SELECT CONCAT(ROUTINE_TYPE, ' ', ROUTINE_NAME), CONCAT(ROUTINE_DEFINITION, ' | ', SQL_MODE, ' | ', DEFINER) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ?"},
		{"trigger", "SELECT TRIGGER_NAME, CONCAT(EVENT_OBJECT_TABLE, ' ', ACTION_TIMING, ' ', EVENT_MANIPULATION, ' ', ACTION_ORDER, ' ', ACTION_STATEMENT) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ?"},
		{"event", "SELECT EVENT_NAME, CONCAT(EVENT_DEFINITION, ' | ', STATUS, ' | ', COALESCE(INTERVAL_VALUE, ''), ' ', COALESCE(INTERVAL_FIELD, '')) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ?"},
	} {
		rows, err := db.Query(q.sql, name)
		if err != nil {
			t.Fatalf("%s: %v", q.sql, err)
		}
		for rows.Next() {
			var k, v sql.NullString
			if err := rows.Scan(&k, &v); err != nil {
				t.Fatal(err)
			}
			s[q.what+" "+k.String] = norm(v.String)
		}
		rows.Close()
	}
	return s
}

func compareStates(t testing.TB, what string, want, got state) {
	t.Helper()
	keys := map[string]bool{}
	for k := range want {
		keys[k] = true
	}
	for k := range got {
		keys[k] = true
	}
	var sorted []string
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	bad := 0
	for _, k := range sorted {
		w, okw := want[k]
		g, okg := got[k]
		if okw && okg && w == g {
			continue
		}
		switch {
		case !okw:
			t.Errorf("%s: %s: got %q, want nothing", what, k, g)
		case !okg:
			t.Errorf("%s: %s: got nothing, want %q", what, k, w)
		default:
			t.Errorf("%s: %s:\n got %s\nwant %s", what, k, g, w)
		}
		if bad++; bad > 20 {
			t.Fatalf("%s: too many differences", what)
		}
	}
}

// corruptObject flips one byte of an object's copy on one target.
func corruptObject(t testing.TB, d backupset.Dest, m *backupset.Manifest, name string) {
	t.Helper()
	ctx := context.Background()
	key := backupset.ObjectKey(m.Policy, m.SetID, name)
	rc, err := d.Target.Get(ctx, key)
	if err != nil {
		t.Fatalf("get %s from %s: %v", key, d.Name, err)
	}
	b, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := d.Target.Put(ctx, key, bytes.NewReader(b), int64(len(b))); err != nil {
		t.Fatalf("put %s to %s: %v", key, d.Name, err)
	}
}

func tableNames(t testing.TB, db *sql.DB, name string) []string {
	t.Helper()
	rows, err := db.Query("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME", name)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		rows.Scan(&n)
		out = append(out, n)
	}
	return out
}

// encodeName is FORMAT.md's object name encoding of an SQL name.
func encodeName(name string) string {
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		c := name[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' && i > 0
		if ok {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// runbookScript extracts the manual restore script from docs/restore.md.
func runbookScript(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile("../../docs/restore.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	i := strings.Index(doc, "<!-- manual-restore-script")
	if i < 0 {
		t.Fatal("docs/restore.md has no manual-restore-script marker")
	}
	rest := doc[i:]
	start := strings.Index(rest, "```bash\n")
	if start < 0 {
		t.Fatal("no bash block after the marker in docs/restore.md")
	}
	rest = rest[start+len("```bash\n"):]
	end := strings.Index(rest, "\n```")
	if end < 0 {
		t.Fatal("unterminated bash block in docs/restore.md")
	}
	path := filepath.Join(t.TempDir(), "restore-by-hand.sh")
	if err := os.WriteFile(path, []byte(rest[:end+1]), 0o700); err != nil {
		t.Fatal(err)
	}
	return path
}

// runRunbookScript runs the runbook's script for one database of the set in the dir target.
func runRunbookScript(t testing.TB, cfg *config.Config, m *backupset.Manifest, dsn, src, dest string) {
	t.Helper()
	mc, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := strings.Cut(mc.Addr, ":")
	cmd := exec.Command("bash", runbookScript(t))
	cmd.Env = append(os.Environ(),
		"SET="+filepath.Join(cfg.Targets["local"].Path, m.Policy, m.SetID),
		"KEY="+cfg.Encryption.IdentityFile,
		"SRC="+encodeName(src),
		"DEST="+dest,
		fmt.Sprintf("MYSQL=mariadb --user=%s --host=%s --port=%s --protocol=TCP", mc.User, host, port),
	)
	if mc.Passwd != "" {
		cmd.Env = append(cmd.Env, "MYSQL_PWD="+mc.Passwd)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the runbook's script: %v\n%s", err, out)
	}
}

// trustOf is the trust the commands build from cfg: its signing.trusted_keys, or the host's own key.
func trustOf(t testing.TB, cfg *config.Config) backupset.Trust {
	t.Helper()
	v, _, err := keys.Verifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
