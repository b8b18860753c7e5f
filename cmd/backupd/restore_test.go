package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"github.com/backupd/backupd/internal/keys"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/go-sql-driver/mysql"

	"github.com/backupd/backupd/internal/backup"
	"github.com/backupd/backupd/internal/config"
	"github.com/backupd/backupd/internal/restore"
	"github.com/backupd/backupd/internal/targets"
	"github.com/backupd/backupd/internal/testenv"
)

// restoreFixture is a small database backed up to a dir target, and the config to restore it.
type restoreFixture struct {
	db       *sql.DB
	dsn      string
	source   string // the backed-up database
	dir      string
	cfgPath  string
	policy   string
	setID    string
	password string // of a restore account made for the test
	user     string
}

func rsRandHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func newRestoreFixture(t *testing.T) *restoreFixture {
	t.Helper()
	dsn := testenv.MariaDBDSN(t)
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	f := &restoreFixture{db: db, dsn: dsn, source: "rscli_" + rsRandHex(4), dir: t.TempDir(), policy: "cli"}
	f.exec(t, "CREATE DATABASE "+rsQuote(f.source))
	f.dropLater(t, f.source)
	f.exec(t, "CREATE TABLE "+rsQuote(f.source)+".t (id INT PRIMARY KEY, v VARCHAR(20), KEY (v))")
	f.exec(t, "INSERT INTO "+rsQuote(f.source)+".t VALUES (1, 'one'), (2, 'two'), (3, NULL)")
	f.exec(t, "CREATE TABLE "+rsQuote(f.source)+".u (id INT PRIMARY KEY)")
	f.exec(t, "INSERT INTO "+rsQuote(f.source)+".u VALUES (7)")
	f.exec(t, "CREATE VIEW "+rsQuote(f.source)+".v AS SELECT id FROM "+rsQuote(f.source)+".t WHERE v IS NOT NULL")

	// An account with a password, to prove the password is never printed.
	f.user, f.password = "rscli_"+rsRandHex(3), "pw-"+rsRandHex(8)
	f.exec(t, fmt.Sprintf("CREATE USER '%s'@'%%' IDENTIFIED BY '%s'", f.user, f.password))
	f.exec(t, fmt.Sprintf("GRANT ALL ON *.* TO '%s'@'%%'", f.user))
	t.Cleanup(func() { db.Exec(fmt.Sprintf("DROP USER IF EXISTS '%s'@'%%'", f.user)) })

	f.cfgPath = f.writeConfig(t, "backupd.yaml", fmt.Sprintf(`state_dir: %[1]s/state
targets:
  local:
    type: dir
    path: %[1]s/backups
encryption:
  identity_file: %[1]s/key.txt
policies:
  cli:
    schedule: "@daily"
    mysql:
      dsn: %[2]q
      databases: [%[3]s]
    targets: [local]
`, f.dir, dsn, f.source))
	cfg, err := config.Load(f.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := keys.Signer(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	res, err := backup.Run(context.Background(), cfg, cfg.Policies[f.policy], backup.Options{Signer: signer})
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	f.setID = res.SetID
	return f
}

func rsQuote(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

func (f *restoreFixture) exec(t *testing.T, q string) {
	t.Helper()
	if _, err := f.db.Exec(q); err != nil {
		t.Fatalf("exec %q: %v", q, err)
	}
}

func (f *restoreFixture) dropLater(t *testing.T, name string) {
	t.Cleanup(func() { f.db.Exec("DROP DATABASE IF EXISTS " + rsQuote(name)) })
}

func (f *restoreFixture) writeConfig(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(f.dir, name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// passwordDSN is the test server's address with the password account.
func (f *restoreFixture) passwordDSN(t *testing.T) string {
	cfg, err := mysql.ParseDSN(f.dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.User, cfg.Passwd = f.user, f.password
	return cfg.FormatDSN()
}

// rsClosedPort returns a loopback address nothing listens on.
func rsClosedPort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func rsRunCLI(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// rsErrorLine is the error line main printed (logs, when any, are JSON lines before it; a
// usage hint may follow it).
func rsErrorLine(s string) string {
	if i := max(strings.LastIndex(s, "backupd restore: "), strings.LastIndex(s, "backupd verify: ")); i >= 0 {
		line, _, _ := strings.Cut(s[i:], "\n")
		return line
	}
	return ""
}

func TestRestoreCLI(t *testing.T) {
	f := newRestoreFixture(t)
	restoreStdinIsTerminal = func() bool { return false } // go test's stdin may be a terminal
	restoreTargetRetry = targets.RetryPolicy{MaxAttempts: 1}
	t.Cleanup(func() { restoreTargetRetry = targets.RetryPolicy{} })
	dest := "rscli_dest_" + rsRandHex(4)
	f.dropLater(t, dest)
	base := []string{"restore", "--config", f.cfgPath, "--to", f.passwordDSN(t), "--as", dest}

	otherKey := filepath.Join(f.dir, "other-key.txt")
	id, _ := age.GenerateX25519Identity()
	os.WriteFile(otherKey, []byte(id.String()+"\n"), 0o600)
	badS3 := f.writeConfig(t, "bad-s3.yaml", fmt.Sprintf(`targets:
  gone:
    type: s3
    endpoint: http://%s
    bucket: nothing-here
    bucket_lookup: path
    access_key: x
    secret_key: y
encryption:
  identity_file: %s/key.txt
policies:
  cli:
    schedule: "@daily"
    mysql: {dsn: "root@tcp(127.0.0.1:3306)/"}
    targets: [gone]
`, rsClosedPort(t), f.dir))
	badDir := f.writeConfig(t, "bad-dir.yaml", fmt.Sprintf(`targets:
  disk:
    type: dir
    path: %s/not-mounted
encryption:
  identity_file: %s/key.txt
policies:
  cli:
    schedule: "@daily"
    mysql: {dsn: "root@tcp(127.0.0.1:3306)/"}
    targets: [disk]
`, f.dir, f.dir))

	for _, tc := range []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string // in the one error line
	}{
		{"wrong identity", append(base, "--yes", "--identity", otherKey), exitUsage, "cannot decrypt set " + f.setID},
		{"missing identity", append(base, "--yes", "--identity", filepath.Join(f.dir, "no-such-key.txt")), exitUsage, "no-such-key.txt"},
		{"unknown set ID", append(base, "--yes", "--set", "20200101T000000Z-abcd"), exitUsage, "set 20200101T000000Z-abcd is not on any target"},
		{"malformed set ID", append(base, "--yes", "--set", "yesterday"), exitUsage, "is not a set ID"},
		{"unreachable database", []string{"restore", "--config", f.cfgPath, "--to", "root:topsecret@tcp(" + rsClosedPort(t) + ")/", "--yes"}, exitUnreachable, "cannot reach the destination server"},
		{"wrong database password", []string{"restore", "--config", f.cfgPath, "--to", f.user + ":wrong-topsecret@tcp(" + rsDBAddr(t, f.dsn) + ")/", "--yes"}, exitUsage, "refused the login"},
		{"unreachable S3 target", []string{"restore", "--config", badS3, "--to", f.dsn, "--yes"}, exitUnreachable, "could not read any target of policy cli"},
		{"dir target not mounted", []string{"restore", "--config", badDir, "--to", f.dsn, "--yes"}, exitUnreachable, "not-mounted does not exist"},
		{"no terminal and no --yes", base, exitUsage, "--yes"},
		{"unknown database", append(base, "--yes", "--database", "nope"), exitUsage, `database "nope" is not in the set`},
		{"unknown table", []string{"restore", "--config", f.cfgPath, "--to", f.dsn, "--yes", "--tables", "nope"}, exitUsage, "is not a table"},
		{"users not in the set", append(base, "--yes", "--users"), exitUsage, "holds no users"},
		{"--set with --before", append(base, "--set", f.setID, "--before", "1h"), exitUsage, "give one of them"},
		{"--to missing", []string{"restore", "--config", f.cfgPath}, exitUsage, "--to is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := rsRunCLI(tc.args...)
			if code != tc.wantCode {
				t.Errorf("exit code: got %d, want %d\nstdout: %s\nstderr: %s", code, tc.wantCode, stdout, stderr)
			}
			line := rsErrorLine(stderr)
			if i := strings.LastIndex(stderr, "backupd restore: "); i >= 0 && !strings.Contains(stderr, "--help' for its options") {
				// Errors other than flag mistakes are exactly one line.
				if got := strings.Count(strings.TrimSpace(stderr[i:]), "\n"); got != 0 {
					t.Errorf("error spans %d lines, want one: %q", got+1, stderr)
				}
			}
			if !strings.Contains(line, tc.wantErr) {
				t.Errorf("error line: got %q, want it to contain %q", line, tc.wantErr)
			}
			for _, secret := range []string{f.password, "topsecret"} {
				if strings.Contains(stdout+stderr, secret) {
					t.Errorf("output shows a password: %s%s", stdout, stderr)
				}
			}
			if rsExists(t, f.db, dest) {
				t.Errorf("database %s exists after a failed restore: a preflight failure must change nothing", dest)
				f.db.Exec("DROP DATABASE " + rsQuote(dest))
			}
		})
	}

	t.Run("dry run prints the plan and changes nothing", func(t *testing.T) {
		code, stdout, stderr := rsRunCLI(append(base, "--dry-run")...)
		if code != exitOK {
			t.Fatalf("exit code: got %d, want 0\n%s%s", code, stdout, stderr)
		}
		for _, want := range []string{f.setID, "`" + f.source + "` -> `" + dest + "`", "t, u, v", "verify:", "dry run: nothing was changed"} {
			if !strings.Contains(stdout, want) {
				t.Errorf("plan: got\n%s\nwant it to contain %q", stdout, want)
			}
		}
		if strings.Contains(stdout+stderr, f.password) {
			t.Errorf("the plan shows the password:\n%s", stdout)
		}
		if rsExists(t, f.db, dest) {
			t.Errorf("database %s exists after --dry-run", dest)
		}
	})

	t.Run("confirmation on a terminal", func(t *testing.T) {
		restoreStdinIsTerminal = func() bool { return true }
		t.Cleanup(func() { restoreStdinIsTerminal = func() bool { return false }; restoreStdin = os.Stdin })
		restoreStdin = strings.NewReader("no\n")
		code, stdout, stderr := rsRunCLI(base...)
		if code != exitUsage || !strings.Contains(stderr, "not confirmed: nothing was changed") {
			t.Errorf("answer no: got exit %d, stderr %q; want %d and 'not confirmed'", code, stderr, exitUsage)
		}
		if !strings.Contains(stdout, "Type yes to restore") {
			t.Errorf("prompt: got %q", stdout)
		}
		if rsExists(t, f.db, dest) {
			t.Fatalf("database %s exists after answering no", dest)
		}
		restoreStdin = strings.NewReader("yes\n")
		code, stdout, stderr = rsRunCLI(base...)
		if code != exitOK {
			t.Fatalf("answer yes: got exit %d\n%s%s", code, stdout, stderr)
		}
		if !strings.Contains(stdout, "verified: 2 tables match") {
			t.Errorf("summary: got %q, want the verification line", stdout)
		}
		var n int
		f.db.QueryRow("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?", dest, restore.MarkerTable).Scan(&n)
		if n != 0 {
			t.Errorf("the incomplete marker is still in %s after a verified restore", dest)
		}
	})

	t.Run("restore again refuses, --drop-existing replaces", func(t *testing.T) {
		f.exec(t, "INSERT INTO "+rsQuote(dest)+".t VALUES (4, 'after')")
		code, _, stderr := rsRunCLI(append(base, "--yes")...)
		if code != exitUsage || !strings.Contains(stderr, "table `"+dest+"`.`t`") {
			t.Errorf("second restore: got exit %d, %q; want %d naming table t", code, stderr, exitUsage)
		}
		var n int
		f.db.QueryRow("SELECT COUNT(*) FROM " + rsQuote(dest) + ".t").Scan(&n)
		if n != 4 {
			t.Errorf("rows after the refused restore: got %d, want 4 (unchanged)", n)
		}
		code, stdout, stderr := rsRunCLI(append(base, "--yes", "--drop-existing")...)
		if code != exitOK {
			t.Fatalf("--drop-existing: got exit %d\n%s%s", code, stdout, stderr)
		}
		f.db.QueryRow("SELECT COUNT(*) FROM " + rsQuote(dest) + ".t").Scan(&n)
		if n != 3 {
			t.Errorf("rows after --drop-existing: got %d, want 3 (the backup)", n)
		}
	})

	t.Run("--before picks an older set", func(t *testing.T) {
		base := []string{"restore", "--config", f.cfgPath, "--to", f.dsn, "--as", "rscli_none_" + rsRandHex(4)}
		code, stdout, stderr := rsRunCLI(append(base, "--dry-run", "--before", time.Now().Add(time.Hour).UTC().Format(time.RFC3339))...)
		if code != exitOK || !strings.Contains(stdout, f.setID) {
			t.Errorf("--before an hour from now: got exit %d, plan %q (%s); want set %s", code, stdout, stderr, f.setID)
		}
		code, _, stderr = rsRunCLI(append(base, "--dry-run", "--before", "2000-01-01")...)
		if code != exitUsage || !strings.Contains(stderr, "finished before 2000-01-01") {
			t.Errorf("--before 2000-01-01: got exit %d, %q; want %d and 'no set finished before'", code, stderr, exitUsage)
		}
	})
}

func rsExists(t *testing.T, db *sql.DB, name string) bool {
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n > 0
}

func rsDBAddr(t *testing.T, dsn string) string {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Addr
}

func TestVerifyCLI(t *testing.T) {
	f := newRestoreFixture(t)
	otherKey := filepath.Join(f.dir, "other-key.txt")
	id, _ := age.GenerateX25519Identity()
	os.WriteFile(otherKey, []byte(id.String()+"\n"), 0o600)

	code, stdout, stderr := rsRunCLI("verify", "--config", f.cfgPath)
	if code != exitOK || !strings.Contains(stdout, "0 failed") {
		t.Errorf("intact set: got exit %d\n%s%s", code, stdout, stderr)
	}
	code, _, stderr = rsRunCLI("verify", "--config", f.cfgPath, "--identity", otherKey)
	if code != exitUsage || !strings.Contains(rsErrorLine(stderr), "cannot decrypt set "+f.setID) {
		t.Errorf("wrong identity: got exit %d, %q; want %d and 'cannot decrypt'", code, stderr, exitUsage)
	}
	code, _, stderr = rsRunCLI("verify", "--config", f.cfgPath, "--set", "20200101T000000Z-abcd")
	if code != exitUsage || !strings.Contains(rsErrorLine(stderr), "is not on any target") {
		t.Errorf("unknown set: got exit %d, %q; want %d", code, stderr, exitUsage)
	}

	// Damage one object: verify names it and fails.
	var victim string
	err := filepath.WalkDir(filepath.Join(f.dir, "backups"), func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".sql.zst.age") && strings.Contains(p, "/data/") {
			victim = p
		}
		return err
	})
	if err != nil || victim == "" {
		t.Fatalf("find a data object: %v", err)
	}
	b, _ := os.ReadFile(victim)
	b[len(b)/2] ^= 1
	os.WriteFile(victim, b, 0o600)
	code, stdout, _ = rsRunCLI("verify", "--config", f.cfgPath)
	name := strings.TrimSuffix(victim[strings.Index(victim, f.source+"/"):], ".zst.age")
	if code != exitJobFailed || !strings.Contains(stdout, "FAIL  local  "+name) {
		t.Errorf("damaged object: got exit %d, want %d and a FAIL line naming %s\n%s", code, exitJobFailed, name, stdout)
	}
}
