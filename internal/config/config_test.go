package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"go.yaml.in/yaml/v3"

	"github.com/backupd/backupd/internal/seal"
)

const (
	testRecipient  = "age19gsf8cnqu7y73xgdp2ywxrqwphncwczp5kx5m46dppdahgf2895stj9rh8"
	testRecipient2 = "age1s2rwdgh7uq2jp0fvtgse2sr9f0y260nne3lgs3ftd0kftg5ezves7tuhnu"
	testSSHKey     = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGhy4vPcBjH13pKEP+OApvmpZFMrAp6rNQibH3mg7jVT lead@example.com"
)

// writeConfig writes files (name -> content) into a new directory and returns the path of
// config.yaml in it.
func writeConfig(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "config.yaml")
}

// loadWith loads a config.yaml holding yml (plus any other files) with env as the whole
// environment.
func loadWith(t *testing.T, yml string, env map[string]string, files map[string]string) (*Config, error) {
	t.Helper()
	all := map[string]string{"config.yaml": yml}
	for k, v := range files {
		all[k] = v
	}
	path := writeConfig(t, all)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	return parse(data, path, path, filepath.Dir(path), filepath.Dir(path), lookup)
}

func problemsOf(t *testing.T, err error) []Problem {
	t.Helper()
	if err == nil {
		return nil
	}
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("got error %v (%T), want a *ValidationError", err, err)
	}
	return ve.Problems
}

func TestLoadFull(t *testing.T) {
	privateTestdata(t)
	t.Setenv("FULL_S3_KEY", "AKIAFULLKEY")
	t.Setenv("FULL_S3_SECRET", "full-secret")
	t.Setenv("FULL_DB_PASSWORD", "full-db-pass")
	cfg, err := Load("testdata/full/backupd.yaml")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	dir, _ := filepath.Abs("testdata/full")
	nightly, hourly := cfg.Policies["nightly"], cfg.Policies["hourly"]
	if nightly == nil || hourly == nil {
		t.Fatalf("got policies %v, want nightly and hourly", sortedKeys(cfg.Policies))
	}
	primary, offsite, local := cfg.Targets["primary"], cfg.Targets["offsite"], cfg.Targets["local"]
	for _, tc := range []struct {
		name      string
		got, want any
	}{
		{"File", cfg.File, filepath.Join(dir, "backupd.yaml")},
		{"Dir", cfg.Dir, dir},
		{"Listen", cfg.Listen, "0.0.0.0:9999"},
		{"StateDir", cfg.StateDir, filepath.Join(dir, "state")},
		{"PoliciesDir", cfg.PoliciesDir, filepath.Join(dir, "policies")},
		{"targets", sortedKeys(cfg.Targets), []string{"local", "offsite", "primary"}},
		{"local.Path", local.Path, filepath.Join(dir, "backups")},
		{"primary.Endpoint", primary.Endpoint, "https://s3.eu-central-1.amazonaws.com"},
		{"primary.Region", primary.Region, "eu-central-1"},
		{"primary.Bucket", primary.Bucket, "acme-backups"},
		{"primary.Prefix", primary.Prefix, "prod/"},
		{"primary.AccessKey", primary.AccessKey, "AKIAFULLKEY"},
		{"primary.SecretKey", primary.SecretKey, "full-secret"},
		{"primary.BucketLookup", primary.BucketLookup, BucketLookupDNS},
		{"primary.CAFile", primary.CAFile, filepath.Join(dir, "ca.pem")},
		{"primary.PartSize", primary.PartSize, int64(32 << 20)},
		{"offsite.Region", offsite.Region, DefaultRegion},
		{"offsite.AccessKey", offsite.AccessKey, "OFFSITEACCESSKEY"},
		{"offsite.SecretKey", offsite.SecretKey, "offsite-secret-value"},
		{"offsite.BucketLookup", offsite.BucketLookup, BucketLookupPath},
		{"offsite.PartSize", offsite.PartSize, int64(8_000_000)},
		{"offsite.Prefix", offsite.Prefix, ""},
		{"recipients", len(cfg.Encryption.Recipients), 4},
		{"recipients[2]", cfg.Encryption.Recipients[2], testRecipient2},
		{"RecipientsFile", cfg.Encryption.RecipientsFile, filepath.Join(dir, "recipients.txt")},
		{"IdentityFile", cfg.Encryption.IdentityFile, filepath.Join(dir, "key.txt")},
		{"SMTP.Host", cfg.SMTP.Host, "smtp.example.com"},
		{"SMTP.Port", cfg.SMTP.Port, 2525},
		{"SMTP.Username", cfg.SMTP.Username, "backupd"},
		{"SMTP.Password", cfg.SMTP.Password, "smtp-password-value"},
		{"SMTP.From", cfg.SMTP.From, "Backups <backupd@example.com>"},
		{"SMTP.StartTLS", cfg.SMTP.StartTLS, false},
		{"nightly.File", nightly.File, filepath.Join(dir, "backupd.yaml")},
		{"nightly.Schedule", nightly.Schedule, "CRON_TZ=Europe/Berlin 0 3 * * *"},
		{"nightly.DSN", nightly.MySQL.DSN, "backup:full-db-pass@tcp(db.internal:3306)/"},
		{"nightly.Databases", nightly.MySQL.Databases, []string{"shop", "blog"}},
		{"nightly.ExcludeTables", nightly.MySQL.ExcludeTables, []string{"shop.sessions", "shop.cache"}},
		{"nightly.Threads", nightly.MySQL.Threads, 4},
		{"nightly.ChunkSize", nightly.MySQL.ChunkSize, int64(128 << 20)},
		{"nightly.LockWaitTimeout", nightly.MySQL.LockWaitTimeout, time.Minute},
		{"nightly.Compression", nightly.MySQL.CompressionLevel, CompressionBetter},
		{"nightly.IncludeUsers", nightly.MySQL.IncludeUsers, true},
		{"nightly.Targets", nightly.Targets, []string{"primary", "offsite", "local"}},
		{"nightly.MinTargets", nightly.MinTargets, 2},
		{"nightly.Retention", nightly.Retention, Retention{KeepLast: 3, Hourly: 24, Daily: 7, Weekly: 4, Monthly: 6, Yearly: 1}},
		{"hourly.File", hourly.File, filepath.Join(dir, "policies", "hourly-shop.yaml")},
		{"hourly.DSN", hourly.MySQL.DSN, "backup:dsn-file-password@unix(/run/mysqld/mysqld.sock)/"},
		{"hourly.MinTargets", hourly.MinTargets, 1},
		{"hourly.Threads", hourly.MySQL.Threads, DefaultThreads},
		{"hourly.ChunkSize", hourly.MySQL.ChunkSize, int64(DefaultChunkSize)},
		{"hourly.LockWaitTimeout", hourly.MySQL.LockWaitTimeout, DefaultLockWaitTimeout},
		{"hourly.Compression", hourly.MySQL.CompressionLevel, DefaultCompression},
		{"hourly.IncludeUsers", hourly.MySQL.IncludeUsers, false},
		{"hourly.Retention", hourly.Retention, Retention{Hourly: 48}},
		{"MaxConcurrentJobs", cfg.MaxConcurrentJobs, 2},
		{"ShutdownTimeout", cfg.ShutdownTimeout, 10 * time.Minute},
		{"Alerts", cfg.Alerts, Alerts{Email: []string{"ops@example.com", "Lead <lead@example.com>"},
			Webhook: "https://hooks.example.com/services/T0/B0/global-token", StaleAfter: 30 * time.Hour, ShrinkAlert: 0.4}},
		{"primary.ObjectLockDays", primary.ObjectLockDays, 30},
		{"primary.ObjectLockMode", primary.ObjectLockMode, ObjectLockGovernance},
		{"offsite.ObjectLockDays", offsite.ObjectLockDays, 0},
		{"nightly.CatchUp", nightly.CatchUp, true},
		{"nightly.Jitter", nightly.Jitter, 10 * time.Minute},
		{"nightly.UncommittedGrace", nightly.UncommittedGrace, 48 * time.Hour},
		{"nightly.Alerts", nightly.Alerts, Alerts{Email: []string{"dba@example.com"},
			Webhook: "https://hooks.example.com/services/T0/B0/nightly-token", StaleAfter: 26 * time.Hour, ShrinkAlert: 0.25}},
		{"hourly.CatchUp", hourly.CatchUp, false},
		{"hourly.Jitter", hourly.Jitter, time.Duration(0)},
		{"hourly.UncommittedGrace", hourly.UncommittedGrace, DefaultUncommittedGrace},
		{"hourly.Alerts (inherited)", hourly.Alerts, cfg.Alerts},
		{"nightly.Drill", *nightly.Drill, Drill{Schedule: "0 6 * * 1", From: "offsite", MaxRTO: 30 * time.Minute, MaxRPO: 26 * time.Hour,
			Notify:  []string{"lead@example.com"},
			Scratch: Scratch{Embedded: &EmbeddedScratch{Dir: filepath.Join(dir, "scratch"), Server: "/usr/sbin/mariadbd", BufferPool: 2 << 30}},
			Checks: []DrillCheck{{Name: "recent orders", SQL: "SELECT TIMESTAMPDIFF(HOUR, MAX(created_at), NOW()) FROM shop.orders", Database: "shop",
				Expect: Expect{Min: ptr(0.0), Max: ptr(26.0), Equals: ptr("3"), NotNull: true}}}}},
		{"hourly.Drill (defaults)", *hourly.Drill, Drill{From: DrillFromRotate, Scratch: Scratch{DSN: "backup:dsn-file-password@unix(/run/mysqld/mysqld.sock)/"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !reflect.DeepEqual(tc.got, tc.want) {
				t.Errorf("got %#v, want %#v", tc.got, tc.want)
			}
		})
	}
}

// keyPaths lists the key paths of a YAML file, with user-chosen names (targets, policies)
// replaced by *.
func keyPaths(t *testing.T, file, prefix string) map[string]bool {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	var walk func(n *yaml.Node, p string)
	walk = func(n *yaml.Node, p string) {
		if n.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			if p == "targets" || p == "policies" {
				key = "*" // a user-chosen name, not a key
			} else {
				out[joinPath(p, key)] = true
			}
			walk(n.Content[i+1], joinPath(p, key))
		}
	}
	walk(doc.Content[0], prefix)
	return out
}

// TestFullCoversSchema keeps testdata/full complete: every key the schema accepts appears in it
// (a secret counts through either its value key or its _file key), and everything in it loads.
func TestFullCoversSchema(t *testing.T) {
	inFull := keyPaths(t, "testdata/full/backupd.yaml", "")
	for k := range keyPaths(t, "testdata/full/policies/hourly-shop.yaml", "policies.*") {
		inFull[k] = true
	}
	levels := map[string]fields{
		"":                     rootFields(newConfig("", "")),
		"targets.*":            targetFields(newTarget(""), ""),
		"encryption":           encryptionFields(&Encryption{}),
		"signing":              signingFields(&Signing{}),
		"smtp":                 smtpFields(newSMTP()),
		"policies.*":           policyFields(newPolicy("", "")),
		"policies.*.mysql":     mysqlFields(newMySQL()),
		"policies.*.retention": retentionFields(&Retention{}),
		"alerts":               alertsFields(&Alerts{}),
		"policies.*.alerts":    alertsFields(&Alerts{}),

		"policies.*.drill":                  drillFields(&Drill{}),
		"policies.*.drill.scratch":          scratchFields(&Scratch{}),
		"policies.*.drill.scratch.embedded": embeddedFields(&EmbeddedScratch{}),
	}
	schema := map[string]bool{"policies.*.name": true}
	for level, fs := range levels {
		for key := range fs {
			schema[joinPath(level, key)] = true
		}
	}
	covered := func(k string) bool {
		if inFull[k] {
			return true
		}
		if base, ok := strings.CutSuffix(k, "_file"); ok && schema[k] && inFull[base] && schema[base] {
			return true
		}
		return schema[k+"_file"] && inFull[k+"_file"]
	}
	for _, k := range sortedKeys(schema) {
		t.Run("schema/"+k, func(t *testing.T) {
			if !covered(k) {
				t.Errorf("got key %s missing from testdata/full, want every key of the schema there", k)
			}
		})
	}
	for _, k := range sortedKeys(inFull) {
		t.Run("full/"+k, func(t *testing.T) {
			if !schema[k] {
				t.Errorf("got key %s in testdata/full, want only keys of the schema", k)
			}
		})
	}
}

func TestAcceptanceThreeMistakes(t *testing.T) {
	privateTestdata(t)
	_, err := Load("testdata/acceptance.yaml")
	ps := problemsOf(t, err)
	want := []Problem{
		{File: "testdata/acceptance.yaml", Line: 11, Path: "policies.nightly.schedule"},
		{File: "testdata/acceptance.yaml", Line: 14, Path: "policies.nightly.targets[1]"},
		{File: "testdata/acceptance.yaml", Line: 15, Path: "policies.nightly.retension"},
	}
	if len(ps) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%v", len(ps), len(want), err)
	}
	for i, w := range want {
		t.Run(w.Path, func(t *testing.T) {
			got := ps[i]
			if got.File != w.File || got.Line != w.Line || got.Path != w.Path {
				t.Errorf("got %s:%d %s, want %s:%d %s", got.File, got.Line, got.Path, w.File, w.Line, w.Path)
			}
			if got.Hint == "" {
				t.Errorf("got no hint for %q, want one", got.Msg)
			}
		})
	}
	if !strings.Contains(ps[0].Msg, "expected exactly 5 fields") {
		t.Errorf("got schedule message %q, want the cron parser's reason", ps[0].Msg)
	}
	if !strings.Contains(ps[1].Hint, "defined targets: primary") {
		t.Errorf("got undefined-target hint %q, want the defined targets listed", ps[1].Hint)
	}
	if !strings.Contains(ps[2].Hint, "did you mean `retention`?") {
		t.Errorf("got unknown-key hint %q, want a suggestion of retention", ps[2].Hint)
	}
}

func TestExpandEnv(t *testing.T) {
	env := map[string]string{"A": "alpha", "EMPTY": "", "Q": `quo"te: x`}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	for _, tc := range []struct {
		in, want    string
		wantMissing []string
		wantErr     bool
	}{
		{in: "plain", want: "plain"},
		{in: "${A}", want: "alpha"},
		{in: "x-${A}-y", want: "x-alpha-y"},
		{in: "${A:-d}", want: "alpha"},
		{in: "${UNSET:-d}", want: "d"},
		{in: "${EMPTY:-d}", want: "d"},
		{in: "${EMPTY}", want: ""},
		{in: "${UNSET:-}", want: ""},
		{in: "${UNSET:-tcp(h:1)/}", want: "tcp(h:1)/"},
		{in: "${Q}", want: `quo"te: x`},
		{in: "pa$$word", want: "pa$word"},
		{in: "$${A}", want: "${A}"},
		{in: "cost: 5$", want: "cost: 5$"},
		{in: "a $ b", want: "a $ b"},
		{in: "$1", want: "$1"},
		{in: "${UNSET}", wantMissing: []string{"UNSET"}},
		{in: "${U1}${U2:-x}${U3}", wantMissing: []string{"U1", "U3"}},
		{in: "$A", wantErr: true},
		{in: "${A", wantErr: true},
		{in: "${}", wantErr: true},
		{in: "${1A}", wantErr: true},
		{in: "${A B}", wantErr: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, missing, err := expandEnv(tc.in, lookup)
			if (err != nil) != tc.wantErr {
				t.Fatalf("got error %v, want error %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if !reflect.DeepEqual(missing, tc.wantMissing) {
				t.Errorf("got missing %v, want %v", missing, tc.wantMissing)
			}
			if tc.wantMissing == nil && got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

const validTail = `
encryption:
  recipients: ["` + testRecipient + `"]
`

func TestEnvInConfig(t *testing.T) {
	yml := `
listen: ${LISTEN:-127.0.0.1:1234}
targets:
  local: {type: dir, path: "${BACKUP_DIR}"}
policies:
  p:
    schedule: ${SCHEDULE:-@daily}
    mysql:
      dsn: ${DSN}
      threads: ${THREADS:-3}
    targets: [local]
` + validTail
	t.Run("values with quotes and colons stay values", func(t *testing.T) {
		cfg, err := loadWith(t, yml, map[string]string{"BACKUP_DIR": "/srv/b", "DSN": `u:p"a: s#s'@tcp(h:3306)/`}, nil)
		if err != nil {
			t.Fatal(err)
		}
		p := cfg.Policies["p"]
		for _, tc := range []struct{ name, got, want string }{
			{"listen", cfg.Listen, "127.0.0.1:1234"},
			{"path", cfg.Targets["local"].Path, "/srv/b"},
			{"schedule", p.Schedule, "@daily"},
			{"dsn", p.MySQL.DSN, `u:p"a: s#s'@tcp(h:3306)/`},
			{"threads", fmt.Sprint(p.MySQL.Threads), "3"},
		} {
			if tc.got != tc.want {
				t.Errorf("%s: got %q, want %q", tc.name, tc.got, tc.want)
			}
		}
	})
	t.Run("missing variables are named, values are not printed", func(t *testing.T) {
		_, err := loadWith(t, yml, map[string]string{"THREADS": "lots-of-threads-secret"}, nil)
		ps := problemsOf(t, err)
		if strings.Contains(err.Error(), "lots-of-threads-secret") {
			t.Errorf("got the environment value in %v", err)
		}
		var paths []string
		for _, p := range ps {
			paths = append(paths, p.Path+": "+p.Msg)
		}
		want := []string{
			"targets.local.path: environment variable BACKUP_DIR is not set",
			"policies.p.mysql.dsn: environment variable DSN is not set",
			"policies.p.mysql.threads: want a whole number, got the value of ${THREADS:-3}",
		}
		if !reflect.DeepEqual(paths, want) {
			t.Errorf("got problems\n%s\nwant\n%s", strings.Join(paths, "\n"), strings.Join(want, "\n"))
		}
	})
}

func TestSecretFiles(t *testing.T) {
	s3 := func(keys string) string {
		return `
targets:
  s:
    type: s3
    endpoint: http://127.0.0.1:9000
    bucket: backups
` + keys + validTail
	}
	t.Run("read and trimmed", func(t *testing.T) {
		cfg, err := loadWith(t, s3("    access_key_file: sec/ak\n    secret_key_file: sec/sk\n"), nil,
			map[string]string{"sec/ak": "AK with spaces \n", "sec/sk": "line1\nline2\r\n\n"})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := cfg.Targets["s"].AccessKey, "AK with spaces "; got != want {
			t.Errorf("got access key %q, want %q", got, want)
		}
		if got, want := cfg.Targets["s"].SecretKey, "line1\nline2"; got != want {
			t.Errorf("got secret key %q, want %q", got, want)
		}
	})
	for _, tc := range []struct {
		name     string
		keys     string
		files    map[string]string
		wantPath string
		wantMsg  string
	}{
		{"both given", "    access_key: inline-secret\n    access_key_file: sec/ak\n    secret_key: x\n",
			map[string]string{"sec/ak": "file-secret"}, "targets.s.access_key_file", "both `access_key` and `access_key_file` are given"},
		{"unreadable", "    access_key_file: sec/nope\n    secret_key: x\n", nil, "targets.s.access_key_file", "cannot read"},
		{"empty", "    access_key_file: sec/ak\n    secret_key: x\n", map[string]string{"sec/ak": "\n"}, "targets.s.access_key_file", "is empty"},
		{"missing", "    secret_key: x\n", nil, "targets.s.access_key", "missing required key `access_key` (or `access_key_file`)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadWith(t, s3(tc.keys), nil, tc.files)
			ps := problemsOf(t, err)
			if len(ps) != 1 || ps[0].Path != tc.wantPath || !strings.Contains(ps[0].Msg, tc.wantMsg) {
				t.Fatalf("got %v, want one problem at %s containing %q", err, tc.wantPath, tc.wantMsg)
			}
			for _, secret := range []string{"inline-secret", "file-secret"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("got %q in the error, want no secret value", secret)
				}
			}
		})
	}
}

func TestPoliciesDir(t *testing.T) {
	head := `
policies_dir: pol
targets:
  local: {type: dir, path: ./b}
` + validTail
	policy := "schedule: \"@daily\"\nmysql: {dsn: \"root@tcp(127.0.0.1:3306)/\"}\ntargets: [local]\n"
	t.Run("one file per policy", func(t *testing.T) {
		cfg, err := loadWith(t, head, nil, map[string]string{
			"pol/a.yaml":         policy,
			"pol/b.yml":          policy,
			"pol/c.yaml":         "name: renamed\n" + policy,
			"pol/.hidden.yaml":   "not: [valid",
			"pol/notes.txt":      "ignored",
			"pol/sub/deep.yaml":  "ignored: true",
			"pol/backup.yaml~":   "ignored: true",
			"pol/ignored.yaml.d": "ignored: true",
		})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := sortedKeys(cfg.Policies), []string{"a", "b", "renamed"}; !reflect.DeepEqual(got, want) {
			t.Errorf("got policies %v, want %v", got, want)
		}
		if got, want := cfg.Policies["renamed"].File, filepath.Join(cfg.Dir, "pol", "c.yaml"); got != want {
			t.Errorf("got File %q, want %q", got, want)
		}
	})
	t.Run("problems name the policy file", func(t *testing.T) {
		_, err := loadWith(t, head, nil, map[string]string{"pol/a.yaml": policy + "retension: {}\n"})
		ps := problemsOf(t, err)
		if len(ps) != 1 || !strings.HasSuffix(ps[0].File, filepath.Join("pol", "a.yaml")) || ps[0].Line != 4 || ps[0].Path != "policies.a.retension" {
			t.Fatalf("got %v, want one problem at pol/a.yaml:4 policies.a.retension", err)
		}
	})
	for _, tc := range []struct {
		name   string
		inline string
		files  map[string]string
		want   []string // both files named in the message
	}{
		{"inline and file", "policies:\n  a:\n    " + strings.ReplaceAll(strings.TrimSpace(policy), "\n", "\n    ") + "\n",
			map[string]string{"pol/a.yaml": policy}, []string{"config.yaml:", filepath.Join("pol", "a.yaml")}},
		{"two files", "", map[string]string{"pol/a.yaml": policy, "pol/b.yaml": "name: a\n" + policy},
			[]string{filepath.Join("pol", "a.yaml"), filepath.Join("pol", "b.yaml")}},
	} {
		t.Run("duplicate/"+tc.name, func(t *testing.T) {
			_, err := loadWith(t, head+tc.inline, nil, tc.files)
			ps := problemsOf(t, err)
			if len(ps) != 1 || !strings.Contains(ps[0].Msg, "defined twice") {
				t.Fatalf("got %v, want one 'defined twice' problem", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(ps[0].Msg, w) {
					t.Errorf("got %q, want it to name %s", ps[0].Msg, w)
				}
			}
		})
	}
	t.Run("missing directory", func(t *testing.T) {
		_, err := loadWith(t, head, nil, nil)
		ps := problemsOf(t, err)
		if len(ps) != 1 || ps[0].Path != "policies_dir" || !strings.Contains(ps[0].Msg, "cannot read policies directory") {
			t.Fatalf("got %v, want a policies_dir problem", err)
		}
	})
}

func TestRelativePaths(t *testing.T) {
	path := writeConfig(t, map[string]string{
		"conf/config.yaml": `
targets:
  local: {type: dir, path: ../backups}
  abs: {type: dir, path: /var/backups}
encryption:
  recipients_file: keys/recipients.txt
  identity_file: ./key.txt
`,
		"conf/keys/recipients.txt": testRecipient + "\n",
	})
	root := filepath.Dir(path)
	t.Chdir(root)
	cfg, err := Load("conf/config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(root, "conf")
	for _, tc := range []struct{ name, got, want string }{
		{"File", cfg.File, filepath.Join(conf, "config.yaml")},
		{"Dir", cfg.Dir, conf},
		{"StateDir", cfg.StateDir, filepath.Join(conf, DefaultStateDirName)},
		{"local", cfg.Targets["local"].Path, filepath.Join(root, "backups")},
		{"abs", cfg.Targets["abs"].Path, "/var/backups"},
		{"RecipientsFile", cfg.Encryption.RecipientsFile, filepath.Join(conf, "keys", "recipients.txt")},
		{"IdentityFile", cfg.Encryption.IdentityFile, filepath.Join(conf, "key.txt")},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, tc.got, tc.want)
		}
	}

	t.Run("problems show the file as given", func(t *testing.T) {
		if err := os.WriteFile(filepath.Join(conf, "bad.yaml"), []byte("encryption:\n  recipients_file: nope.txt\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Load("conf/bad.yaml")
		ps := problemsOf(t, err)
		if len(ps) != 1 || ps[0].File != "conf/bad.yaml" || !strings.Contains(ps[0].Msg, "cannot read conf/nope.txt") {
			t.Fatalf("got %v, want one problem in conf/bad.yaml naming conf/nope.txt", err)
		}
	})
	t.Run("Parse resolves against dir", func(t *testing.T) {
		cfg, err := Parse([]byte("targets:\n  l: {type: dir, path: ./b}\n"), "<embedded>", "conf")
		if err != nil {
			t.Fatal(err)
		}
		if got, want := cfg.Targets["l"].Path, filepath.Join(conf, "b"); got != want {
			t.Errorf("got %q, want %q", got, want)
		}
		if got, want := cfg.StateDir, filepath.Join(conf, DefaultStateDirName); got != want {
			t.Errorf("got state dir %q, want %q", got, want)
		}
	})
}

func TestUnreadableConfigIsNotAValidationError(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	var ve *ValidationError
	if err == nil || errors.As(err, &ve) || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("got %v, want a plain error wrapping os.ErrNotExist", err)
	}
}

// TestValidationRules checks every rule: each case must produce a problem at wantPath whose
// message contains wantMsg (and, when set, whose hint contains wantHint).
func TestValidationRules(t *testing.T) {
	const targets = `
targets:
  local: {type: dir, path: ./b}
  remote: {type: dir, path: ./r}
`
	const mysql = `
    mysql: {dsn: "root@tcp(127.0.0.1:3306)/"}
`
	policy := func(body string) string {
		return targets + validTail + "policies:\n  p:\n    schedule: \"@daily\"\n    targets: [local]" + mysql + body
	}
	s3 := func(body string) string {
		return "targets:\n  s:\n    type: s3\n" + body
	}
	const s3ok = "    endpoint: http://127.0.0.1:9000\n    bucket: backups\n    access_key: ak\n    secret_key: sk\n"
	for _, tc := range []struct {
		name, yml, wantPath, wantMsg, wantHint string
		wantLine                               int
	}{
		// Structure and types.
		{name: "yaml syntax", yml: "listen: a\ntargets: b: c\n", wantMsg: "not valid YAML", wantLine: 2},
		{name: "tabs", yml: "targets:\n\ta: 1\n", wantMsg: "not valid YAML"},
		{name: "unknown root key", yml: "listne: 1.2.3.4:5\n", wantPath: "listne", wantMsg: "unknown key `listne`", wantHint: "did you mean `listen`?", wantLine: 1},
		{name: "unknown key far from any", yml: "zzzzzz: 1\n", wantPath: "zzzzzz", wantMsg: "unknown key", wantHint: "valid keys here: alerts, encryption, listen"},
		{name: "not yet implemented key", yml: policy("    hooks: {before: \"echo\"}\n"), wantPath: "policies.p.hooks", wantMsg: "unknown key"},
		{name: "unknown policy key", yml: policy("    storrage: []\n"), wantPath: "policies.p.storrage", wantMsg: "unknown key `storrage`"},
		{name: "unknown mysql key", yml: policy("    retention: {keep_last: 1, dayly: 2}\n"), wantPath: "policies.p.retention.dayly", wantHint: "did you mean `daily`?"},
		{name: "transposition suggested", yml: "targets:\n  a: {tpye: dir, path: x}\n", wantPath: "targets.a.tpye", wantHint: "did you mean `type`?"},
		{name: "key of another target type", yml: "targets:\n  a: {type: dir, path: x, bucket: b}\n", wantPath: "targets.a.bucket", wantMsg: "does not apply to a dir target", wantHint: "path, type"},
		{name: "duplicate key", yml: "listen: 1.2.3.4:5\nlisten: 1.2.3.4:6\n", wantPath: "listen", wantMsg: "given twice (also on line 1)", wantLine: 2},
		{name: "root not a mapping", yml: "- a\n- b\n", wantMsg: "want a mapping"},
		{name: "targets not a mapping", yml: "targets: [a, b]\n", wantPath: "targets", wantMsg: "want a mapping"},
		{name: "string given a list", yml: "listen: [a]\n", wantPath: "listen", wantMsg: "want a string, got a list"},
		{name: "list given a string", yml: strings.Replace(policy(""), "targets: [local]", "targets: local", 1), wantPath: "policies.p.targets", wantMsg: "want a list, got a single value"},
		{name: "int given text", yml: policy("    min_targets: one\n"), wantPath: "policies.p.min_targets", wantMsg: `want a whole number, got "one"`},
		{name: "bool given text", yml: "smtp: {host: h, from: a@b.c, starttls: yes}\n", wantPath: "smtp.starttls", wantMsg: `want true or false, got "yes"`},
		{name: "bad enum", yml: s3(s3ok + "    bucket_lookup: virtual\n"), wantPath: "targets.s.bucket_lookup", wantMsg: `"virtual" is not one of auto, path, dns`},
		{name: "duplicate section", yml: policy("    mysql: {dsn: \"r@tcp(h)/\"}\n"), wantPath: "policies.p.mysql", wantMsg: "given twice"},
		{name: "merge of a scalar", yml: "listen: 1.2.3.4:5\n<<: 3\n", wantMsg: "`<<` merges a mapping"},

		// Global settings.
		{name: "listen not host:port", yml: "listen: localhost\n", wantPath: "listen", wantMsg: "not a host:port address"},
		{name: "listen port out of range", yml: "listen: 127.0.0.1:70000\n", wantPath: "listen", wantMsg: "not a host:port address"},

		// Targets.
		{name: "target without type", yml: "targets:\n  a: {path: x}\n", wantPath: "targets.a.type", wantMsg: "missing required key `type`", wantLine: 2},
		{name: "unknown target type", yml: "targets:\n  a: {type: s4, path: x}\n", wantPath: "targets.a.type", wantMsg: `"s4" is not one of s3, dir`, wantHint: "did you mean `s3`?"},
		{name: "target name", yml: "targets:\n  a/b: {type: dir, path: x}\n", wantPath: "targets.a/b", wantMsg: "target name \"a/b\" is not allowed"},
		{name: "dir without path", yml: "targets:\n  a: {type: dir}\n", wantPath: "targets.a.path", wantMsg: "missing required key `path`"},
		{name: "s3 without endpoint", yml: s3("    bucket: b\n    access_key: a\n    secret_key: s\n"), wantPath: "targets.s.endpoint", wantMsg: "missing required key `endpoint`"},
		{name: "s3 without bucket", yml: s3("    endpoint: http://h:9000\n    access_key: a\n    secret_key: s\n"), wantPath: "targets.s.bucket", wantMsg: "missing required key `bucket`"},
		{name: "s3 without access_key", yml: s3("    endpoint: http://h:9000\n    bucket: bbb\n    secret_key: s\n"), wantPath: "targets.s.access_key", wantMsg: "missing required key `access_key`"},
		{name: "s3 without secret_key", yml: s3("    endpoint: http://h:9000\n    bucket: bbb\n    access_key: a\n"), wantPath: "targets.s.secret_key", wantMsg: "missing required key `secret_key`"},
		{name: "endpoint without scheme", yml: s3(strings.Replace(s3ok, "http://127.0.0.1:9000", "127.0.0.1:9000", 1)), wantPath: "targets.s.endpoint", wantMsg: "must be an http:// or https:// URL"},
		{name: "endpoint ftp", yml: s3(strings.Replace(s3ok, "http://", "ftp://", 1)), wantPath: "targets.s.endpoint", wantMsg: "must be an http:// or https:// URL"},
		{name: "endpoint with credentials", yml: s3(strings.Replace(s3ok, "http://", "http://user:endpoint-secret@", 1)), wantPath: "targets.s.endpoint", wantMsg: "must not contain credentials"},
		{name: "endpoint with path", yml: s3(strings.Replace(s3ok, "9000", "9000/backups", 1)), wantPath: "targets.s.endpoint", wantMsg: "only scheme, host and port"},
		{name: "bucket with slash", yml: s3(strings.Replace(s3ok, "bucket: backups", "bucket: backups/prod", 1)), wantPath: "targets.s.bucket", wantMsg: "cannot contain `/`", wantHint: "prefix"},
		{name: "prefix with dotdot", yml: s3(s3ok + "    prefix: a/../b\n"), wantPath: "targets.s.prefix", wantMsg: "`..` segment"},
		{name: "part size too small", yml: s3(s3ok + "    part_size: 1MiB\n"), wantPath: "targets.s.part_size", wantMsg: "outside S3's limits"},
		{name: "part size not a size", yml: s3(s3ok + "    part_size: 16M\n"), wantPath: "targets.s.part_size", wantMsg: `unknown unit "M"`},
		{name: "ca_file with http", yml: s3(s3ok + "    ca_file: ca.pem\n"), wantPath: "targets.s.ca_file", wantMsg: "only used with an https:// endpoint"},
		{name: "ca_file unreadable", yml: s3(strings.Replace(s3ok, "http://", "https://", 1) + "    ca_file: nope.pem\n"), wantPath: "targets.s.ca_file", wantMsg: "nope.pem: no such file"},

		// Encryption.
		{name: "bad age recipient", yml: "encryption:\n  recipients: [" + testRecipient + ", age1qqqq]\n", wantPath: "encryption.recipients[1]", wantMsg: "not a valid age X25519 public key", wantLine: 2},
		{name: "private key as recipient", yml: "encryption:\n  recipients:\n    - AGE-SECRET-KEY-1QQQQ\n", wantPath: "encryption.recipients[0]", wantMsg: "private key", wantLine: 3},
		{name: "ecdsa ssh key", yml: "encryption:\n  recipients: [\"ecdsa-sha2-nistp256 AAAA x\"]\n", wantPath: "encryption.recipients[0]", wantMsg: "SSH key type ecdsa-sha2-nistp256 cannot be an age recipient"},
		{name: "broken ssh key", yml: "encryption:\n  recipients: [\"ssh-ed25519 AAAAbroken x\"]\n", wantPath: "encryption.recipients[0]", wantMsg: "not a valid SSH public key"},
		{name: "garbage recipient", yml: "encryption:\n  recipients: [hello]\n", wantPath: "encryption.recipients[0]", wantMsg: "not an age public key"},
		{name: "recipients not a list", yml: "encryption:\n  recipients: " + testRecipient + "\n", wantPath: "encryption.recipients", wantMsg: "want a list"},
		{name: "recipients_file unreadable", yml: "encryption:\n  recipients_file: nope.txt\n", wantPath: "encryption.recipients_file", wantMsg: "nope.txt: no such file"},
		{name: "no recipients with policies", yml: targets + "policies:\n  p:\n    schedule: \"@daily\"\n    targets: [local]" + mysql, wantPath: "encryption.recipients", wantMsg: "no age recipient", wantHint: "identity_file"},
		{name: "pq mixed with x25519", yml: "encryption:\n  recipients: [" + testRecipient + ", " + pqRecipient + "]\n", wantPath: "encryption.recipients", wantMsg: "cannot be mixed"},

		// SMTP.
		{name: "smtp without host", yml: "smtp: {from: a@b.c}\n", wantPath: "smtp.host", wantMsg: "missing required key `host`"},
		{name: "smtp without from", yml: "smtp: {host: h}\n", wantPath: "smtp.from", wantMsg: "missing required key `from`"},
		{name: "smtp bad from", yml: "smtp: {host: h, from: nobody}\n", wantPath: "smtp.from", wantMsg: "not an email address"},
		{name: "smtp port", yml: "smtp: {host: h, from: a@b.c, port: 0}\n", wantPath: "smtp.port", wantMsg: "out of range"},
		{name: "smtp username without password", yml: "smtp: {host: h, from: a@b.c, username: u}\n", wantPath: "smtp", wantMsg: "username and password go together"},

		// Policies.
		{name: "policy name", yml: targets + validTail + "policies:\n  \"a b\":\n    schedule: \"@daily\"\n    targets: [local]" + mysql, wantPath: "policies.a b", wantMsg: "policy name \"a b\" is not allowed"},
		{name: "missing schedule", yml: targets + validTail + "policies:\n  p:\n    targets: [local]" + mysql, wantPath: "policies.p.schedule", wantMsg: "missing required key `schedule`"},
		{name: "cron fields", yml: strings.Replace(policy(""), `"@daily"`, `"0 3 * *"`, 1), wantPath: "policies.p.schedule", wantMsg: "expected exactly 5 fields, found 4"},
		{name: "cron range", yml: strings.Replace(policy(""), `"@daily"`, `"0 25 * * *"`, 1), wantPath: "policies.p.schedule", wantMsg: "above maximum"},
		{name: "cron descriptor", yml: strings.Replace(policy(""), `"@daily"`, `"@fortnightly"`, 1), wantPath: "policies.p.schedule", wantMsg: "unrecognized descriptor"},
		{name: "cron every", yml: strings.Replace(policy(""), `"@daily"`, `"@every 4"`, 1), wantPath: "policies.p.schedule", wantMsg: "failed to parse duration"},
		{name: "cron time zone", yml: strings.Replace(policy(""), `"@daily"`, `"CRON_TZ=Mars/Olympus 0 3 * * *"`, 1), wantPath: "policies.p.schedule", wantMsg: "Mars/Olympus"},
		{name: "name key inline", yml: policy("    name: other\n"), wantPath: "policies.p.name", wantMsg: "unknown key `name`"},
		{name: "nothing to back up", yml: targets + validTail + "policies:\n  p:\n    schedule: \"@daily\"\n    targets: [local]\n", wantPath: "policies.p", wantMsg: "nothing to back up", wantHint: "mysql"},
		{name: "storage without name", yml: policy("    storage:\n      - {path: ./up}\n"), wantPath: "policies.p.storage[0].name", wantMsg: "missing required key `name`"},
		{name: "storage path and s3", yml: policy("    storage:\n      - {name: a, path: ./up, s3: {endpoint: http://h:1, bucket: b, access_key: k, secret_key: s}}\n"), wantPath: "policies.p.storage[0]", wantMsg: "both path and s3"},
		{name: "storage neither", yml: policy("    storage:\n      - {name: a}\n"), wantPath: "policies.p.storage[0]", wantMsg: "neither path nor s3"},
		{name: "storage s3 without bucket", yml: policy("    storage:\n      - {name: a, s3: {endpoint: http://h:1, access_key: k, secret_key: s}}\n"), wantPath: "policies.p.storage[0].s3.bucket", wantMsg: "missing required key `bucket`"},
		{name: "storage s3 bad endpoint", yml: policy("    storage:\n      - {name: a, s3: {endpoint: h:1, bucket: b, access_key: k, secret_key: s}}\n"), wantPath: "policies.p.storage[0].s3.endpoint", wantMsg: "not an http(s) URL"},
		{name: "storage duplicate name", yml: policy("    storage:\n      - {name: a, path: ./x}\n      - {name: a, path: ./y}\n"), wantPath: "policies.p.storage[1].name", wantMsg: "used twice"},
		{name: "storage bad name", yml: policy("    storage:\n      - {name: \"a/b\", path: ./x}\n"), wantPath: "policies.p.storage[0].name", wantMsg: "not allowed"},
		{name: "storage unknown key", yml: policy("    storage:\n      - {name: a, path: ./x, exclud: [x]}\n"), wantPath: "policies.p.storage[0].exclud", wantHint: "did you mean `exclude`?"},
		{name: "no targets", yml: targets + validTail + "policies:\n  p:\n    schedule: \"@daily\"" + mysql, wantPath: "policies.p.targets", wantMsg: "has no targets", wantHint: "defined targets: local, remote"},
		{name: "empty targets", yml: strings.Replace(policy(""), "targets: [local]", "targets: []", 1), wantPath: "policies.p.targets", wantMsg: "has no targets"},
		{name: "undefined target", yml: strings.Replace(policy(""), "targets: [local]", "targets: [local, offsite]", 1), wantPath: "policies.p.targets[1]", wantMsg: "target `offsite` is not defined", wantHint: "defined targets: local, remote"},
		{name: "target listed twice", yml: strings.Replace(policy(""), "targets: [local]", "targets: [local, local]", 1), wantPath: "policies.p.targets[1]", wantMsg: "listed twice"},
		{name: "min_targets zero", yml: policy("    min_targets: 0\n"), wantPath: "policies.p.min_targets", wantMsg: "outside 1..1"},
		{name: "min_targets too many", yml: strings.Replace(policy("    min_targets: 3\n"), "targets: [local]", "targets: [local, remote]", 1), wantPath: "policies.p.min_targets", wantMsg: "min_targets 3 is outside 1..2"},
		{name: "negative retention", yml: policy("    retention: {daily: -1}\n"), wantPath: "policies.p.retention.daily", wantMsg: "daily is negative"},
		{name: "retention not a mapping", yml: policy("    retention: 7\n"), wantPath: "policies.p.retention", wantMsg: "want a mapping"},

		// MySQL.
		{name: "missing dsn", yml: strings.Replace(policy(""), `{dsn: "root@tcp(127.0.0.1:3306)/"}`, "{threads: 2}", 1), wantPath: "policies.p.mysql.dsn", wantMsg: "missing required key `dsn`"},
		{name: "empty mysql", yml: strings.Replace(policy(""), `{dsn: "root@tcp(127.0.0.1:3306)/"}`, "", 1), wantPath: "policies.p.mysql.dsn", wantMsg: "missing required key `dsn`"},
		{name: "dsn without slash", yml: strings.Replace(policy(""), `root@tcp(127.0.0.1:3306)/`, `root:dsn-secret-pw@tcp(127.0.0.1:3306)`, 1), wantPath: "policies.p.mysql.dsn", wantMsg: "invalid DSN"},
		{name: "dsn slash in password", yml: strings.Replace(policy(""), `root@tcp(127.0.0.1:3306)/`, `root:dsn/secret-pw@tcp(127.0.0.1:3306)`, 1), wantPath: "policies.p.mysql.dsn", wantMsg: "invalid DSN"},
		{name: "dsn unterminated address", yml: strings.Replace(policy(""), `root@tcp(127.0.0.1:3306)/`, `root@tcp(127.0.0.1:3306/`, 1), wantPath: "policies.p.mysql.dsn", wantMsg: "missing closing brace"},
		{name: "dsn bad param", yml: strings.Replace(policy(""), `root@tcp(127.0.0.1:3306)/`, `root@tcp(h)/?parseTime=maybe`, 1), wantPath: "policies.p.mysql.dsn", wantMsg: "invalid bool value"},
		{name: "threads zero", yml: strings.Replace(policy(""), `{dsn:`, `{threads: 0, dsn:`, 1), wantPath: "policies.p.mysql.threads", wantMsg: "threads must be at least 1, got 0"},
		{name: "chunk size", yml: strings.Replace(policy(""), `{dsn:`, `{chunk_size: 0, dsn:`, 1), wantPath: "policies.p.mysql.chunk_size", wantMsg: "more than 0"},
		{name: "chunk size unit", yml: strings.Replace(policy(""), `{dsn:`, `{chunk_size: 64 megs, dsn:`, 1), wantPath: "policies.p.mysql.chunk_size", wantMsg: `unknown unit "megs"`},
		{name: "lock wait duration", yml: strings.Replace(policy(""), `{dsn:`, `{lock_wait_timeout: 30, dsn:`, 1), wantPath: "policies.p.mysql.lock_wait_timeout", wantMsg: `"30" is not a duration`},
		{name: "lock wait zero", yml: strings.Replace(policy(""), `{dsn:`, `{lock_wait_timeout: 0s, dsn:`, 1), wantPath: "policies.p.mysql.lock_wait_timeout", wantMsg: "more than 0"},
		{name: "compression", yml: strings.Replace(policy(""), `{dsn:`, `{compression: fast, dsn:`, 1), wantPath: "policies.p.mysql.compression", wantHint: "did you mean `fastest`?"},
		{name: "exclude_tables form", yml: strings.Replace(policy(""), `{dsn:`, `{exclude_tables: [sessions], dsn:`, 1), wantPath: "policies.p.mysql.exclude_tables[0]", wantMsg: "not of the form database.table"},
		{name: "databases twice", yml: strings.Replace(policy(""), `{dsn:`, `{databases: [a, a], dsn:`, 1), wantPath: "policies.p.mysql.databases[1]", wantMsg: "listed twice"},
		{name: "include_users", yml: strings.Replace(policy(""), `{dsn:`, `{include_users: sure, dsn:`, 1), wantPath: "policies.p.mysql.include_users", wantMsg: "want true or false"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadWith(t, tc.yml, nil, nil)
			ps := problemsOf(t, err)
			var found *Problem
			for i := range ps {
				if ps[i].Path == tc.wantPath && strings.Contains(ps[i].Msg, tc.wantMsg) && strings.Contains(ps[i].Hint, tc.wantHint) {
					found = &ps[i]
					break
				}
			}
			if found == nil {
				t.Fatalf("got %v, want a problem at %q with message %q and hint %q", err, tc.wantPath, tc.wantMsg, tc.wantHint)
			}
			if tc.wantLine != 0 && found.Line != tc.wantLine {
				t.Errorf("got line %d, want %d", found.Line, tc.wantLine)
			}
			if !strings.HasSuffix(found.File, "config.yaml") {
				t.Errorf("got file %q, want the config file", found.File)
			}
			for _, secret := range []string{"dsn-secret-pw", "secret-pw", "endpoint-secret"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("got the secret %q in %v", secret, err)
				}
			}
		})
	}
}

// pqRecipient is a post-quantum age public key (age-keygen -pq).
var pqRecipient = func() string {
	id, err := age.GenerateHybridIdentity()
	if err != nil {
		panic(err)
	}
	return id.Recipient().String()
}()

func TestEveryProblemAtOnce(t *testing.T) {
	yml := `
listen: nowhere
targets:
  a: {type: dir}
  b: {type: s3, endpoint: "ftp://x", bucket: bb}
encryption:
  recipients: [nope]
policies:
  p:
    schedule: "61 * * * *"
    targets: [c]
    retention: {keep_last: -1}
`
	_, err := loadWith(t, yml, nil, nil)
	ps := problemsOf(t, err)
	var got []string
	for _, p := range ps {
		got = append(got, fmt.Sprintf("%d %s", p.Line, p.Path))
	}
	want := []string{
		"2 listen",
		"4 targets.a.path",
		"5 targets.b.endpoint",
		"5 targets.b.bucket",
		"5 targets.b.access_key",
		"5 targets.b.secret_key",
		"7 encryption.recipients[0]",
		"9 policies.p",
		"10 policies.p.schedule",
		"11 policies.p.targets[0]",
		"12 policies.p.retention.keep_last",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got problems\n%s\nwant\n%s\n(%v)", strings.Join(got, "\n"), strings.Join(want, "\n"), err)
	}
}

func TestAnchorsAndMerge(t *testing.T) {
	yml := `
x-s3: &s3
  type: s3
  endpoint: http://127.0.0.1:9000
  access_key: ak
  secret_key: sk
`
	t.Run("unknown top-level anchor holder is reported", func(t *testing.T) {
		_, err := loadWith(t, yml, nil, nil)
		if ps := problemsOf(t, err); len(ps) != 1 || ps[0].Path != "x-s3" {
			t.Fatalf("got %v, want one unknown key x-s3", err)
		}
	})
	t.Run("merge with override", func(t *testing.T) {
		cfg, err := loadWith(t, `
targets:
  a: &s3
    type: s3
    endpoint: http://127.0.0.1:9000
    bucket: first
    access_key: ak
    secret_key: sk
  b:
    <<: *s3
    bucket: second
`, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := cfg.Targets["b"].Bucket, "second"; got != want {
			t.Errorf("got bucket %q, want %q", got, want)
		}
		if got, want := cfg.Targets["b"].AccessKey, "ak"; got != want {
			t.Errorf("got access key %q, want %q", got, want)
		}
	})
}

func TestNoRecipients(t *testing.T) {
	pol := "targets:\n  l: {type: dir, path: b}\npolicies:\n  p:\n    schedule: \"@daily\"\n    mysql: {dsn: \"r@tcp(h)/\"}\n    targets: [l]\n"
	for _, tc := range []struct {
		name    string
		yml     string
		wantErr bool
	}{
		{"no policies, no recipients", "targets:\n  l: {type: dir, path: b}\n", false},
		{"policies, no recipients", pol, true},
		{"policies, identity_file to derive from", pol + "encryption: {identity_file: ./backupd-age-key.txt}\n", false},
		{"policies, empty recipients_file", pol + "encryption: {recipients_file: r.txt}\n", true},
		{"policies, recipients_file", pol + "encryption: {recipients_file: r2.txt}\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadWith(t, tc.yml, nil, map[string]string{"r.txt": "# nobody yet\n", "r2.txt": "# lead\n" + testSSHKey + "\n"})
			if (err != nil) != tc.wantErr {
				t.Fatalf("got error %v, want error %v", err, tc.wantErr)
			}
		})
	}
}

func TestRecipientsFileLines(t *testing.T) {
	_, err := loadWith(t, "encryption:\n  recipients_file: keys.txt\n", nil, map[string]string{
		"keys.txt": "# leads\n" + testRecipient + "\n\nssh-dss AAAA old\n  " + testRecipient2 + "  \nAGE-SECRET-KEY-1ABCDEF\n",
	})
	ps := problemsOf(t, err)
	if len(ps) != 2 {
		t.Fatalf("got %v, want 2 problems", err)
	}
	for i, want := range []struct {
		line int
		msg  string
	}{{4, "SSH key type ssh-dss"}, {6, "private key"}} {
		if ps[i].Line != want.line || !strings.HasSuffix(ps[i].File, "keys.txt") || !strings.Contains(ps[i].Msg, want.msg) {
			t.Errorf("problem %d: got %s, want keys.txt:%d with %q", i, ps[i], want.line, want.msg)
		}
	}
	if strings.Contains(err.Error(), "ABCDEF") {
		t.Errorf("got the private key in %v", err)
	}
}

func TestParseRecipient(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{testRecipient, true},
		{"  " + testRecipient2 + " ", true},
		{testSSHKey, true},
		{"ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQDTgsZbHMZS6T1IR40LScq1tBo+XcQsJjkmz5hTIYkZ8gVuxA1OmTDM9AVZxZZcJe4JS6QvPrBfR1my72WN0xv30l5RNDFFY1OiJ/mLoEPzwARBLHfznKpKwy/USSx9EywvpwLxtSom/CjJgUwTiX6Q8p+UopYXDQ4Vqh62eIuGZ3zBWHvVbWZOH0u6YwlFCaoTXq44KZ+vF/rp1kE7z3mJ+ZA/abpW2w2PrPk09S7T3Y5YoXHhnx4yfaokuzULxic1kcNbSCj0QwmCzTmr548qPYFUO5aMzUyd7u2w1j3UyzGarDd+xe8k1Z0+fEnKY2LUG0saR8tDLgEhx5Q9WeXZ", true},
		{pqRecipient, true},
		{testRecipient[:len(testRecipient)-1] + "x", false},
		{"age1yubikey1qwertyuiop", false},
		{"AGE-SECRET-KEY-1QQQ", false},
		{"-----BEGIN OPENSSH PRIVATE KEY-----", false},
		{"ssh-ed25519 notbase64", false},
		{"ssh-ed25519", false},
		{"", false},
	} {
		t.Run(tc.in, func(t *testing.T) {
			_, err := seal.ParseRecipient(tc.in)
			if (err == nil) != tc.ok {
				t.Fatalf("got error %v, want ok %v", err, tc.ok)
			}
			if err != nil && strings.Contains(tc.in, " ") && strings.Contains(err.Error(), tc.in) {
				t.Errorf("got the input quoted in %q, want it never echoed", err)
			}
		})
	}
}

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true},
		{"1048576", 1 << 20, true},
		{"16MiB", 16 << 20, true},
		{"16 MiB", 16 << 20, true},
		{"16mib", 16 << 20, true},
		{"64MB", 64_000_000, true},
		{"1GiB", 1 << 30, true},
		{"1.5GiB", 3 << 29, true},
		{"2TB", 2e12, true},
		{"512B", 512, true},
		{"1KiB", 1024, true},
		{"16M", 0, false},
		{"16k", 0, false},
		{"-1", 0, false},
		{"MiB", 0, false},
		{"", 0, false},
		{"99999999999TiB", 0, false},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseSize(tc.in)
			if (err == nil) != tc.ok || got != tc.want {
				t.Errorf("got %d, %v; want %d, ok %v", got, err, tc.want, tc.ok)
			}
		})
	}
}

func TestFormatSize(t *testing.T) {
	for _, tc := range []struct {
		in   int64
		want string
	}{{0, "0B"}, {512, "512B"}, {1024, "1KiB"}, {16 << 20, "16MiB"}, {3 << 29, "1.5GiB"}, {5_000_000, "4.8MiB"}, {1 << 40, "1TiB"}} {
		if got := FormatSize(tc.in); got != tc.want {
			t.Errorf("FormatSize(%d): got %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestRedactDSN(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"root@tcp(127.0.0.1:3306)/", "root@tcp(127.0.0.1:3306)/"},
		{"root:pw@tcp(127.0.0.1:3306)/", "root:***@tcp(127.0.0.1:3306)/"},
		{"u:p@ss:w/rd@unix(/run/mysqld/mysqld.sock)/shop?parseTime=true", "u:***@unix(/run/mysqld/mysqld.sock)/shop?parseTime=true"},
		{"u:@tcp(h)/", "u:***@tcp(h)/"},
		{"/", "/"},
	} {
		if got := RedactDSN(tc.in); got != tc.want {
			t.Errorf("RedactDSN(%q): got %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestSuggest(t *testing.T) {
	keys := []string{"schedule", "mysql", "targets", "min_targets", "retention"}
	for _, tc := range []struct{ in, want string }{
		{"retension", "retention"},
		{"Schedule", "schedule"},
		{"shcedule", "schedule"},
		{"target", "targets"},
		{"mysq", "mysql"},
		{"postgres", ""},
		{"x", ""},
	} {
		if got := suggest(tc.in, keys); got != tc.want {
			t.Errorf("suggest(%q): got %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestValidSchedules(t *testing.T) {
	for _, spec := range []string{"0 3 * * *", "*/15 * * * *", "0 6 * * 1-5", "@daily", "@hourly", "@every 4s", "@every 1h30m",
		"CRON_TZ=Europe/Berlin 0 3 * * *", "TZ=UTC 30 2 1 * *"} {
		t.Run(spec, func(t *testing.T) {
			yml := "targets:\n  l: {type: dir, path: b}\n" + validTail +
				"policies:\n  p:\n    schedule: \"" + spec + "\"\n    mysql: {dsn: \"r@tcp(h)/\"}\n    targets: [l]\n"
			if _, err := loadWith(t, yml, nil, nil); err != nil {
				t.Errorf("got %v, want the schedule accepted", err)
			}
		})
	}
}
