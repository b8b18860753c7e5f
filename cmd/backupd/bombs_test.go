package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"github.com/backupd/backupd/internal/signing"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"filippo.io/age"

	"time"

	"github.com/backupd/backupd/internal/backupset"
	"github.com/backupd/backupd/internal/config"
	"github.com/backupd/backupd/internal/seal"
	"github.com/backupd/backupd/internal/targets"
	"github.com/backupd/backupd/internal/testenv"
)

const bombChildEnv = "BACKUPD_BOMB_CHILD_ARGS"

// TestBombs forges a set the way anyone with write access to the bucket and the public
// recipient can (objects sealed to the recipient, the manifest's sizes and hashes rewritten) with
// a data object that is a decoding bomb of under 200 KB, and runs restore, verify and drill on
// it, each in a child process of its own: each must fail with an error naming the problem, and
// the child's peak RSS (VmHWM from /proc/self/status) must stay under 256 MiB.
func TestBombs(t *testing.T) {
	if args := os.Getenv(bombChildEnv); args != "" {
		bombChild(t, args)
		return
	}
	dsn := testenv.MariaDBDSN(t)
	db := testenv.UniqueName("bomb")
	testenv.MariaDBCLI(t, dsn, []byte(fmt.Sprintf("CREATE DATABASE `%s`; CREATE TABLE `%s`.t (id INT PRIMARY KEY, v TEXT); INSERT INTO `%s`.t VALUES (1,'a'),(2,'b');", db, db, db)))
	t.Cleanup(func() {
		testenv.MariaDBCLI(t, dsn, []byte(fmt.Sprintf("DROP DATABASE IF EXISTS `%s`; DROP DATABASE IF EXISTS `%s_r`;", db, db)))
	})
	keyFile, pub := testKey(t)
	dir := t.TempDir()
	policy := testenv.UniqueName("bomb")
	cfgPath := writeConfig(t, fmt.Sprintf(`
state_dir: %s
targets:
  local: {type: dir, path: %s}
encryption:
  recipients: [%s]
  identity_file: %s
policies:
  %s:
    schedule: "@daily"
    mysql: {dsn: %s, databases: [%s]}
    targets: [local]
    drill:
      scratch: {dsn: %s}
`, filepath.Join(dir, "state"), filepath.Join(dir, "backups"), pub, keyFile, policy, yamlString(dsn), db, yamlString(dsn)))
	if code, out, errOut := runCLI(t, "backup", "--config", cfgPath, "--policy", policy); code != 0 {
		t.Fatalf("backup: exit %d\n%s\n%s", code, out, errOut)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	dests, err := cfg.OpenTargets(cfg.Policies[policy], targets.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// The forged sets are signed with the writer's own key, so that the decoders behind the
	// signature are what is exercised (a key thief's attack); unsigned ones stop earlier.
	if forgeSigner, err = signing.LoadKey(cfg.Signing.KeyFile); err != nil {
		t.Fatal(err)
	}
	trust := signing.NewVerifier(forgeSigner.Public())
	sets, _, err := backupset.List(ctx, dests[0].Target, policy, time.Now(), trust)
	if err != nil || len(sets) != 1 {
		t.Fatalf("list: %d sets, %v", len(sets), err)
	}
	orig := sets[0]
	dr, err := orig.Dump()
	if err != nil {
		t.Fatal(err)
	}
	var name string
	for _, o := range dr.Databases[0].Objects {
		if o.Kind == "data" {
			name = o.Key
		}
	}
	recs, err := seal.ParseRecipients([]string{pub})
	if err != nil {
		t.Fatal(err)
	}
	header := "SET NAMES binary;\nSET sql_mode = 'NO_AUTO_VALUE_ON_ZERO';\n"
	const big = 256 << 20
	sealPlain := func(write func(w io.Writer)) ([]byte, int64) {
		var b bytes.Buffer
		w, err := seal.NewWriter(&b, recs, seal.Best)
		if err != nil {
			t.Fatal(err)
		}
		write(w)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		return b.Bytes(), w.Sum().PlainSize
	}
	repeat := func(w io.Writer, s string, n int) {
		chunk := []byte(strings.Repeat(s, (1<<20)/len(s)))
		for written := 0; written < n; written += len(chunk) {
			w.Write(chunk)
		}
	}
	window := func() ([]byte, int64) {
		// A zstd frame declaring a 64 MiB window, sealed without backupd's encoder.
		var b bytes.Buffer
		aw, err := age.Encrypt(&b, recs...)
		if err != nil {
			t.Fatal(err)
		}
		aw.Write([]byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 16 << 3, 0x09, 0x00, 0x00, '-'})
		aw.Close()
		return b.Bytes(), 1
	}
	expand := func() ([]byte, int64) {
		sealed, _ := sealPlain(func(w io.Writer) {
			io.WriteString(w, header)
			repeat(w, "INSERT INTO `t` (`id`,`v`) VALUES (1,'x');\n", big)
		})
		return sealed, int64(len(header)) // declared: far less than it holds
	}
	endless := func() ([]byte, int64) {
		return sealPlain(func(w io.Writer) {
			io.WriteString(w, header+"INSERT INTO `t` (`id`,`v`) VALUES (1,'")
			repeat(w, "A", big)
			io.WriteString(w, "');\n")
		})
	}
	var tableKey string
	for _, o := range dr.Databases[0].Objects {
		if o.Kind == "table" {
			tableKey = o.Key
		}
	}
	forgedSQL(t, dests[0].Target, orig, name, tableKey, cfgPath, policy, dsn, db, recs)
	for _, tc := range []struct {
		name string
		make func() ([]byte, int64)
		want string // in every command's error; verify is not asked about statements
		only string
	}{
		{"zstd window", window, "window", ""},
		{"plaintext beyond plain_size", expand, "more than", ""},
		{"endless statement", endless, "statement longer than the format allows", "verify passes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sealed, plain := tc.make()
			if len(sealed) >= 200<<10 {
				t.Fatalf("the bomb is %d bytes sealed, want under 200 KB", len(sealed))
			}
			forge(t, dests[0].Target, orig, name, sealed, plain)
			for _, cmd := range [][]string{
				{"restore", "--config", cfgPath, "--policy", policy, "--to", dsn, "--as", db + "_r", "--drop-existing", "--yes"},
				{"verify", "--config", cfgPath, "--policy", policy},
				{"drill", "--config", cfgPath, "--policy", policy, "--no-mail"},
			} {
				code, out, peak := bombRun(t, cmd)
				t.Logf("%s: exit %d, peak RSS %.1f MiB", cmd[0], code, float64(peak)/(1<<20))
				if peak >= 256<<20 {
					t.Errorf("%s: peak RSS %d bytes, want under 256 MiB", cmd[0], peak)
				}
				if cmd[0] == "verify" && tc.only == "verify passes" {
					if code != 0 {
						t.Errorf("verify: exit %d, want 0 (the object matches its manifest; only a loader reads statements)\n%s", code, out)
					}
					continue
				}
				if code == 0 || !strings.Contains(out, tc.want) || !strings.Contains(out, name) {
					t.Errorf("%s: exit %d, want an error naming %s and containing %q:\n%s", cmd[0], code, name, tc.want, lastLines(out, 8))
				}
			}
		})
	}
}

// forgedSQL replaces a data or table object with statements a dump never writes, each of which
// a restore must refuse before executing anything of it.
func forgedSQL(t *testing.T, tg backupset.Target, orig *backupset.Manifest, dataKey, tableKey, cfgPath, policy, dsn, db string, recs []age.Recipient) {
	user := testenv.UniqueName("forged")
	ctx := context.Background()
	tkey := backupset.ObjectKey(orig.Policy, orig.SetID, tableKey)
	rc, err := tg.Get(ctx, tkey)
	if err != nil {
		t.Fatal(err)
	}
	table, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	// The later bombs start from the original table object.
	defer func() {
		if err := tg.Put(ctx, tkey, bytes.NewReader(table), int64(len(table))); err != nil {
			t.Fatal(err)
		}
	}()
	for _, tc := range []struct {
		name, key, sql, want string
		unsigned             bool // the forger has no signing key: the signature refuses the set first
	}{
		{"GRANT", dataKey, "GRANT ALL ON *.* TO '" + user + "'@'%' IDENTIFIED BY 'x';", "GRANT ALL", false},
		{"GRANT, unsigned", dataKey, "GRANT ALL ON *.* TO '" + user + "'@'%' IDENTIFIED BY 'x';", "GRANT ALL", true},
		{"CREATE USER", dataKey, "CREATE USER '" + user + "'@'%';", "CREATE USER", false},
		{"LOAD_FILE", dataKey, "INSERT INTO `t` (`id`,`v`) VALUES (9,LOAD_FILE('/etc/passwd'));", "LOAD_FILE", false},
		{"INTO OUTFILE", dataKey, "SELECT 1 INTO OUTFILE '/tmp/" + user + "';", "SELECT", false},
		{"USE other", dataKey, "USE mysql;", "USE MYSQL", false},
		{"SET GLOBAL", dataKey, "SET GLOBAL general_log = 1;", "SET of GLOBAL", false},
		{"other database", tableKey, "CREATE TABLE `mysql`.`" + user + "` (id INT);", "not of the object itself", false},
	} {
		t.Run("forged "+tc.name, func(t *testing.T) {
			var b bytes.Buffer
			w, err := seal.NewWriter(&b, recs, seal.Fastest)
			if err != nil {
				t.Fatal(err)
			}
			io.WriteString(w, "SET NAMES binary;\nSET sql_mode = '';\n"+tc.sql+"\n")
			w.Close()
			forge(t, tg, orig, tc.key, b.Bytes(), w.Sum().PlainSize)
			args := []string{"restore", "--config", cfgPath, "--policy", policy, "--to", dsn, "--as", db + "_r", "--drop-existing", "--yes"}
			if tc.unsigned {
				if err := tg.Delete(ctx, backupset.SignatureKey(orig.Policy, orig.SetID)); err != nil {
					t.Fatal(err)
				}
				code, out, errOut := runCLI(t, args...)
				if code == 0 || !strings.Contains(errOut, "not signed") || !strings.Contains(errOut, "--allow-unsigned") || strings.Contains(errOut, "statement refused") {
					t.Errorf("restore of an unsigned set: exit %d, want it refused for the missing signature before any statement is read:\n%s%s", code, out, lastLines(errOut, 4))
				}
				// --allow-unsigned accepts the missing signature, loudly; the allowlist still refuses.
				args = append(args, "--allow-unsigned")
			}
			code, out, errOut := runCLI(t, args...)
			if tc.unsigned && !strings.Contains(errOut, backupset.UnsignedWarning) {
				t.Errorf("restore --allow-unsigned: no warning %q on stderr:\n%s", backupset.UnsignedWarning, lastLines(errOut, 4))
			}
			if code == 0 || !strings.Contains(errOut, "statement refused") || !strings.Contains(errOut, tc.want) || !strings.Contains(errOut, tc.key) || !strings.Contains(errOut, "restore another set") {
				t.Errorf("restore: exit %d, want a refusal naming %s and %q:\n%s%s", code, tc.key, tc.want, out, lastLines(errOut, 4))
			}
		})
	}
	var n int
	out := testenvQuery(t, dsn, "SELECT COUNT(*) FROM mysql.user WHERE User = '"+user+"'")
	if n, _ = strconv.Atoi(strings.TrimSpace(out)); n != 0 {
		t.Errorf("got %d accounts named %s after the forged restores, want 0", n, user)
	}
	if _, err := os.Stat("/tmp/" + user); err == nil {
		t.Errorf("a forged restore wrote /tmp/%s", user)
	}
}

func testenvQuery(t *testing.T, dsn, q string) string {
	t.Helper()
	conn, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var s string
	if err := conn.QueryRow(q).Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

// forge puts sealed as object name of set m and rewrites the manifest's size, hash and plain size.
func forge(t *testing.T, tg backupset.Target, m *backupset.Manifest, name string, sealed []byte, plain int64) {
	t.Helper()
	ctx := context.Background()
	if err := tg.Put(ctx, backupset.ObjectKey(m.Policy, m.SetID, name), bytes.NewReader(sealed), int64(len(sealed))); err != nil {
		t.Fatal(err)
	}
	changed := *m
	changed.Objects = append([]backupset.Object(nil), m.Objects...)
	for i := range changed.Objects {
		if o := &changed.Objects[i]; o.Name == name {
			o.Size, o.SHA256, o.PlainSize = int64(len(sealed)), sha256Hex(sealed), plain
		}
	}
	data, err := json.Marshal(&changed)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := forgeSigner.Sign(signing.NamespaceManifest, data)
	if err != nil {
		t.Fatal(err)
	}
	if err := tg.Put(ctx, backupset.SignatureKey(m.Policy, m.SetID), bytes.NewReader(sig), int64(len(sig))); err != nil {
		t.Fatal(err)
	}
	if err := tg.Put(ctx, backupset.ManifestKey(m.Policy, m.SetID), bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
}

// forgeSigner is the key TestBombs signs its forged manifests with.
var forgeSigner *signing.Signer

// bombRun runs one command line in a child process (this test binary, which runs it
// in-process) and returns its exit code, output and peak RSS.
func bombRun(t *testing.T, args []string) (int, string, int64) {
	t.Helper()
	enc, _ := json.Marshal(args)
	cmd := exec.Command(os.Args[0], "-test.run=^TestBombs$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), bombChildEnv+"="+string(enc))
	outb, err := cmd.CombinedOutput()
	out := string(outb)
	if err != nil {
		t.Fatalf("child %v: %v\n%s", args, err, lastLines(out, 20))
	}
	code, peak := -1, int64(-1)
	for _, line := range strings.Split(out, "\n") {
		if _, v, ok := strings.Cut(line, "EXIT="); ok {
			code, _ = strconv.Atoi(strings.TrimSpace(v))
		}
		if _, v, ok := strings.Cut(line, "VmHWM-bytes="); ok {
			peak, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	if code < 0 || peak < 0 {
		t.Fatalf("the child did not report its exit code and peak RSS:\n%s", lastLines(out, 20))
	}
	return code, out, peak
}

func bombChild(t *testing.T, enc string) {
	var args []string
	if err := json.Unmarshal([]byte(enc), &args); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, &out, &errOut)
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	var kb int64 = -1
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ = strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		}
	}
	fmt.Printf("%s\n%s\nEXIT=%d\nVmHWM-bytes=%d\n", lastLines(out.String(), 10), lastLines(errOut.String(), 10), code, kb*1024)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
