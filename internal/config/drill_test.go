package config

import (
	"strings"
	"testing"
	"time"
)

func ptr[T any](v T) *T { return &v }

// drillConfig is a valid config whose policy p has the given drill: body (indented under it).
func drillConfig(smtp bool, drill string) string {
	s := `
targets:
  a: {type: dir, path: ./a}
  b: {type: dir, path: ./b}
encryption:
  recipients: [` + testRecipient + `]
`
	if smtp {
		s += "smtp: {host: mail.example.com, from: backupd@example.com}\n"
	}
	return s + `policies:
  p:
    schedule: "@daily"
    mysql: {dsn: "root@tcp(127.0.0.1:3306)/"}
    targets: [a, b]
    drill:
` + drill
}

func TestDrillDefaults(t *testing.T) {
	cfg, err := loadWith(t, drillConfig(false, "      schedule: \"@weekly\"\n"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := cfg.Policies["p"].Drill
	want := &Drill{Schedule: "@weekly", From: DrillFromRotate, Scratch: Scratch{Embedded: &EmbeddedScratch{}}}
	if got == nil || got.Schedule != want.Schedule || got.From != want.From || got.Scratch.Embedded == nil || *got.Scratch.Embedded != *want.Scratch.Embedded || got.Scratch.DSN != "" {
		t.Errorf("got %+v, want %+v", got, want)
	}
	cfg, err = loadWith(t, strings.TrimSuffix(drillConfig(false, ""), "    drill:\n"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Policies["p"].Drill != nil {
		t.Errorf("a policy without drill: got Drill %+v, want nil", cfg.Policies["p"].Drill)
	}
	// An empty drill: section still turns drills on, with every default.
	cfg, err = loadWith(t, drillConfig(false, "      {}\n"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if d := cfg.Policies["p"].Drill; d == nil || d.Scratch.Embedded == nil || d.From != DrillFromRotate {
		t.Errorf("drill: {} got %+v, want the defaults", d)
	}
}

func TestDrillScratchDSN(t *testing.T) {
	cfg, err := loadWith(t, drillConfig(false, "      scratch: {dsn: \"drill:${PW}@tcp(scratch:3306)/\"}\n      from: b\n"), map[string]string{"PW": "s3cret"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	d := cfg.Policies["p"].Drill
	if d.Scratch.DSN != "drill:s3cret@tcp(scratch:3306)/" || d.Scratch.Embedded != nil || d.From != "b" {
		t.Errorf("got scratch %+v from %q, want the DSN and no embedded server, from b", d.Scratch, d.From)
	}
	if s := d.Summary(time.Now()); strings.Contains(s, "s3cret") || !strings.Contains(s, "drill:***@tcp(scratch:3306)/") || !strings.Contains(s, "from b") {
		t.Errorf("summary %q: want the DSN with its password masked and the target", s)
	}
}

func TestDrillValidation(t *testing.T) {
	for _, tc := range []struct {
		name, drill, wantPath, wantMsg string
		smtp                           bool
	}{
		{name: "schedule", drill: "      schedule: \"0 6 * *\"\n", wantPath: "policies.p.drill.schedule", wantMsg: "invalid schedule"},
		{name: "unknown key", drill: "      max_rtp: 1h\n", wantPath: "policies.p.drill.max_rtp", wantMsg: "unknown key"},
		{name: "both scratches", drill: "      scratch: {embedded: {}, dsn: \"root@tcp(x:3306)/\"}\n", wantPath: "policies.p.drill.scratch", wantMsg: "both `embedded` and `dsn`"},
		{name: "dsn with database", drill: "      scratch: {dsn: \"root@tcp(x:3306)/shop\"}\n", wantPath: "policies.p.drill.scratch.dsn", wantMsg: "names database \"shop\""},
		{name: "bad dsn", drill: "      scratch: {dsn: \"not a dsn\"}\n", wantPath: "policies.p.drill.scratch.dsn", wantMsg: "invalid DSN"},
		{name: "unknown embedded key", drill: "      scratch: {embedded: {bufferpool: 1GiB}}\n", wantPath: "policies.p.drill.scratch.embedded.bufferpool", wantMsg: "unknown key"},
		{name: "tiny buffer pool", drill: "      scratch: {embedded: {buffer_pool: 1MiB}}\n", wantPath: "policies.p.drill.scratch.embedded.buffer_pool", wantMsg: "too small"},
		{name: "from unknown target", drill: "      from: c\n", wantPath: "policies.p.drill.from", wantMsg: "not one of the policy's targets"},
		{name: "from typo", drill: "      from: rotat\n", wantPath: "policies.p.drill.from", wantMsg: "not one of"},
		{name: "check without name", drill: "      checks: [{sql: \"SELECT 1\", expect: {min: 1}}]\n", wantPath: "policies.p.drill.checks[0].name", wantMsg: "missing required key `name`"},
		{name: "check without sql", drill: "      checks: [{name: a, expect: {min: 1}}]\n", wantPath: "policies.p.drill.checks[0].sql", wantMsg: "missing required key `sql`"},
		{name: "check without expect", drill: "      checks: [{name: a, sql: \"SELECT 1\"}]\n", wantPath: "policies.p.drill.checks[0].expect", wantMsg: "missing required key `expect`"},
		{name: "expect min above max", drill: "      checks: [{name: a, sql: \"SELECT 1\", expect: {min: 5, max: 1}}]\n", wantPath: "policies.p.drill.checks[0].expect", wantMsg: "no value can pass"},
		{name: "expect not a number", drill: "      checks: [{name: a, sql: \"SELECT 1\", expect: {max: lots}}]\n", wantPath: "policies.p.drill.checks[0].expect.max", wantMsg: "want a number"},
		{name: "expect unknown key", drill: "      checks: [{name: a, sql: \"SELECT 1\", expect: {less_than: 3}}]\n", wantPath: "policies.p.drill.checks[0].expect.less_than", wantMsg: "unknown key"},
		{name: "duplicate check names", drill: "      checks: [{name: a, sql: \"SELECT 1\", expect: {min: 1}}, {name: a, sql: \"SELECT 2\", expect: {min: 1}}]\n", wantPath: "policies.p.drill.checks[1].name", wantMsg: "used twice"},
		{name: "check not a mapping", drill: "      checks: [\"SELECT 1\"]\n", wantPath: "policies.p.drill.checks[0]", wantMsg: "want a mapping"},
		{name: "max_rto not a duration", drill: "      max_rto: soon\n", wantPath: "policies.p.drill.max_rto", wantMsg: "not a duration"},
		{name: "negative max_rpo", drill: "      max_rpo: -1h\n", wantPath: "policies.p.drill.max_rpo", wantMsg: "must not be negative"},
		{name: "notify without smtp", drill: "      notify: [lead@example.com]\n", wantPath: "policies.p.drill.notify", wantMsg: "no smtp: section"},
		{name: "notify bad address", drill: "      notify: [lead.example.com]\n", smtp: true, wantPath: "policies.p.drill.notify[0]", wantMsg: "not an email address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadWith(t, drillConfig(tc.smtp, tc.drill), nil, nil)
			ps := problemsOf(t, err)
			for _, p := range ps {
				if p.Path == tc.wantPath && strings.Contains(p.Msg, tc.wantMsg) {
					if p.Line == 0 {
						t.Errorf("problem %v has no line", p)
					}
					return
				}
			}
			t.Errorf("got problems %v, want one at %s containing %q", ps, tc.wantPath, tc.wantMsg)
		})
	}
}
