package config

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/robfig/cron/v3"

	"github.com/backupd/backupd/internal/dump"
	"github.com/backupd/backupd/internal/mysqldsn"
	"github.com/backupd/backupd/internal/seal"
)

// finish applies the defaults that depend on other values, then checks what the decoding could
// not check alone: required keys, ranges, references between sections.
func (d *decoder) finish(c *Config) {
	if c.StateDir == "" {
		c.StateDir = filepath.Join(c.Dir, DefaultStateDirName)
	}
	d.checkListen(c.Listen)
	for _, name := range sortedKeys(c.Targets) {
		d.checkTarget(c.Targets[name])
	}
	if c.SMTP != nil {
		d.checkSMTP(c.SMTP)
	}
	d.checkEncryption(c)
	d.checkSigning(c)
	for _, name := range sortedKeys(c.Policies) {
		d.checkPolicy(c, c.Policies[name])
	}
	d.checkDaemon(c)
	d.checkDrills(c)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (d *decoder) missing(p, key, hint string) {
	kp := joinPath(p, key)
	if d.bad[kp] || d.bad[kp+"_file"] {
		return
	}
	d.report(kp, fmt.Sprintf("missing required key `%s`", key), hint)
}

// missingSecret is missing for a key that may also come from key_file.
func (d *decoder) missingSecret(p, key, hint string) {
	kp := joinPath(p, key)
	if d.bad[kp] || d.bad[kp+"_file"] {
		return
	}
	d.report(kp, fmt.Sprintf("missing required key `%s` (or `%s_file`)", key, key), hint)
}

var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// checkName keeps names safe as object-key segments, metric labels and CLI arguments.
func (d *decoder) checkName(p, what, name string) {
	if !validName.MatchString(name) {
		d.report(p, fmt.Sprintf("%s name %q is not allowed", what, name),
			"use up to 64 letters, digits, '.', '_' and '-', starting with a letter or digit")
	}
}

func (d *decoder) checkListen(listen string) {
	_, port, err := net.SplitHostPort(listen)
	if err == nil {
		var n int
		n, err = strconv.Atoi(port)
		if err == nil && (n < 0 || n > 65535) {
			err = fmt.Errorf("port out of range")
		}
	}
	if err != nil {
		d.report("listen", fmt.Sprintf("%s is not a host:port address", d.quote("listen", listen)), "e.g. 127.0.0.1:9187, or :9187 for every interface")
	}
}

func (d *decoder) checkTarget(t *Target) {
	p := "targets." + t.Name
	d.checkName(p, "target", t.Name)
	switch t.Type {
	case "":
		d.missing(p, "type", "set type: s3 or type: dir")
	case TargetDir:
		if t.Path == "" {
			d.missing(p, "path", "the directory sets are written to, e.g. path: ./backups")
		}
	case TargetS3:
		d.checkS3(p, t)
	}
}

func (d *decoder) checkS3(p string, t *Target) {
	if t.Endpoint == "" {
		d.missing(p, "endpoint", "e.g. endpoint: https://s3.eu-west-1.amazonaws.com or http://127.0.0.1:9000")
	} else {
		d.checkEndpoint(joinPath(p, "endpoint"), t.Endpoint)
	}
	if t.Region == "" {
		t.Region = DefaultRegion
	}
	if t.Bucket == "" {
		d.missing(p, "bucket", "the name of an existing bucket")
	} else if strings.Contains(t.Bucket, "/") {
		d.report(joinPath(p, "bucket"), "a bucket name cannot contain `/`", "put the folder part in prefix:")
	} else if len(t.Bucket) < 3 || len(t.Bucket) > 63 {
		d.report(joinPath(p, "bucket"), "a bucket name is 3 to 63 characters long", "")
	}
	if t.AccessKey == "" {
		d.missingSecret(p, "access_key", "e.g. access_key: ${S3_ACCESS_KEY}")
	}
	if t.SecretKey == "" {
		d.missingSecret(p, "secret_key", "e.g. secret_key: ${S3_SECRET_KEY}, or secret_key_file: /run/secrets/s3")
	}
	prefix := strings.TrimLeft(t.Prefix, "/")
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	t.Prefix = prefix
	for _, seg := range strings.Split(strings.TrimSuffix(prefix, "/"), "/") {
		if prefix != "" && (seg == "" || seg == "." || seg == "..") {
			d.report(joinPath(p, "prefix"), "the prefix has an empty, `.` or `..` segment", "write it like prod/ or team/prod/")
			break
		}
	}
	if t.PartSize < minPartSize || t.PartSize > maxPartSize {
		d.report(joinPath(p, "part_size"), fmt.Sprintf("part size %s is outside S3's limits of 5MiB to 5GiB", FormatSize(t.PartSize)),
			"the default is 16MiB; memory use grows with it")
	}
	if t.CAFile != "" {
		kp := joinPath(p, "ca_file")
		if strings.HasPrefix(t.Endpoint, "http://") {
			d.report(kp, "ca_file is only used with an https:// endpoint", "use https:// in endpoint, or remove ca_file")
		}
		if b, err := d.readPublic(t.CAFile, "ca_file"); err != nil {
			d.report(kp, err.Error(), "")
		} else if !x509.NewCertPool().AppendCertsFromPEM(b) {
			d.report(kp, fmt.Sprintf("%s holds no PEM certificate", d.shown(t.CAFile)), "it must contain -----BEGIN CERTIFICATE----- blocks")
		}
	}
}

// checkEndpoint never prints the endpoint: a URL may carry credentials.
func (d *decoder) checkEndpoint(p, endpoint string) {
	u, err := url.Parse(endpoint)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		d.report(p, "endpoint must be an http:// or https:// URL",
			"e.g. https://s3.eu-west-1.amazonaws.com or http://127.0.0.1:9000; the scheme decides TLS")
	case u.User != nil:
		d.report(p, "endpoint must not contain credentials", "give them in access_key and secret_key")
	case (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "":
		d.report(p, "endpoint must be only scheme, host and port", "put the bucket in bucket: and any folder in prefix:")
	}
}

func (d *decoder) checkSMTP(s *SMTP) {
	if s.Host == "" {
		d.missing("smtp", "host", "the mail server, e.g. host: smtp.example.com")
	}
	if s.Port < 1 || s.Port > 65535 {
		d.report("smtp.port", fmt.Sprintf("port %d is out of range 1..65535", s.Port), "587 is the usual submission port")
	}
	if s.From == "" {
		d.missing("smtp", "from", "the sender address, e.g. from: backupd@example.com")
	} else if _, err := mail.ParseAddress(s.From); err != nil {
		d.report("smtp.from", fmt.Sprintf("%s is not an email address", d.quote("smtp.from", s.From)), "e.g. backupd@example.com or \"Backups <backupd@example.com>\"")
	}
	if (s.Username == "") != (s.Password == "") && !d.bad["smtp.username"] && !d.bad["smtp.password"] &&
		!d.bad["smtp.username_file"] && !d.bad["smtp.password_file"] {
		d.report("smtp", "username and password go together: one is given without the other", "give both, or neither for a server that needs no login")
	}
}

func (d *decoder) checkEncryption(c *Config) {
	e := &c.Encryption
	seen := map[string]bool{}
	reported := false // a problem about recipients was already recorded
	var recipients []string
	add := func(r string) {
		if !seen[r] {
			seen[r] = true
			recipients = append(recipients, r)
		}
	}
	for i, r := range e.Recipients {
		p := indexPath("encryption.recipients", i)
		if d.bad[p] {
			reported = true
			continue
		}
		if _, err := seal.ParseRecipient(r); err != nil {
			d.report(p, fmt.Sprintf("recipient %d: %v", i, err), recipientHint)
			reported = true
			continue
		}
		add(strings.TrimSpace(r))
	}
	configured := len(e.Recipients) > 0 || e.RecipientsFile != ""
	if e.RecipientsFile != "" {
		read := d.listFile(e.RecipientsFile, "encryption.recipients_file", func(shown string, n int, line string) {
			if _, err := seal.ParseRecipient(line); err != nil {
				d.problem(shown, n, "encryption.recipients_file", fmt.Sprintf("line %d: %v", n, err), recipientHint)
				reported = true
				return
			}
			add(line)
		})
		if !read {
			reported = true
		}
	}
	e.Recipients = recipients
	if reported {
		return
	}
	pq := 0
	for _, r := range recipients {
		if strings.HasPrefix(r, "age1pq1") {
			pq++
		}
	}
	if pq > 0 && pq < len(recipients) {
		d.report("encryption.recipients", "post-quantum recipients (age1pq1…) cannot be mixed with X25519 or SSH recipients: age refuses to encrypt to both",
			"use only age1pq1… keys, or only the others")
	}
	if len(c.Policies) == 0 || len(recipients) > 0 || e.IdentityFile != "" {
		return
	}
	msg := "no age recipient is configured, so the policies' backups cannot be encrypted"
	if configured {
		msg = "no age recipient: recipients is empty and recipients_file holds none"
	}
	d.report("encryption.recipients", msg,
		"add encryption.recipients (age1… or SSH public keys) or recipients_file; or set encryption.identity_file "+
			"to derive the public key from it (the first backup generates a key there if the file does not exist)")
}

const recipientHint = "use an age public key (age1…, from age-keygen -y) or an SSH public key (ssh-ed25519 … or ssh-rsa …)"

func (d *decoder) checkPolicy(c *Config, pol *Policy) {
	p := "policies." + pol.Name
	d.checkName(p, "policy", pol.Name)

	if pol.Schedule == "" {
		d.missing(p, "schedule", `e.g. schedule: "0 3 * * *" (03:00 daily) or "@every 6h"`)
	} else if _, err := cron.ParseStandard(pol.Schedule); err != nil {
		d.report(joinPath(p, "schedule"), "invalid schedule: "+err.Error(),
			`use five fields "minute hour day-of-month month day-of-week" like "0 3 * * *", or @hourly, @daily, @weekly, @every 30m; prefix CRON_TZ=Europe/Berlin for a time zone`)
	}

	if pol.MySQL == nil && len(pol.Storage) == 0 && !d.bad[joinPath(p, "mysql")] && !d.bad[joinPath(p, "storage")] {
		d.report(p, "the policy has nothing to back up", "add a mysql: section with at least a dsn, or a storage: list of directories or buckets")
	}
	d.checkStorage(joinPath(p, "storage"), pol.Storage)
	if pol.MySQL != nil {
		d.checkMySQL(joinPath(p, "mysql"), pol.MySQL)
	}

	tp := joinPath(p, "targets")
	defined := sortedKeys(c.Targets)
	definedHint := "define targets under targets: first"
	if len(defined) > 0 {
		definedHint = "defined targets: " + strings.Join(defined, ", ")
	}
	if len(pol.Targets) == 0 && !d.bad[tp] {
		d.report(tp, "the policy has no targets", definedHint)
	}
	seen := map[string]bool{}
	for i, name := range pol.Targets {
		ip := indexPath(tp, i)
		switch {
		case d.bad[ip]:
		case c.Targets[name] == nil:
			hint := definedHint
			if s := suggest(name, defined); s != "" {
				hint = fmt.Sprintf("did you mean `%s`? %s", s, definedHint)
			}
			d.report(ip, fmt.Sprintf("target `%s` is not defined", name), hint)
		case seen[name]:
			d.report(ip, fmt.Sprintf("target `%s` is listed twice", name), "")
		}
		seen[name] = true
	}

	mp := joinPath(p, "min_targets")
	if _, given := d.pos[mp]; !given || d.bad[mp] {
		pol.MinTargets = len(pol.Targets)
	} else if len(pol.Targets) > 0 && (pol.MinTargets < 1 || pol.MinTargets > len(pol.Targets)) {
		d.report(mp, fmt.Sprintf("min_targets %d is outside 1..%d (the number of targets)", pol.MinTargets, len(pol.Targets)),
			"it is how many targets must hold the set for the backup to count as a success; leave it out for all of them")
	}

	r := pol.Retention
	for _, f := range []struct {
		key string
		n   int
	}{{"keep_last", r.KeepLast}, {"hourly", r.Hourly}, {"daily", r.Daily}, {"weekly", r.Weekly}, {"monthly", r.Monthly}, {"yearly", r.Yearly}} {
		if f.n < 0 {
			d.report(joinPath(p, "retention."+f.key), fmt.Sprintf("%s is negative (%d)", f.key, f.n), "use 0 or more")
		}
	}
}

func (d *decoder) checkMySQL(p string, m *MySQL) {
	if m.DSN == "" {
		d.missingSecret(p, "dsn", `e.g. dsn: "root@tcp(127.0.0.1:3306)/" or "backup:${DB_PASSWORD}@unix(/run/mysqld/mysqld.sock)/"`)
	} else if err := checkDSN(m.DSN); err != nil {
		kp := joinPath(p, "dsn")
		if _, ok := d.pos[kp]; !ok {
			kp += "_file"
		}
		d.report(kp, err.Error(), "the form is user[:password]@tcp(host:port)/ or user@unix(/path/to/socket)/, with ?param=value options")
	}
	if m.Threads < 1 {
		d.report(joinPath(p, "threads"), fmt.Sprintf("threads must be at least 1, got %d", m.Threads), "")
	}
	if m.ChunkSize <= 0 {
		d.report(joinPath(p, "chunk_size"), "chunk_size must be more than 0", "e.g. 64MiB")
	}
	if m.LockWaitTimeout <= 0 {
		d.report(joinPath(p, "lock_wait_timeout"), "lock_wait_timeout must be more than 0", "e.g. 30s")
	}
	seen := map[string]bool{}
	for i, db := range m.Databases {
		ip := indexPath(joinPath(p, "databases"), i)
		switch {
		case d.bad[ip]:
		case db == "":
			d.report(ip, "empty database name", "")
		case seen[db]:
			d.report(ip, fmt.Sprintf("database `%s` is listed twice", db), "")
		}
		seen[db] = true
	}
	for i, t := range m.ExcludeTables {
		ip := indexPath(joinPath(p, "exclude_tables"), i)
		db, table, ok := strings.Cut(t, ".")
		if !d.bad[ip] && (!ok || db == "" || table == "") {
			d.report(ip, fmt.Sprintf("%s is not of the form database.table", d.quote(ip, t)), "e.g. shop.sessions")
		}
	}
}

// checkDSN is go-sql-driver's own parser, with its messages kept from quoting the password
// (dump.RedactDSNError): a malformed DSN may be split in the wrong place and put part of the
// password in a message.
func checkDSN(dsn string) error {
	err := mysqldsn.Check(dsn)
	if err == nil || errors.Is(err, mysqldsn.ErrAllowAllFiles) {
		return err
	}
	msg := dump.RedactDSNError(dsn, err)
	if !strings.HasPrefix(msg, "invalid DSN") {
		msg = "invalid DSN: " + msg
	}
	return errors.New(msg)
}

func unwrapPath(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}
