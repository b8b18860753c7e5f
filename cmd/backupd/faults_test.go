package main

// Fault tests: real backups against the real servers with a fault injected between backupd
// and one of them (toxiproxy for TCP faults, a small HTTP proxy for what toxiproxy cannot
// do, a full tmpfs for a dir target). Each ends with the exit code and message documented
// in docs/failure-modes.md, nothing partial listed, and every listed set passing verify.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/testenv"
)

// faultToxiproxy is one toxiproxy proxy, removed when the test ends.
type faultToxiproxy struct {
	api, name, listen string
}

func newFaultToxiproxy(t *testing.T, upstream string) *faultToxiproxy {
	t.Helper()
	p := &faultToxiproxy{api: testenv.Toxiproxy(t), name: testenv.UniqueName("faults")}
	var got struct{ Listen string }
	p.post(t, "/proxies", map[string]any{"name": p.name, "listen": "127.0.0.1:0", "upstream": upstream, "enabled": true}, &got)
	p.listen = got.Listen
	t.Cleanup(func() {
		req, _ := http.NewRequest(http.MethodDelete, p.api+"/proxies/"+p.name, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	})
	return p
}

func (p *faultToxiproxy) post(t *testing.T, path string, body, out any) {
	t.Helper()
	b, _ := json.Marshal(body)
	resp, err := http.Post(p.api+path, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatalf("toxiproxy: %v", err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		t.Fatalf("toxiproxy POST %s: %s: %s", path, resp.Status, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("toxiproxy answer %s: %v", data, err)
		}
	}
}

func (p *faultToxiproxy) enable(t *testing.T, on bool) {
	t.Helper()
	p.post(t, "/proxies/"+p.name, map[string]any{"enabled": on}, nil)
}

func (p *faultToxiproxy) toxic(t *testing.T, typ string, attrs map[string]any) {
	t.Helper()
	p.post(t, "/proxies/"+p.name+"/toxics", map[string]any{
		"name": typ, "type": typ, "stream": "downstream", "toxicity": 1.0, "attributes": attrs,
	}, nil)
}

// faultEnv is a key, a small database and a policy name for one fault test.
type faultEnv struct {
	dsn, db, keyFile, pub, policy string
}

func newFaultEnv(t *testing.T) faultEnv {
	t.Helper()
	dsn := testenv.MariaDBDSN(t)
	keyFile, pub := testKey(t)
	return faultEnv{dsn: dsn, db: testenv.SmallDatabase(t, dsn, "fault"), keyFile: keyFile, pub: pub,
		policy: testenv.UniqueName("fault")}
}

// config writes a config with the given targets section (YAML under "targets:"), every
// one of them used by the policy, and min_targets if it is not 0.
func (e faultEnv) config(t *testing.T, targetsYAML string, names []string, minTargets int) string {
	t.Helper()
	min := ""
	if minTargets > 0 {
		min = fmt.Sprintf("\n    min_targets: %d", minTargets)
	}
	return writeConfig(t, fmt.Sprintf(`
targets:%s
encryption:
  recipients: [%s]
  identity_file: %s
policies:
  %s:
    schedule: "@daily"
    mysql:
      dsn: %s
      databases: [%s]
    targets: [%s]%s
`, targetsYAML, e.pub, e.keyFile, e.policy, yamlString(e.dsn), yamlString(e.db), strings.Join(names, ", "), min))
}

// checkListedSetsVerify fails the test unless list shows exactly want sets (by the
// targets each is on) and every one passes verify on every target it is listed on.
func checkListedSetsVerify(t *testing.T, cfg, policy string, wantTargets [][]string) {
	t.Helper()
	sets := listJSON(t, cfg, policy)
	if len(sets) != len(wantTargets) {
		t.Fatalf("list: got %d sets (%+v), want %d", len(sets), sets, len(wantTargets))
	}
	for i, s := range sets {
		if s.Untrusted != "" {
			t.Errorf("set %s is listed as untrusted: %s", s.ID, s.Untrusted)
		}
		if got, want := strings.Join(s.Targets, ","), strings.Join(wantTargets[i], ","); got != want {
			t.Errorf("set %s: on targets %q, want %q", s.ID, got, want)
		}
		for _, target := range s.Targets {
			code, out, errOut := runCLI(t, "verify", "--config", cfg, "--policy", policy, "--set", s.ID, "--target", target)
			if code != 0 {
				t.Errorf("set %s on %s is listed but does not verify: exit %d\n%s%s", s.ID, target, code, out, errOut)
			}
		}
	}
}

// TestFaultTargetDown: one target's endpoint accepts no connection for the whole job (a
// disabled toxiproxy proxy). The other target gets the set; min_targets decides whether
// that is a success.
func TestFaultTargetDown(t *testing.T) {
	srv := testenv.MinIO(t)
	for _, tc := range []struct {
		name       string
		minTargets int
		wantCode   int
		wantErr    string
		wantListed [][]string
	}{
		{"min_targets 1", 1, exitOK, "", [][]string{{"up"}}},
		// The set is whole on "up" and stays there (deleting good data helps no one), but
		// the job fails: fewer targets have it than the policy asks for.
		{"min_targets 2", 2, exitJobFailed, "min_targets is 2", [][]string{{"up"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newFaultEnv(t)
			proxy := newFaultToxiproxy(t, hostOf(t, srv.Endpoint))
			proxy.enable(t, false)
			down := srv
			down.Endpoint = "http://" + proxy.listen
			cfg := e.config(t, "\n  up:"+s3TargetYAML(srv, testenv.NewBucket(t, srv))+
				"\n  down:"+s3TargetYAML(down, testenv.NewBucket(t, srv)), []string{"up", "down"}, tc.minTargets)
			code, _, errOut := runCLI(t, "backup", "--config", cfg, "--policy", e.policy)
			t.Logf("backup: exit %d; last line of stderr: %s", code, lastLine([]byte(errOut)))
			if code != tc.wantCode {
				t.Fatalf("backup: exit %d, want %d\n%s", code, tc.wantCode, errOut)
			}
			if tc.wantErr != "" && !strings.Contains(errOut, tc.wantErr) {
				t.Errorf("backup stderr: got %q, want it to contain %q", errOut, tc.wantErr)
			}
			// list needs every target of the policy; it is checked once the target is back.
			proxy.enable(t, true)
			checkListedSetsVerify(t, cfg, e.policy, tc.wantListed)
		})
	}
}

func hostOf(t *testing.T, endpoint string) string {
	t.Helper()
	u, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// slowDownProxy answers 503 SlowDown to bursts of requests (burst in a row out of every
// period) and forwards the rest to the real server, as a throttling provider does.
type slowDownProxy struct {
	next          http.Handler
	period, burst int64
	count, failed atomic.Int64
}

func (p *slowDownProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if n := p.count.Add(1); n%p.period < p.burst {
		p.failed.Add(1)
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>`))
		return
	}
	p.next.ServeHTTP(w, r)
}

// TestFaultSlowDown: the only target throttles in bursts of two requests out of every five
// (more than minio-go's own three attempts can always absorb when bursts meet); the backup
// retries with backoff and succeeds, and the set verifies.
func TestFaultSlowDown(t *testing.T) {
	srv := testenv.MinIO(t)
	e := newFaultEnv(t)
	u, err := url.Parse(srv.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	sp := &slowDownProxy{next: httputil.NewSingleHostReverseProxy(u), period: 5, burst: 2}
	ps := httptest.NewServer(sp)
	defer ps.Close()
	slow := srv
	slow.Endpoint = ps.URL
	cfg := e.config(t, "\n  slow:"+s3TargetYAML(slow, testenv.NewBucket(t, srv)), []string{"slow"}, 0)
	code, _, errOut := runCLI(t, "backup", "--config", cfg, "--policy", e.policy)
	t.Logf("backup: exit %d; last line of stderr: %s", code, lastLine([]byte(errOut)))
	if code != exitOK {
		t.Fatalf("backup through bursts of SlowDown: exit %d, want 0\n%s", code, errOut)
	}
	if sp.failed.Load() == 0 {
		t.Fatal("the proxy answered no request with SlowDown; the test proves nothing")
	}
	checkListedSetsVerify(t, cfg, e.policy, [][]string{{"slow"}})
}

// TestFaultSlowNetwork: latency spikes and a bandwidth cap between backupd and MinIO
// (toxiproxy) slow the backup down but do not fail it.
func TestFaultSlowNetwork(t *testing.T) {
	srv := testenv.MinIO(t)
	for _, tc := range []struct {
		toxic string
		attrs map[string]any
	}{
		{"latency", map[string]any{"latency": 200, "jitter": 150}},
		{"bandwidth", map[string]any{"rate": 256}}, // KB/s
	} {
		t.Run(tc.toxic, func(t *testing.T) {
			e := newFaultEnv(t)
			proxy := newFaultToxiproxy(t, hostOf(t, srv.Endpoint))
			proxy.toxic(t, tc.toxic, tc.attrs)
			slow := srv
			slow.Endpoint = "http://" + proxy.listen
			cfg := e.config(t, "\n  slow:"+s3TargetYAML(slow, testenv.NewBucket(t, srv)), []string{"slow"}, 0)
			code, _, errOut := runCLI(t, "backup", "--config", cfg, "--policy", e.policy)
			t.Logf("backup: exit %d; last line of stderr: %s", code, lastLine([]byte(errOut)))
			if code != exitOK {
				t.Fatalf("backup through %s: exit %d, want 0\n%s", tc.toxic, code, errOut)
			}
			checkListedSetsVerify(t, cfg, e.policy, [][]string{{"slow"}})
		})
	}
}

// TestFaultDirTargetFull: the only target is a dir on a 256 KiB tmpfs that the backup
// fills. The backup fails with a message that says the disk is full, nothing is listed,
// and no temporary file is left behind.
func TestFaultDirTargetFull(t *testing.T) {
	dsn := testenv.MariaDBDSN(t)
	e := newFaultEnv(t)
	e.db = testenv.LoadSakila(t, dsn) // megabytes of dump, far more than the tmpfs holds
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount a small tmpfs (the tests run as root): %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	cfg := e.config(t, fmt.Sprintf("\n  full:\n    type: dir\n    path: %s", dir), []string{"full"}, 0)
	code, _, errOut := runCLI(t, "backup", "--config", cfg, "--policy", e.policy)
	t.Logf("backup: exit %d; last line of stderr: %s", code, lastLine([]byte(errOut)))
	if code != exitJobFailed {
		t.Fatalf("backup to a full disk: exit %d, want %d\n%s", code, exitJobFailed, errOut)
	}
	if !strings.Contains(errOut, "no space left on device") {
		t.Errorf("backup stderr: got %q, want it to say no space left on device", errOut)
	}
	checkListedSetsVerify(t, cfg, e.policy, nil)
	var left []string
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			left = append(left, strings.TrimPrefix(path, dir))
		}
		return nil
	})
	for _, f := range left {
		if strings.Contains(filepath.Base(f), ".tmp") || strings.HasPrefix(filepath.Base(f), ".") {
			t.Errorf("temporary file left on the full target: %s (all files: %q)", f, left)
		}
	}
}

// randomTable adds a table of about mib MiB of incompressible data to db, so that its
// sealed object is larger than one 5 MiB multipart part.
func randomTable(t *testing.T, dsn, db string, mib int) {
	t.Helper()
	conn := testenv.OpenDB(t, dsn)
	for _, q := range []string{
		"CREATE TABLE " + quoteIdent(db) + ".blobs (id INT PRIMARY KEY, b VARBINARY(1024))",
		fmt.Sprintf("INSERT INTO %s.blobs SELECT seq, RANDOM_BYTES(1024) FROM %s.seq_1_to_%d", quoteIdent(db), quoteIdent(db), mib*1024),
	} {
		if _, err := conn.Exec(q); err != nil {
			t.Fatalf("create a table of random bytes: %v", err)
		}
	}
}

// resetProxy drops the connection in the middle of the body of the first `resets` PUTs of
// multipart part 2, and forwards everything else to the real server.
type resetProxy struct {
	next   http.Handler
	resets int64
	done   atomic.Int64
}

func (p *resetProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPut && r.URL.Query().Get("partNumber") == "2" && p.done.Add(1) <= p.resets {
		io.CopyN(io.Discard, r.Body, r.ContentLength/2)
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			conn.Close()
		}
		return
	}
	p.next.ServeHTTP(w, r)
}

// TestFaultResetMidMultipart drops the connection in the middle of a multipart part. Once
// is retried and the backup succeeds; every time fails the backup, lists nothing and
// leaves no incomplete multipart upload in the bucket.
func TestFaultResetMidMultipart(t *testing.T) {
	srv := testenv.MinIO(t)
	for _, tc := range []struct {
		name       string
		resets     int64
		wantCode   int
		wantListed [][]string
	}{
		{"once", 1, exitOK, [][]string{{"flaky"}}},
		{"always", 1 << 30, exitJobFailed, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newFaultEnv(t)
			randomTable(t, e.dsn, e.db, 7)
			u, err := url.Parse(srv.Endpoint)
			if err != nil {
				t.Fatal(err)
			}
			rp := &resetProxy{next: httputil.NewSingleHostReverseProxy(u), resets: tc.resets}
			ps := httptest.NewServer(rp)
			defer ps.Close()
			flaky := srv
			flaky.Endpoint = ps.URL
			bucket := testenv.NewBucket(t, srv)
			cfg := e.config(t, "\n  flaky:"+s3TargetYAML(flaky, bucket)+"\n    part_size: 5MiB", []string{"flaky"}, 0)
			code, _, errOut := runCLI(t, "backup", "--config", cfg, "--policy", e.policy)
			t.Logf("backup: exit %d; last line of stderr: %s", code, lastLine([]byte(errOut)))
			if code != tc.wantCode {
				t.Fatalf("backup: exit %d, want %d\n%s", code, tc.wantCode, errOut)
			}
			if rp.done.Load() == 0 {
				t.Fatal("no multipart part 2 went through the proxy; the test proves nothing")
			}
			checkListedSetsVerify(t, cfg, e.policy, tc.wantListed)
			raw := testenv.S3Client(t, srv)
			for up := range raw.ListIncompleteUploads(context.Background(), bucket, "", true) {
				t.Errorf("incomplete multipart upload left: %s (%v)", up.Key, up.Err)
			}
		})
	}
}

// TestFaultKillDumpConnection kills the dump's connection (KILL CONNECTION) while the server
// sends a table of 8 MiB of random bytes (16 MiB as hex), which takes long enough to be seen
// in the process list. The backup fails, naming the table, and commits nothing. (A
// bandwidth cap in toxiproxy does not help here: toxiproxy reads the whole result at once,
// so the query is over on the server while the client still reads.)
func TestFaultKillDumpConnection(t *testing.T) {
	srv := testenv.MinIO(t)
	e := newFaultEnv(t)
	randomTable(t, e.dsn, e.db, 8)
	cfg := e.config(t, "\n  minio:"+s3TargetYAML(srv, testenv.NewBucket(t, srv)), []string{"minio"}, 0)

	admin := testenv.OpenDB(t, testenv.MariaDBDSN(t))
	killed := make(chan string, 1)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			var id int64
			err := admin.QueryRow("SELECT id FROM information_schema.processlist WHERE info LIKE ? AND info NOT LIKE '%processlist%' AND id <> CONNECTION_ID() LIMIT 1",
				"SELECT %"+quoteIdent(e.db)+".`blobs`%").Scan(&id)
			if err != nil {
				continue
			}
			if _, err := admin.Exec(fmt.Sprintf("KILL CONNECTION %d", id)); err == nil {
				killed <- fmt.Sprint(id)
				return
			}
		}
	}()
	code, _, errOut := runCLI(t, "backup", "--config", cfg, "--policy", e.policy)
	t.Logf("backup: exit %d; last line of stderr: %s", code, lastLine([]byte(errOut)))
	select {
	case id := <-killed:
		t.Logf("killed connection %s", id)
	default:
		t.Fatalf("the dump's SELECT on blobs was never seen, so nothing was killed (backup exit %d)\n%s", code, errOut)
	}
	if code != exitJobFailed {
		t.Fatalf("backup with its dump connection killed: exit %d, want %d\n%s", code, exitJobFailed, errOut)
	}
	if !strings.Contains(errOut, "blobs") {
		t.Errorf("backup stderr: got %q, want it to name the table blobs", errOut)
	}
	checkListedSetsVerify(t, cfg, e.policy, nil)
}

func (p *faultToxiproxy) removeToxic(t *testing.T, name string) {
	req, _ := http.NewRequest(http.MethodDelete, p.api+"/proxies/"+p.name+"/toxics/"+name, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Errorf("toxiproxy: remove toxic %s: %v", name, err)
		return
	}
	resp.Body.Close()
}

// TestFaultTimeout: for the first seconds of the job every connection to the target
// stalls and is closed after 500 ms (toxiproxy's timeout toxic), as an overloaded
// provider or a dropping firewall does. The requests are retried and the backup succeeds
// once the stall is over.
func TestFaultTimeout(t *testing.T) {
	srv := testenv.MinIO(t)
	e := newFaultEnv(t)
	proxy := newFaultToxiproxy(t, hostOf(t, srv.Endpoint))
	slow := srv
	slow.Endpoint = "http://" + proxy.listen
	cfg := e.config(t, "\n  stalled:"+s3TargetYAML(slow, testenv.NewBucket(t, srv)), []string{"stalled"}, 0)
	proxy.post(t, "/proxies/"+proxy.name+"/toxics", map[string]any{
		"name": "timeout", "type": "timeout", "stream": "upstream", "toxicity": 1.0, "attributes": map[string]any{"timeout": 500},
	}, nil)
	lifted := time.AfterFunc(2*time.Second, func() { proxy.removeToxic(t, "timeout") })
	defer lifted.Stop()
	code, _, errOut := runCLI(t, "backup", "--config", cfg, "--policy", e.policy)
	t.Logf("backup: exit %d; last line of stderr: %s", code, lastLine([]byte(errOut)))
	if code != exitOK {
		t.Fatalf("backup through a stall of 2 s: exit %d, want 0\n%s", code, errOut)
	}
	if !strings.Contains(errOut, "target operation failed, retrying") {
		t.Errorf("backup stderr has no retry: the stall was not met, so the test proves nothing\n%s", errOut)
	}
	checkListedSetsVerify(t, cfg, e.policy, [][]string{{"stalled"}})
}
