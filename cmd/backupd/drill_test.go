package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/backupset"
	"github.com/backupd/backupd/internal/config"
	"github.com/backupd/backupd/internal/drill"
	"github.com/backupd/backupd/internal/keys"
	"github.com/backupd/backupd/internal/seal"
	"github.com/backupd/backupd/internal/targets"
	"github.com/backupd/backupd/internal/testenv"
	"github.com/backupd/backupd/internal/testenv/shop"
)

// TestDrillAcceptance is the drill's acceptance: a set holding Sakila and the shop database (scale 0.1) on
// MinIO and versitygw drills to PASS into an embedded scratch server (no scratch configured),
// the report is mailed (mailpit) with the table results in its HTML part and stored on both
// targets, and nothing is left behind — also when the drill is stopped with SIGTERM while it
// restores, into an embedded server and into unique databases on a DSN scratch.
func TestDrillAcceptance(t *testing.T) {
	dsn := testenv.MariaDBDSN(t)
	minioSrv, versity := testenv.MinIO(t), testenv.Versity(t)
	mail := testenv.Mailpit(t)
	sak := testenv.LoadSakila(t, dsn)
	shop := drillLoadShop(t, dsn)
	mBucket, vBucket := testenv.NewBucket(t, minioSrv), testenv.NewBucket(t, versity)
	keyFile, pub := testKey(t)
	policy := testenv.UniqueName("drill")
	bin := backupdBinary(t) // before TMPDIR changes: the binary outlives this test
	tmp := drillTempDir(t)

	cfg := writeConfig(t, fmt.Sprintf(`
targets:
  minio:%s
  versity:%s
encryption:
  recipients: [%s]
  identity_file: %s
smtp: {host: %s, port: %s, from: "backupd <backupd@example.com>", starttls: false}
policies:
  %s:
    schedule: "@daily"
    mysql:
      dsn: %s
      databases: [%s, %s]
      threads: 2
      chunk_size: 16MiB
    targets: [minio, versity]
    drill:
      checks:
        - name: films
          sql: "SELECT COUNT(*) FROM %s.film"
          expect: {equals: 1000}
        - name: paid orders
          sql: "SELECT COUNT(*) FROM orders WHERE status = 'paid'"
          database: %s
          expect: {min: 1}
      max_rto: 30m
      max_rpo: 1h
      notify: ["Lead <lead@example.com>"]
`, s3TargetYAML(minioSrv, mBucket), s3TargetYAML(versity, vBucket), pub, keyFile, mail.SMTPHost, mail.SMTPPort,
		policy, yamlString(dsn), sak, shop, sak, shop))

	if code, out, errOut := runCLI(t, "backup", "--config", cfg, "--policy", policy); code != 0 {
		t.Fatalf("backup: exit %d\n%s\n%s", code, out, errOut)
	}
	code, out, errOut := runCLI(t, "check-config", "--config", cfg)
	if code != 0 || !strings.Contains(out, "drill:     on demand only (no schedule), embedded scratch server, targets in rotation, 2 check(s), max_rto 30m0s, max_rpo 1h0m0s, report to Lead <lead@example.com>") {
		t.Errorf("check-config: exit %d, want the drill summarized:\n%s%s", code, out, errOut)
	}

	t.Run("pass", func(t *testing.T) {
		code, out, errOut := runCLI(t, "drill", "--config", cfg, "--policy", policy, "--json")
		if code != 0 {
			t.Fatalf("drill: exit %d, want 0\nstdout: %s\nstderr: %s", code, out, errOut)
		}
		var rep drill.Report
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("drill --json printed %q: %v", out, err)
		}
		if rep.Result != drill.Pass || len(rep.Reasons) != 0 || rep.Target != "minio" || rep.Scratch.Kind != "embedded" {
			t.Errorf("got result %s (%v) from target %s in a %q scratch, want PASS from minio (first in rotation) in an embedded one",
				rep.Result, rep.Reasons, rep.Target, rep.Scratch.Kind)
		}
		tables := 0
		for _, db := range rep.Databases {
			for _, tr := range db.Tables {
				tables++
				if tr.Status != drill.TableOK || tr.RowsFound == nil || *tr.RowsFound != tr.RowsExpected || tr.ChecksumFound != tr.ChecksumExpected {
					t.Errorf("table %s.%s: got %+v, want ok with rows and checksum as expected", db.Source, tr.Name, tr)
				}
			}
		}
		if tables != 16+3 {
			t.Errorf("the report lists %d tables, want 19 (Sakila's 16 and the shop's 3)", tables)
		}
		if len(rep.Checks) != 2 || rep.Checks[0].Status != drill.CheckPass || rep.Checks[1].Status != drill.CheckPass {
			t.Errorf("checks: got %+v, want both passed", rep.Checks)
		}
		if rep.RTOSeconds <= 0 || rep.RPOSeconds <= 0 || rep.RPOSeconds > 3600 || len(rep.Trend) != 1 {
			t.Errorf("got RTO %.1fs, RPO %.1fs, trend %d; want both measured, RPO under an hour, a trend of this drill", rep.RTOSeconds, rep.RPOSeconds, len(rep.Trend))
		}

		msg := drillMail(t, mail, "[backupd] drill PASS "+policy, "")
		for _, want := range []string{"Restoration drill PASS", sak, shop, "rental", "orders", "events", "equal", "16044", "paid orders", "RTO of the last 1 drills"} {
			if !strings.Contains(msg.HTML, want) {
				t.Errorf("the mail's HTML part lacks %q", want)
			}
		}
		if !strings.HasPrefix(msg.Text, "backupd drill PASS: policy "+policy) {
			t.Errorf("the mail's text part starts %q, want the verdict", firstLine(msg.Text))
		}

		// The report is on both targets, and the history lists it.
		for _, b := range []struct {
			srv    testenv.S3
			bucket string
		}{{minioSrv, mBucket}, {versity, vBucket}} {
			for _, ext := range []string{".json", ".html"} {
				key := policy + "/drills/" + rep.ID + ext
				if len(getObject(t, testenv.S3Client(t, b.srv), b.bucket, key)) == 0 {
					t.Errorf("%s: %s is empty", b.srv.Name, key)
				}
			}
		}
		code, out, errOut = runCLI(t, "drill", "history", "--config", cfg, "--policy", policy, "--json")
		var hist []drill.Summary
		if code != 0 || json.Unmarshal([]byte(out), &hist) != nil || len(hist) != 1 ||
			hist[0].ID != rep.ID || hist[0].Result != drill.Pass || hist[0].Target != "minio" || strings.Join(hist[0].StoredOn, ",") != "minio,versity" {
			t.Errorf("drill history --json: exit %d, got %s%s; want this drill, stored on minio and versity", code, out, errOut)
		}
		drillNothingLeft(t, tmp, dsn, policy)
	})

	// SIGTERM while the data loads: the binary, as a real process, as an operator or systemd
	// would stop it. The first drill read minio, so rotation reads versity in both.
	t.Run("sigterm embedded", func(t *testing.T) {
		drillInterrupt(t, bin, cfg, policy, tmp, func() bool {
			socks, _ := filepath.Glob(filepath.Join(tmp, "backupd-drill-*", "server", "mysqld.sock"))
			return len(socks) > 0
		})
		drillNothingLeft(t, tmp, dsn, policy)
	})
	t.Run("sigterm dsn", func(t *testing.T) {
		dsnCfg := strings.Replace(mustRead(t, cfg), "    drill:\n", "    drill:\n      scratch: {dsn: "+yamlString(dsn)+"}\n", 1)
		if err := os.WriteFile(cfg, []byte(dsnCfg), 0o600); err != nil {
			t.Fatal(err)
		}
		db := testenv.OpenDB(t, dsn)
		drillInterrupt(t, bin, cfg, policy, tmp, func() bool { return len(drillDatabases(t, db, policy)) > 0 })
		drillNothingLeft(t, tmp, dsn, policy)
	})
	code, out, _ = runCLI(t, "drill", "history", "--config", cfg, "--policy", policy)
	if code != 0 || strings.Count(out, "PASS") != 1 {
		t.Errorf("drill history after two interrupted drills: exit %d, want the one finished drill only:\n%s", code, out)
	}
}

// TestDrillDamagedSet: a data object replaced by a validly encrypted object with one value
// changed (and the manifest's size and SHA-256 of it updated, as a bug or an attacker could)
// fails the drill on the checksum, naming the table; a deleted object fails it naming the
// object. Neither leaves a scratch database or temporary directory behind. The scratch is a
// DSN here, so that path is covered too.
func TestDrillDamagedSet(t *testing.T) {
	dsn := testenv.MariaDBDSN(t)
	minioSrv := testenv.MinIO(t)
	mail := testenv.Mailpit(t)
	sak := testenv.LoadSakila(t, dsn)
	bucket := testenv.NewBucket(t, minioSrv)
	keyFile, pub := testKey(t)
	policy := testenv.UniqueName("drill")
	tmp := drillTempDir(t)
	cfgPath := writeConfig(t, fmt.Sprintf(`
targets:
  minio:%s
encryption:
  recipients: [%s]
  identity_file: %s
smtp: {host: %s, port: %s, from: backupd@example.com, starttls: false}
policies:
  %s:
    schedule: "@daily"
    mysql: {dsn: %s, databases: [%s], threads: 2}
    targets: [minio]
    drill:
      scratch: {dsn: %s}
      checks:
        - {name: actors, sql: "SELECT COUNT(*) FROM %s.actor", expect: {equals: 200}}
      notify: [lead@example.com]
`, s3TargetYAML(minioSrv, bucket), pub, keyFile, mail.SMTPHost, mail.SMTPPort, policy, yamlString(dsn), sak, yamlString(dsn), sak))
	if code, out, errOut := runCLI(t, "backup", "--config", cfgPath, "--policy", policy); code != 0 {
		t.Fatalf("backup: exit %d\n%s\n%s", code, out, errOut)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.Policies[policy]
	dests, err := cfg.OpenTargets(p, targets.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	sets, _, err := backupset.List(ctx, dests[0].Target, policy, time.Now(), cfgTrust(t, cfg))
	if err != nil || len(sets) != 1 {
		t.Fatalf("list: %d sets, %v", len(sets), err)
	}
	m := sets[0]
	dr, err := m.Dump()
	if err != nil {
		t.Fatal(err)
	}
	dataObject := func(table string) string {
		for _, o := range dr.Databases[0].Objects {
			if o.Kind == "data" && o.Name == table {
				return o.Key
			}
		}
		t.Fatalf("no data object of table %s in the set", table)
		return ""
	}

	t.Run("one value changed", func(t *testing.T) {
		name := dataObject("actor")
		drillReseal(t, cfg, dests[0].Target, m, name, func(sql []byte) []byte {
			if !bytes.Contains(sql, []byte("'PENELOPE'")) {
				t.Fatalf("object %s does not hold 'PENELOPE'", name)
			}
			return bytes.Replace(sql, []byte("'PENELOPE'"), []byte("'PENELOPX'"), 1)
		})
		code, out, errOut := runCLI(t, "drill", "--config", cfgPath, "--policy", policy, "--json")
		if code != 1 {
			t.Fatalf("drill of a set with a changed value: exit %d, want 1\nstdout: %s\nstderr: %s", code, out, errOut)
		}
		var rep drill.Report
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("drill --json printed %q: %v", out, err)
		}
		if rep.Result != drill.Fail || len(rep.Reasons) == 0 || !strings.Contains(rep.Reasons[0], "table "+sak+".actor differs from the backup") ||
			!strings.Contains(rep.Reasons[0], "checksum") {
			t.Errorf("got %s with reasons %q, want FAIL naming table %s.actor and its checksum first", rep.Result, rep.Reasons, sak)
		}
		for _, tr := range rep.Databases[0].Tables {
			wantStatus := drill.TableOK
			if tr.Name == "actor" {
				wantStatus = drill.TableMismatch
				if tr.RowsFound == nil || *tr.RowsFound != 200 || tr.ChecksumFound == tr.ChecksumExpected {
					t.Errorf("actor: got %+v, want 200 rows found and a different checksum", tr)
				}
			}
			if tr.Status != wantStatus {
				t.Errorf("table %s: got status %s, want %s", tr.Name, tr.Status, wantStatus)
			}
		}
		if !strings.HasPrefix(rep.Databases[0].RestoredAs, "drill_"+policy+"_") {
			t.Errorf("restored as %q, want a drill_%s_… database", rep.Databases[0].RestoredAs, policy)
		}
		msg := drillMail(t, mail, "[backupd] drill FAIL "+policy, "actor")
		for _, part := range []string{msg.Text, msg.HTML} {
			if !strings.Contains(part, sak+".actor differs from the backup") || !strings.Contains(part, "a value changed") {
				t.Errorf("the FAIL mail does not name the table and the reason:\n%s", part)
			}
		}
		drillNothingLeft(t, tmp, dsn, policy)
	})

	t.Run("object deleted", func(t *testing.T) {
		name := dataObject("film")
		key := backupset.ObjectKey(policy, m.SetID, name)
		if err := dests[0].Target.Delete(ctx, key); err != nil {
			t.Fatal(err)
		}
		code, out, errOut := runCLI(t, "drill", "--config", cfgPath, "--policy", policy)
		if code != 1 {
			t.Fatalf("drill of a set with a deleted object: exit %d, want 1\nstdout: %s\nstderr: %s", code, out, errOut)
		}
		want := fmt.Sprintf("object %s (table %s.film) is missing on target minio", name, sak)
		if !strings.Contains(out, want) || !strings.Contains(errOut, want) {
			t.Errorf("want %q in the report and the error line\nstdout: %s\nstderr: %s", want, out, lastLine([]byte(errOut)))
		}
		msg := drillMail(t, mail, "[backupd] drill FAIL "+policy, "is missing")
		if !strings.Contains(msg.Text, want) || !strings.Contains(msg.HTML, want) {
			t.Errorf("the FAIL mail does not name the missing object:\n%s", msg.Text)
		}
		drillNothingLeft(t, tmp, dsn, policy)
	})

	code, out, _ := runCLI(t, "drill", "history", "--config", cfgPath, "--policy", policy)
	if code != 0 || strings.Count(out, "FAIL") != 2 || !strings.Contains(out, ".film) is missing on target minio") {
		t.Errorf("drill history: exit %d, want both failed drills with their first problem:\n%s", code, out)
	}
}

func TestDrillUsage(t *testing.T) {
	cfg := writeConfig(t, `
targets:
  a: {type: dir, path: ./a}
encryption: {recipients: [age19gsf8cnqu7y73xgdp2ywxrqwphncwczp5kx5m46dppdahgf2895stj9rh8]}
policies:
  p: {schedule: "@daily", mysql: {dsn: "root@tcp(127.0.0.1:1)/"}, targets: [a]}
`)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"drill", "--config", cfg, "--set", "yesterday"}, "is not a set ID"},
		{[]string{"drill", "--config", cfg, "--threads", "0"}, "--threads must be at least 1"},
		{[]string{"drill", "--config", cfg, "--policy", "nope"}, `no policy "nope"`},
		{[]string{"drill", "--config", cfg}, "cannot load the private key"},
		{[]string{"drill", "history", "--config", cfg, "extra"}, "unexpected argument"},
	} {
		code, _, errOut := runCLI(t, tc.args...)
		if code != exitUsage || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, %q; want exit 2 and %q", tc.args, code, errOut, tc.want)
		}
	}
	code, out, _ := runCLI(t, "drill", "history", "--config", cfg)
	if code != 0 || !strings.Contains(out, "no drills of policy p") {
		t.Errorf("drill history of a policy without drills: exit %d, %q", code, out)
	}
}

// drillLoadShop generates the shop database at scale 0.1 under a unique name, dropped when the
// test ends.
func drillLoadShop(t *testing.T, dsn string) string {
	t.Helper()
	name := testenv.UniqueName("bk_shop")
	testenv.DropDatabaseLater(t, dsn, name)
	if _, err := shop.Generate(context.Background(), shop.Options{DSN: dsn, Database: name, Scale: 0.1}); err != nil {
		t.Fatal(err)
	}
	return name
}

// drillTempDir points the drills at a directory of the test's own (TMPDIR, which the embedded
// scratch and the spool use), so "nothing left behind" can be checked exactly. t.TempDir and
// anything else made with os.MkdirTemp("") go there too until the test ends.
func drillTempDir(t *testing.T) string {
	t.Helper()
	dir := searchableTempDir(t)
	t.Setenv("TMPDIR", dir)
	return dir
}

// searchableTempDir is a t.TempDir the embedded scratch's unprivileged account can pass
// through to its own directory (t.TempDir's parent is 0700).
func searchableTempDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// drillNothingLeft checks that no drill left a directory in tmp, a process running from it, or
// a drill database of the policy on the main server.
func drillNothingLeft(t *testing.T, tmp, dsn, policy string) {
	t.Helper()
	if left, _ := filepath.Glob(filepath.Join(tmp, "backupd-drill-*")); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, []byte(tmp+"/")) {
			t.Errorf("a process still runs from the drill's directory: %s", bytes.ReplaceAll(b, []byte{0}, []byte{' '}))
		}
	}
	if dbs := drillDatabases(t, testenv.OpenDB(t, dsn), policy); len(dbs) > 0 {
		t.Errorf("scratch databases left behind: %v", dbs)
	}
}

func drillDatabases(t *testing.T, db *sql.DB, policy string) []string {
	t.Helper()
	rows, err := db.Query("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE ?",
		"drill\\_"+strings.ReplaceAll(policy, "_", "\\_")+"\\_%")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		rows.Scan(&s)
		out = append(out, s)
	}
	return out
}

// drillInterrupt starts a drill as a process, sends it SIGTERM once it loads table data (its
// log says so) and ready() holds, and expects exit 130.
func drillInterrupt(t *testing.T, bin, cfg, policy, tmp string, ready func() bool) {
	t.Helper()
	cmd := exec.Command(bin, "drill", "--config", cfg, "--policy", policy)
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	var out bytes.Buffer
	errOut := &drillSyncBuffer{}
	cmd.Stdout, cmd.Stderr = &out, errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.After(3 * time.Minute)
	for !strings.Contains(errOut.String(), `"phase":"data"`) || !ready() {
		select {
		case err := <-done:
			t.Fatalf("the drill ended (%v) before it could be interrupted\n%s\n%s", err, out.String(), errOut.String())
		case <-deadline:
			cmd.Process.Kill()
			t.Fatalf("the drill did not start loading within 3 minutes\n%s", errOut.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != exitInterrupted {
			t.Errorf("after SIGTERM: %v, want exit %d\nstdout: %s\nstderr: %s", err, exitInterrupted, out.String(), errOut.String())
		}
		if !strings.Contains(errOut.String(), "everything it created was removed") {
			t.Errorf("stderr lacks the interruption message: %s", lastLine([]byte(errOut.String())))
		}
		t.Logf("stopped %s after SIGTERM", time.Since(start).Round(time.Millisecond))
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		t.Fatalf("the drill did not stop within 2 minutes of SIGTERM\n%s", errOut.String())
	}
}

// drillSyncBuffer is a buffer a process writes to while the test reads it.
type drillSyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *drillSyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *drillSyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// drillReseal replaces object name of set m with its content changed by edit, encrypted to
// the config's recipients, and rewrites the manifest's size and SHA-256 for it: the object
// then passes every integrity check, and only the table checksum can tell.
func drillReseal(t *testing.T, cfg *config.Config, tg backupset.Target, m *backupset.Manifest, name string, edit func([]byte) []byte) {
	t.Helper()
	ctx := context.Background()
	ids, err := keys.Identities(cfg, "")
	if err != nil {
		t.Fatal(err)
	}
	recs, err := seal.ParseRecipients(cfg.Encryption.Recipients)
	if err != nil {
		t.Fatal(err)
	}
	key := backupset.ObjectKey(m.Policy, m.SetID, name)
	rc, err := tg.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := seal.Open(rc, ids)
	if err != nil {
		t.Fatal(err)
	}
	sql, err := io.ReadAll(plain)
	plain.Close()
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	var sealed bytes.Buffer
	w, err := seal.NewWriter(&sealed, recs, seal.Level(m.Compression))
	if err != nil {
		t.Fatal(err)
	}
	w.Write(edit(sql))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := tg.Put(ctx, key, bytes.NewReader(sealed.Bytes()), int64(sealed.Len())); err != nil {
		t.Fatal(err)
	}
	sum := w.Sum()
	changed := *m
	changed.Objects = append([]backupset.Object(nil), m.Objects...)
	for i := range changed.Objects {
		if o := &changed.Objects[i]; o.Name == name {
			o.Size, o.SHA256, o.PlainSize = sum.SealedSize, sum.SHA256, sum.PlainSize
		}
	}
	data, err := json.Marshal(&changed)
	if err != nil {
		t.Fatal(err)
	}
	// Signed with the host's own key: the damage is what the drill must find, not the signature.
	putSignedManifest(t, cfg, tg, m.Policy, m.SetID, data)
}

type drillMailMessage struct {
	ID, Subject, Text, HTML string
}

// drillMail waits for a message with exactly subject whose text contains marker, and returns
// it in full. Subjects carry the test's unique policy name.
func drillMail(t *testing.T, m testenv.Mail, subject, marker string) drillMailMessage {
	t.Helper()
	get := func(u string, v any) {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatalf("mailpit API: %v", err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("mailpit API GET %s: %s: %s", u, resp.Status, b)
		}
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatalf("mailpit API GET %s: %v", u, err)
		}
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		var list struct {
			Messages []struct{ ID, Subject string }
		}
		get(m.APIURL+"/api/v1/search?query="+url.QueryEscape(`subject:"`+subject+`"`), &list)
		for _, s := range list.Messages {
			if s.Subject != subject {
				continue
			}
			var full drillMailMessage
			get(m.APIURL+"/api/v1/message/"+s.ID, &full)
			if strings.Contains(full.Text, marker) {
				return full
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no mail with subject %q containing %q in mailpit at %s (found %d with the subject)", subject, marker, m.APIURL, len(list.Messages))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
