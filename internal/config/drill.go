package config

import (
	"fmt"
	"net/mail"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"go.yaml.in/yaml/v3"
)

// DrillFromRotate is Drill.From when drills cycle through the policy's targets.
const DrillFromRotate = "rotate"

// Drill is a policy's restoration drill (drill:): restore a set into a scratch server, prove
// every table equal to the backup, run the checks, measure RTO and RPO, report.
type Drill struct {
	// Schedule is when the daemon runs the drill (robfig/cron/v3 syntax, like the policy's);
	// empty: only on demand, with `backupd drill`.
	Schedule string
	Scratch  Scratch
	// From is DrillFromRotate (each drill reads the next target of the policy, as the drill
	// history on the targets says) or the name of one of the policy's targets.
	From   string
	Checks []DrillCheck
	MaxRTO time.Duration // 0: no limit
	MaxRPO time.Duration // 0: no limit
	Notify []string      // addresses the report is mailed to; needs the smtp section
}

// Scratch is where a drill restores: a throwaway server it starts itself (Embedded), or a
// server where it may create and drop databases (DSN). Exactly one is set.
type Scratch struct {
	Embedded *EmbeddedScratch
	DSN      string // secret; go-sql-driver syntax, no database. Print it with RedactDSN.
}

// EmbeddedScratch is a disposable MariaDB/MySQL server started from the local binaries.
type EmbeddedScratch struct {
	Dir        string // absolute; the temporary data directory is made under it. Empty: the system's temp dir
	Server     string // absolute path of mariadbd or mysqld; empty: looked up in PATH and /usr/sbin
	BufferPool int64  // innodb_buffer_pool_size; 0: sized from the set and the memory available
}

// DrillCheck is one SQL check run against the restored data.
type DrillCheck struct {
	Name string
	SQL  string
	// Database is the source database the SQL runs in (its default schema); empty: the set's
	// only database, or none when the set has several.
	Database string
	Expect   Expect
}

// Expect is what a check's value (the first column of the first row) must satisfy; every
// condition given must hold.
type Expect struct {
	Min, Max *float64 // inclusive bounds on the value read as a number
	Equals   *string  // the value as text (numbers compare as numbers)
	NotNull  bool     // the query returns a row and the value is not NULL
}

// IsZero reports whether no condition is set.
func (e Expect) IsZero() bool { return e.Min == nil && e.Max == nil && e.Equals == nil && !e.NotNull }

// String describes the conditions as the report shows them.
func (e Expect) String() string {
	var parts []string
	if e.Equals != nil {
		parts = append(parts, "= "+*e.Equals)
	}
	if e.Min != nil {
		parts = append(parts, ">= "+strconv.FormatFloat(*e.Min, 'f', -1, 64))
	}
	if e.Max != nil {
		parts = append(parts, "<= "+strconv.FormatFloat(*e.Max, 'f', -1, 64))
	}
	if e.NotNull {
		parts = append(parts, "not NULL")
	}
	return strings.Join(parts, " and ")
}

// drillField decodes a drill: section; giving the key, even empty, turns drills on.
func drillField(dst **Drill) field {
	return func(d *decoder, n *yaml.Node, p string) {
		*dst = &Drill{}
		d.mapping(n, p, drillFields(*dst))
	}
}

func drillFields(dr *Drill) fields {
	return fields{
		"schedule": str(&dr.Schedule),
		"scratch":  object(scratchFields(&dr.Scratch)),
		"from":     str(&dr.From),
		"checks": func(d *decoder, n *yaml.Node, p string) {
			var out []DrillCheck
			d.list(n, p, func(d *decoder, n *yaml.Node, p string) {
				var c DrillCheck
				d.mapping(n, p, checkFields(&c))
				out = append(out, c) // kept even when bad, so indexes in later messages stay right
			})
			dr.Checks = out
		},
		"max_rto": duration(&dr.MaxRTO),
		"max_rpo": duration(&dr.MaxRPO),
		"notify":  strList(&dr.Notify),
	}
}

func scratchFields(s *Scratch) fields {
	fs := fields{
		"embedded": func(d *decoder, n *yaml.Node, p string) {
			s.Embedded = &EmbeddedScratch{}
			d.mapping(n, p, embeddedFields(s.Embedded))
		},
	}
	secret(fs, "dsn", &s.DSN)
	return fs
}

func embeddedFields(e *EmbeddedScratch) fields {
	return fields{
		"dir":         pathField(&e.Dir),
		"server":      pathField(&e.Server),
		"buffer_pool": size(&e.BufferPool),
	}
}

func checkFields(c *DrillCheck) fields {
	return fields{
		"name":     str(&c.Name),
		"sql":      str(&c.SQL),
		"database": str(&c.Database),
		"expect":   object(expectFields(&c.Expect)),
	}
}

func expectFields(e *Expect) fields {
	return fields{
		"min":      number(&e.Min),
		"max":      number(&e.Max),
		"equals":   optStr(&e.Equals),
		"not_null": boolean(&e.NotNull),
	}
}

// number decodes a decimal number into a newly allocated float.
func number(dst **float64) field {
	return func(d *decoder, n *yaml.Node, p string) {
		s, ok := d.scalar(n, p, "a number")
		if !ok {
			return
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil {
			d.nodeProblem(n, p, fmt.Sprintf("want a number, got %s", d.quote(p, s)), "e.g. 26 or 0.5")
			return
		}
		*dst = &v
	}
}

// optStr decodes a string that may be given as empty (equals: ""), unlike str's absent-or-set.
func optStr(dst **string) field {
	return func(d *decoder, n *yaml.Node, p string) {
		if s, ok := d.scalar(n, p, "a value"); ok {
			*dst = &s
		}
	}
}

// checkDrills validates every policy's drill: section and applies its defaults.
func (d *decoder) checkDrills(c *Config) {
	for _, name := range sortedKeys(c.Policies) {
		pol := c.Policies[name]
		if pol.Drill != nil {
			d.checkDrill(c, pol)
		}
	}
}

func (d *decoder) checkDrill(c *Config, pol *Policy) {
	dr := pol.Drill
	p := joinPath("policies."+pol.Name, "drill")
	if dr.Schedule != "" {
		if _, err := cron.ParseStandard(dr.Schedule); err != nil {
			d.report(joinPath(p, "schedule"), "invalid schedule: "+err.Error(),
				`use five fields like "0 6 * * 1" (Mondays 06:00), or @weekly, @every 24h; leave it out to run drills only with 'backupd drill'`)
		}
	}

	sp := joinPath(p, "scratch")
	switch {
	case dr.Scratch.Embedded != nil && dr.Scratch.DSN != "":
		d.report(sp, "scratch has both `embedded` and `dsn`", "keep one: embedded: {} starts a throwaway server, dsn: names a server the drill may create and drop databases on")
	case dr.Scratch.DSN != "":
		kp := joinPath(sp, "dsn")
		if _, ok := d.pos[kp]; !ok {
			kp += "_file"
		}
		if err := checkDSN(dr.Scratch.DSN); err != nil {
			d.report(kp, err.Error(), "the form is user[:password]@tcp(host:port)/ or user@unix(/path/to/socket)/")
		} else if db := dsnDatabase(dr.Scratch.DSN); db != "" {
			d.report(kp, fmt.Sprintf("the scratch DSN names database %q", db),
				"end it with `/`: the drill creates its own databases (drill_<policy>_…) and drops them afterwards")
		}
	case dr.Scratch.Embedded == nil && !d.bad[sp] && !d.bad[joinPath(sp, "dsn")] && !d.bad[joinPath(sp, "dsn_file")]:
		// No scratch given: a throwaway server, which needs nothing configured.
		dr.Scratch.Embedded = &EmbeddedScratch{}
	}
	if e := dr.Scratch.Embedded; e != nil && e.BufferPool != 0 && e.BufferPool < 8<<20 {
		d.report(joinPath(sp, "embedded.buffer_pool"), fmt.Sprintf("buffer_pool %s is too small", FormatSize(e.BufferPool)), "leave it out to size it from the set, or give e.g. 1GiB")
	}

	fp := joinPath(p, "from")
	switch {
	case dr.From == "":
		dr.From = DrillFromRotate
	case dr.From == DrillFromRotate:
	default:
		found := false
		for _, t := range pol.Targets {
			found = found || t == dr.From
		}
		if !found && len(pol.Targets) > 0 {
			hint := "use rotate, or one of the policy's targets: " + strings.Join(pol.Targets, ", ")
			if s := suggest(dr.From, append([]string{DrillFromRotate}, pol.Targets...)); s != "" {
				hint = fmt.Sprintf("did you mean `%s`? %s", s, hint)
			}
			d.report(fp, fmt.Sprintf("%s is not one of the policy's targets", d.quote(fp, dr.From)), hint)
		}
	}

	seen := map[string]int{}
	for i, ch := range dr.Checks {
		ip := indexPath(joinPath(p, "checks"), i)
		if d.bad[ip] {
			continue
		}
		switch {
		case strings.TrimSpace(ch.Name) == "":
			d.missing(ip, "name", "a short name the report shows, e.g. name: recent orders")
		case seen[ch.Name] > 0:
			d.report(joinPath(ip, "name"), fmt.Sprintf("check name %q is used twice (also checks[%d])", ch.Name, seen[ch.Name]-1), "give every check its own name")
		}
		seen[ch.Name] = i + 1
		if strings.TrimSpace(ch.SQL) == "" {
			d.missing(ip, "sql", `one SELECT whose first column of the first row is compared, e.g. sql: "SELECT COUNT(*) FROM shop.orders"`)
		}
		e := ch.Expect
		switch {
		case e.IsZero() && !d.bad[joinPath(ip, "expect")]:
			d.missing(ip, "expect", "what the value must be: expect: {min: 1}, {max: 26}, {equals: \"ok\"} or {not_null: true}")
		case e.Min != nil && e.Max != nil && *e.Min > *e.Max:
			d.report(joinPath(ip, "expect"), fmt.Sprintf("min %v is above max %v: no value can pass", *e.Min, *e.Max), "swap them")
		}
	}

	for _, f := range []struct {
		key string
		v   time.Duration
	}{{"max_rto", dr.MaxRTO}, {"max_rpo", dr.MaxRPO}} {
		if f.v < 0 {
			d.report(joinPath(p, f.key), fmt.Sprintf("%s must not be negative", f.key), "e.g. 30m; leave it out for no limit")
		}
	}

	np := joinPath(p, "notify")
	for i, addr := range dr.Notify {
		ip := indexPath(np, i)
		if d.bad[ip] {
			continue
		}
		if _, err := mail.ParseAddress(addr); err != nil {
			d.report(ip, fmt.Sprintf("%s is not an email address", d.quote(ip, addr)), "e.g. lead@example.com")
		}
	}
	if len(dr.Notify) > 0 && c.SMTP == nil {
		d.report(np, "drill reports go by email, but there is no smtp: section", "add smtp: with the mail server, or remove notify")
	}
}

// dsnDatabase returns the database a DSN selects; "" when none (or when it does not parse).
func dsnDatabase(dsn string) string {
	slash := strings.LastIndexByte(dsn, '/')
	if slash < 0 {
		return ""
	}
	db, _, _ := strings.Cut(dsn[slash+1:], "?")
	return db
}

// Summary describes the drill in one line for check-config; it never shows a password.
func (dr *Drill) Summary(now time.Time) string {
	var b strings.Builder
	if dr.Schedule == "" {
		b.WriteString("on demand only (no schedule)")
	} else {
		b.WriteString(dr.Schedule)
		if s, err := cron.ParseStandard(dr.Schedule); err == nil {
			fmt.Fprintf(&b, " (next %s)", s.Next(now).Format(time.RFC3339))
		}
	}
	if dr.Scratch.DSN != "" {
		fmt.Fprintf(&b, ", scratch %s", RedactDSN(dr.Scratch.DSN))
	} else {
		b.WriteString(", embedded scratch server")
	}
	if dr.From == DrillFromRotate {
		b.WriteString(", targets in rotation")
	} else {
		fmt.Fprintf(&b, ", from %s", dr.From)
	}
	fmt.Fprintf(&b, ", %d check(s)", len(dr.Checks))
	if dr.MaxRTO > 0 {
		fmt.Fprintf(&b, ", max_rto %s", dr.MaxRTO)
	}
	if dr.MaxRPO > 0 {
		fmt.Fprintf(&b, ", max_rpo %s", dr.MaxRPO)
	}
	if len(dr.Notify) > 0 {
		fmt.Fprintf(&b, ", report to %s", strings.Join(dr.Notify, ", "))
	}
	return b.String()
}
