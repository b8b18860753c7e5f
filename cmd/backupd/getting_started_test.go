package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/minio/minio-go/v7"

	"github.com/backupd/backupd/internal/backupset"
	"github.com/backupd/backupd/internal/targets"
	"github.com/backupd/backupd/internal/testenv"
)

// gettingStartedBlocks returns the bash blocks of docs/getting-started.md that follow
// <!-- getting-started:run -->, in order: the ones a reader runs.
func gettingStartedBlocks(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "docs", "getting-started.md"))
	if err != nil {
		t.Fatal(err)
	}
	var blocks []string
	for _, m := range regexp.MustCompile("(?s)<!-- getting-started:run -->\n```bash\n(.*?)```").FindAllSubmatch(b, -1) {
		blocks = append(blocks, string(m[1]))
	}
	if len(blocks) < 6 {
		t.Fatalf("docs/getting-started.md has %d runnable blocks, want the whole path (variables, build, data, bucket, config, backup, restore, drill)", len(blocks))
	}
	return blocks
}

// TestGettingStarted runs docs/getting-started.md as written against the test servers: the
// variables of its first block point at MinIO, mailpit and MariaDB, with unique names; then it
// checks the outcome — a committed set on the bucket, restored rows equal to the source, and a
// drill PASS mail to the reader's address.
func TestGettingStarted(t *testing.T) {
	dsn := testenv.MariaDBDSN(t)
	srv := testenv.MinIO(t)
	mail := testenv.Mailpit(t)
	for _, tool := range []string{"mariadb", "curl", "go", "mariadbd"} {
		if _, err := exec.LookPath(tool); err != nil {
			if _, serr := os.Stat("/usr/sbin/" + tool); serr != nil {
				t.Fatalf("%s is not installed: %v; run scripts/testenv.sh install", tool, err)
			}
		}
	}
	parsed, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	host, port, err := net.SplitHostPort(parsed.Addr)
	if parsed.Net != "tcp" || err != nil {
		t.Fatalf("the test MariaDB DSN %q is not host:port over TCP, which the guide uses", dsn)
	}
	db := testenv.UniqueName("bk_getting_started")
	testenv.DropDatabaseLater(t, dsn, db)
	testenv.DropDatabaseLater(t, dsn, db+"_restored")
	bucket := strings.ReplaceAll(testenv.UniqueName("backupd-gs"), "_", "-")
	removeBucketLater(t, srv, bucket)
	mailTo := testenv.UniqueName("reader") + "@example.com"
	demo := t.TempDir()

	script := "set -euo pipefail\n" + strings.Join(gettingStartedBlocks(t), "\n")
	cmd := exec.Command("bash", "-c", script)
	cmd.Dir = testenv.RepoRoot(t)
	cmd.Env = append(os.Environ(),
		"DEMO="+demo, "DB="+db,
		"DB_HOST="+host, "DB_PORT="+port, "DB_USER="+parsed.User, "DB_PASSWORD="+parsed.Passwd,
		"S3_ENDPOINT="+srv.Endpoint, "S3_REGION="+srv.Region, "S3_BUCKET="+bucket,
		"S3_ACCESS_KEY="+srv.AccessKey, "S3_SECRET_KEY="+srv.SecretKey,
		"SMTP_HOST="+mail.SMTPHost, "SMTP_PORT="+mail.SMTPPort, "SMTP_STARTTLS=false",
		"MAIL_TO="+mailTo,
		"TMPDIR="+searchableTempDir(t), // the drill's scratch server, removed with the test
	)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("docs/getting-started.md: %v\n%s", err, out)
	}
	t.Logf("docs/getting-started.md ran:\n%s", out)
	for _, want := range []string{"generated a new encryption key", "PASS"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the guide's output lacks %q:\n%s", want, out)
		}
	}

	t.Run("committed set", func(t *testing.T) {
		// The guide's config reads the guide's variables.
		for k, v := range map[string]string{"S3_ENDPOINT": srv.Endpoint, "S3_REGION": srv.Region, "S3_BUCKET": bucket, "S3_ACCESS_KEY": srv.AccessKey,
			"S3_SECRET_KEY": srv.SecretKey, "SMTP_HOST": mail.SMTPHost, "SMTP_PORT": mail.SMTPPort, "SMTP_STARTTLS": "false",
			"DB_USER": parsed.User, "DB_PASSWORD": parsed.Passwd, "DB_HOST": host, "DB_PORT": port, "DB": db, "MAIL_TO": mailTo} {
			t.Setenv(k, v)
		}
		cfg, err := loadConfig(filepath.Join(demo, "backupd.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		dests, err := cfg.OpenTargets(cfg.Policies["demo"], targets.Options{})
		if err != nil {
			t.Fatal(err)
		}
		found, err := backupset.Find(t.Context(), dests, "demo", backupset.Query{Trust: cfgTrust(t, cfg)})
		if err != nil {
			t.Fatalf("no committed set of policy demo in bucket %s: %v", bucket, err)
		}
		if got := found.Manifest.Policy; got != "demo" {
			t.Errorf("got a set of policy %q, want demo", got)
		}
	})

	t.Run("restored rows equal", func(t *testing.T) {
		conn := testenv.OpenDB(t, dsn)
		q := func(db string) []string {
			return queryStrings(t, conn, "SELECT COUNT(*), COALESCE(SUM(CRC32(CONCAT_WS('|', id, customer, total, created_at))), 0) FROM "+quoteIdent(db)+".orders")
		}
		src, dst := q(db), q(db+"_restored")
		if strings.Join(src, " ") != strings.Join(dst, " ") || src[0] == "0" {
			t.Errorf("orders: source has (rows, crc sum) %v, restored %v; want equal and not empty", src, dst)
		}
	})

	t.Run("drill PASS mail", func(t *testing.T) {
		waitForMail(t, mail, mailTo, "[backupd] drill PASS demo")
	})
}

// waitForMail waits until mailpit holds a message to addr with exactly subject.
func waitForMail(t *testing.T, m testenv.Mail, addr, subject string) {
	t.Helper()
	query := url.QueryEscape(fmt.Sprintf(`to:"%s" subject:"%s"`, addr, subject))
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(m.APIURL + "/api/v1/search?query=" + query)
		if err != nil {
			t.Fatalf("mailpit API: %v", err)
		}
		var list struct {
			Messages []struct {
				Subject string
				To      []struct{ Address string }
			}
		}
		err = json.NewDecoder(resp.Body).Decode(&list)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("mailpit API search: %v", err)
		}
		for _, msg := range list.Messages {
			for _, to := range msg.To {
				if msg.Subject == subject && to.Address == addr {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("got no mail %q to %s in mailpit at %s (%d found by the search), want the drill report", subject, addr, m.APIURL, len(list.Messages))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// removeBucketLater removes a bucket the test had created by other means, with its contents,
// when the test ends.
func removeBucketLater(t *testing.T, srv testenv.S3, bucket string) {
	t.Helper()
	c := testenv.S3Client(t, srv)
	t.Cleanup(func() {
		ctx := context.Background()
		if ok, err := c.BucketExists(ctx, bucket); err != nil || !ok {
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
}
