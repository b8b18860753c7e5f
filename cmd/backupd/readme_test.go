package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/go-sql-driver/mysql"

	"github.com/backupd/backupd/internal/backupset"
	"github.com/backupd/backupd/internal/targets"
	"github.com/backupd/backupd/internal/testenv"
)

// readmeSnippet returns the bash block that follows <!-- marker --> in README.md, so the test
// runs exactly what an operator would copy.
func readmeSnippet(t *testing.T, marker string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)<!-- " + regexp.QuoteMeta(marker) + " -->\n```bash\n(.*?)```").FindSubmatch(b)
	if m == nil {
		t.Fatalf("README.md has no bash block after <!-- %s -->", marker)
	}
	return string(m[1])
}

// TestReadmeManualRestore runs the README's manual restore snippets verbatim against a set on a
// dir target: a whole database under another name, and one table into an existing database.
func TestReadmeManualRestore(t *testing.T) {
	dsn := testenv.MariaDBDSN(t)
	for _, tool := range []string{"age", "zstd", "jq", "mariadb"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed: %v; run scripts/testenv.sh install", tool, err)
		}
	}
	sak := testenv.LoadSakila(t, dsn)
	keyFile, pub := testKey(t)
	dir := t.TempDir()
	policy := testenv.UniqueName("readme")
	cfg := writeConfig(t, fmt.Sprintf(`
targets:
  local: {type: dir, path: %s}
encryption: {recipients: [%s], identity_file: %s}
policies:
  %s:
    schedule: "@daily"
    mysql: {dsn: %s, databases: [%s], chunk_size: 128KiB}
    targets: [local]
`, dir, pub, keyFile, policy, yamlString(dsn), yamlString(sak)))
	if code, out, errOut := runCLI(t, "backup", "--config", cfg, "--policy", policy); code != 0 {
		t.Fatalf("backup: exit %d\n%s%s", code, out, errOut)
	}
	loaded, err := loadConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dests, err := loaded.OpenTargets(loaded.Policies[policy], targets.Options{})
	if err != nil {
		t.Fatal(err)
	}
	found, err := backupset.Find(t.Context(), dests, policy, backupset.Query{Trust: cfgTrust(t, loaded)})
	if err != nil {
		t.Fatal(err)
	}
	res, err := found.Manifest.Dump()
	if err != nil {
		t.Fatal(err)
	}
	setDir := filepath.Join(dir, policy, found.Manifest.SetID)

	parsed, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	runSnippet := func(t *testing.T, marker string, env ...string) {
		t.Helper()
		cmd := exec.Command("bash", "-euo", "pipefail", "-c", readmeSnippet(t, marker))
		cmd.Env = append(os.Environ(), "KEY="+keyFile, "SET="+setDir, "DB="+sak, "MYSQL_PWD="+parsed.Passwd)
		if parsed.Net == "tcp" {
			host, port, _ := net.SplitHostPort(parsed.Addr)
			cmd.Env = append(cmd.Env, "MYSQL_HOST="+host, "MYSQL_TCP_PORT="+port)
		}
		cmd.Env = append(cmd.Env, env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("README snippet %s: %v\n%s", marker, err, out)
		}
	}

	t.Run("database", func(t *testing.T) {
		newDB := testenv.UniqueName("bk_readme")
		testenv.DropDatabaseLater(t, dsn, newDB)
		runSnippet(t, "manual-restore:database", "NEWDB="+newDB)
		compareDatabases(t, testenv.OpenDB(t, dsn), res.Databases[0], newDB)
	})
	t.Run("table", func(t *testing.T) {
		newDB := testenv.UniqueName("bk_readme_t")
		testenv.DropDatabaseLater(t, dsn, newDB)
		testenv.MariaDBCLI(t, dsn, []byte("CREATE DATABASE "+quoteIdent(newDB)+";"))
		runSnippet(t, "manual-restore:table", "NEWDB="+newDB, "T=actor")
		conn := testenv.OpenDB(t, dsn)
		a := queryStrings(t, conn, "CHECKSUM TABLE "+quoteIdent(sak)+".actor")
		b := queryStrings(t, conn, "CHECKSUM TABLE "+quoteIdent(newDB)+".actor")
		if len(a) != 1 || len(b) != 1 || a[0][len(sak):] != b[0][len(newDB):] {
			t.Errorf("CHECKSUM TABLE actor: source %v, restored %v", a, b)
		}
		if n := queryStrings(t, conn, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?", newDB); n[0] != "1" {
			t.Errorf("the table snippet created %s tables, want only actor", n[0])
		}
	})
}
