package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/backupd/backupd/internal/backupset"
	"github.com/backupd/backupd/internal/dump"
	"github.com/backupd/backupd/internal/testenv"
)

// TestBackupAcceptance is the backup's acceptance at the command line: Sakila and the edge-case
// database are backed up to MinIO and versitygw at once, the buckets hold only age files, and
// the set restores by the manual path (age, zstd, mariadb only) to identical tables and schema
// objects.
func TestBackupAcceptance(t *testing.T) {
	dsn := testenv.MariaDBDSN(t)
	minioSrv, versity := testenv.MinIO(t), testenv.Versity(t)
	sak, edge := testenv.LoadSakila(t, dsn), testenv.LoadEdgeCases(t, dsn)
	mBucket, vBucket := testenv.NewBucket(t, minioSrv), testenv.NewBucket(t, versity)
	keyFile, pub := testKey(t)
	policy := testenv.UniqueName("accept")
	cfg := writeConfig(t, fmt.Sprintf(`
targets:
  minio:%s
  versity:%s
encryption:
  recipients: [%s]
  identity_file: %s
policies:
  %s:
    schedule: "@daily"
    mysql:
      dsn: %s
      databases: [%s, %s]
      threads: 2
      chunk_size: 256KiB
    targets: [minio, versity]
`, s3TargetYAML(minioSrv, mBucket), s3TargetYAML(versity, vBucket), pub, keyFile, policy, yamlString(dsn), yamlString(sak), yamlString(edge)))

	code, out, errOut := runCLI(t, "backup", "--config", cfg, "--policy", policy)
	if code != 0 {
		t.Fatalf("backup: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	setID := regexp.MustCompile(`set (\S+) `).FindStringSubmatch(out)
	if setID == nil || !backupset.ValidID(setID[1]) {
		t.Fatalf("backup output does not name the set: %q", out)
	}
	for _, want := range []string{"target minio", "target versity", "committed"} {
		if !strings.Contains(out, want) {
			t.Errorf("backup summary lacks %q:\n%s", want, out)
		}
	}

	sets := listJSON(t, cfg, policy)
	if len(sets) != 1 || sets[0].ID != setID[1] || strings.Join(sets[0].Targets, ",") != "minio,versity" {
		t.Fatalf("list --json = %+v, want set %s on minio,versity", sets, setID[1])
	}
	if sets[0].Bytes <= 0 || sets[0].FinishedAt.IsZero() {
		t.Errorf("list --json: bytes %d, finished_at %v; want both set", sets[0].Bytes, sets[0].FinishedAt)
	}

	// Encryption: every object but the manifest is an age file with no plaintext; the manifest
	// holds no row data and no secret.
	secretKey, _ := os.ReadFile(keyFile)
	for _, tc := range []struct {
		srv    testenv.S3
		bucket string
	}{{minioSrv, mBucket}, {versity, vBucket}} {
		c := testenv.S3Client(t, tc.srv)
		n := 0
		for oi := range c.ListObjects(context.Background(), tc.bucket, minio.ListObjectsOptions{Recursive: true}) {
			if oi.Err != nil {
				t.Fatal(oi.Err)
			}
			n++
			body := getObject(t, c, tc.bucket, oi.Key)
			if strings.HasSuffix(oi.Key, "/manifest.json") {
				for _, leak := range []string{"INSERT", "PENELOPE", "GUINESS", tc.srv.SecretKey, string(bytes.TrimSpace(lastLine(secretKey)))} {
					if bytes.Contains(body, []byte(leak)) {
						t.Errorf("%s/%s contains %q", tc.srv.Name, oi.Key, leak)
					}
				}
				continue
			}
			if strings.HasSuffix(oi.Key, "/manifest.json.sig") {
				if !bytes.HasPrefix(body, []byte("-----BEGIN SSH SIGNATURE-----\n")) {
					t.Errorf("%s/%s is not an SSH signature: %q", tc.srv.Name, oi.Key, body)
				}
				continue
			}
			if !bytes.HasPrefix(body, []byte("age-encryption.org/v1\n")) {
				t.Errorf("%s/%s does not start with the age header", tc.srv.Name, oi.Key)
			}
			for _, plain := range []string{"INSERT", "CREATE", "PENELOPE"} {
				if bytes.Contains(body, []byte(plain)) {
					t.Errorf("%s/%s contains plaintext %q", tc.srv.Name, oi.Key, plain)
				}
			}
		}
		if n < 10 {
			t.Errorf("%s bucket holds %d objects, want a whole set", tc.srv.Name, n)
		}
	}

	// The manual path, from the second provider: download with any S3 client, then only age,
	// zstd and mariadb, in the load order of the manifest, into databases of new names.
	c := testenv.S3Client(t, versity)
	var m backupset.Manifest
	if err := json.Unmarshal(getObject(t, c, vBucket, backupset.ManifestKey(policy, setID[1])), &m); err != nil {
		t.Fatal(err)
	}
	res, err := m.Dump()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	rename := map[string]string{}
	for _, db := range res.Databases {
		rename[db.Name] = testenv.UniqueName("bk_manual")
		testenv.DropDatabaseLater(t, dsn, rename[db.Name])
	}
	plainOf := func(key string) []byte {
		path := filepath.Join(dir, "obj")
		if err := os.WriteFile(path, getObject(t, c, vBucket, backupset.ObjectKey(policy, m.SetID, key)), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("sh", "-c", `age -d -i "$1" "$2" | zstd -d -q`, "sh", keyFile, path)
		b, err := cmd.Output()
		if err != nil {
			t.Fatalf("age -d | zstd -d %s: %v", key, err)
		}
		return b
	}
	for _, phase := range []string{dump.PhaseSchema, dump.PhaseData, dump.PhasePost} {
		for _, db := range res.Databases {
			for _, o := range db.Objects {
				if o.Phase != phase {
					continue
				}
				if o.Kind == dump.KindDatabase {
					testenv.MariaDBCLI(t, dsn, []byte(fmt.Sprintf("CREATE DATABASE %s CHARACTER SET %s COLLATE %s;", quoteIdent(rename[db.Name]), db.Charset, db.Collation)))
					continue
				}
				testenv.MariaDBCLI(t, dsn, plainOf(o.Key), "--binary-mode", "--comments", "--database="+rename[db.Name])
			}
		}
	}

	conn := testenv.OpenDB(t, dsn)
	for _, db := range res.Databases {
		t.Run(db.Name, func(t *testing.T) {
			compareDatabases(t, conn, db, rename[db.Name])
		})
	}
}

// compareDatabases checks a restored database against its source: CHECKSUM TABLE, row counts,
// the manifest's own checksums, and every schema object through information_schema.
func compareDatabases(t *testing.T, conn *sql.DB, want dump.Database, restored string) {
	ctx := context.Background()
	src := want.Name
	tables := 0
	for _, tb := range want.Tables {
		if tb.Type != "table" || tb.NoData != "" {
			continue
		}
		tables++
		for _, q := range []string{"CHECKSUM TABLE %s.%s", "SELECT COUNT(*) FROM %s.%s"} {
			a := queryStrings(t, conn, fmt.Sprintf(q, quoteIdent(src), quoteIdent(tb.Name)))
			b := queryStrings(t, conn, fmt.Sprintf(q, quoteIdent(restored), quoteIdent(tb.Name)))
			// CHECKSUM TABLE's first column is the qualified name.
			if len(a) == 1 && len(b) == 1 {
				a[0] = a[0][strings.Index(a[0], "|")+1:]
				b[0] = b[0][strings.Index(b[0], "|")+1:]
			}
			if strings.Join(a, "\n") != strings.Join(b, "\n") {
				t.Errorf("%s on %s: source %v, restored %v", q[:strings.Index(q, " %")], tb.Name, a, b)
			}
		}
		got, err := dump.Checksum(ctx, conn, restored, tb.Name)
		if err != nil {
			t.Fatal(err)
		}
		if got.Rows != tb.Rows || got.Checksum != tb.Checksum {
			t.Errorf("table %s: restored rows/checksum %d %s, manifest says %d %s", tb.Name, got.Rows, got.Checksum, tb.Rows, tb.Checksum)
		}
	}
	if tables == 0 {
		t.Fatal("the manifest lists no tables")
	}
	for _, q := range []string{
		"SELECT TABLE_NAME, TABLE_TYPE, ENGINE, TABLE_COLLATION, CREATE_OPTIONS, TABLE_COMMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? ORDER BY 1",
		"SELECT TABLE_NAME, COLUMN_NAME, ORDINAL_POSITION, COLUMN_DEFAULT, IS_NULLABLE, COLUMN_TYPE, CHARACTER_SET_NAME, COLLATION_NAME, EXTRA, GENERATION_EXPRESSION, COLUMN_COMMENT FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? ORDER BY 1, 3",
		"SELECT TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX, COLUMN_NAME, NON_UNIQUE, INDEX_TYPE FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? ORDER BY 1, 2, 3",
		"SELECT TABLE_NAME, VIEW_DEFINITION, CHECK_OPTION, IS_UPDATABLE, DEFINER, SECURITY_TYPE, CHARACTER_SET_CLIENT, COLLATION_CONNECTION FROM information_schema.VIEWS WHERE TABLE_SCHEMA = ? ORDER BY 1",
		"SELECT TRIGGER_NAME, EVENT_MANIPULATION, EVENT_OBJECT_TABLE, ACTION_ORDER, ACTION_STATEMENT, ACTION_TIMING, SQL_MODE, DEFINER, CHARACTER_SET_CLIENT FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ? ORDER BY 1",
		"SELECT ROUTINE_NAME, ROUTINE_TYPE, DTD_IDENTIFIER, ROUTINE_DEFINITION, IS_DETERMINISTIC, SQL_DATA_ACCESS, SECURITY_TYPE, SQL_MODE, ROUTINE_COMMENT, DEFINER FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ? ORDER BY 1, 2",
		"SELECT EVENT_NAME, DEFINER, TIME_ZONE, EVENT_DEFINITION, EVENT_TYPE, INTERVAL_VALUE, INTERVAL_FIELD, SQL_MODE, STATUS, ON_COMPLETION, EVENT_COMMENT FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ? ORDER BY 1",
		"SELECT CONSTRAINT_NAME, TABLE_NAME, CONSTRAINT_TYPE FROM information_schema.TABLE_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = ? ORDER BY 1, 2",
	} {
		a := queryStrings(t, conn, q, src)
		b := queryStrings(t, conn, q, restored)
		// A view's definition names its own database; the restored one names the new one.
		for i := range a {
			a[i] = strings.ReplaceAll(a[i], quoteIdent(src), quoteIdent(restored))
		}
		// Aria prints its default PAGE_CHECKSUM=1 in SHOW CREATE TABLE, so the restored table
		// states explicitly what the source had implicitly; the table is the same.
		for i := range b {
			b[i] = strings.Replace(b[i], "|Aria|utf8mb4_unicode_ci|page_checksum=1 ", "|Aria|utf8mb4_unicode_ci|", 1)
		}
		if strings.Join(a, "\n") != strings.Join(b, "\n") {
			t.Errorf("%s\nsource:   %q\nrestored: %q", q, a, b)
		}
	}
	// Sequences: the restored one continues where the source stood, never below.
	for _, tb := range want.Tables {
		if tb.Type != "sequence" {
			continue
		}
		q := "SELECT next_not_cached_value, minimum_value, maximum_value, increment, cycle_option FROM %s.%s"
		a := queryStrings(t, conn, fmt.Sprintf(q, quoteIdent(src), quoteIdent(tb.Name)))
		b := queryStrings(t, conn, fmt.Sprintf(q, quoteIdent(restored), quoteIdent(tb.Name)))
		if strings.Join(a, "") != strings.Join(b, "") {
			t.Errorf("sequence %s: source %v, restored %v", tb.Name, a, b)
		}
	}
}

// queryStrings returns each row as its columns joined by "|", NULL as \N.
func queryStrings(t *testing.T, conn *sql.DB, q string, args ...any) []string {
	t.Helper()
	rows, err := conn.Query(q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out []string
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		parts := make([]string, len(cols))
		for i, v := range vals {
			parts[i] = `\N`
			if v.Valid {
				parts[i] = v.String
			}
		}
		out = append(out, strings.Join(parts, "|"))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func getObject(t *testing.T, c *minio.Client, bucket, key string) []byte {
	t.Helper()
	o, err := c.GetObject(context.Background(), bucket, key, minio.GetObjectOptions{})
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer o.Close()
	b, err := io.ReadAll(o)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	return b
}

func lastLine(b []byte) []byte {
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	return lines[len(lines)-1]
}
