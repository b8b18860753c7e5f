package config

import (
	"fmt"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The schema: one table per mapping level. Adding a key is a field in the type (config.go) and a
// line here; validation beyond the value's type goes in validate.go.

func rootFields(c *Config) fields {
	return fields{
		"listen":       str(&c.Listen),
		"state_dir":    pathField(&c.StateDir),
		"policies_dir": pathField(&c.PoliciesDir),
		"targets": named(func(d *decoder, name string, n *yaml.Node, p string) {
			t := newTarget(name)
			c.Targets[name] = t
			d.target(n, p, t)
		}),
		"encryption": object(encryptionFields(&c.Encryption)),
		"signing":    object(signingFields(&c.Signing)),
		"smtp": func(d *decoder, n *yaml.Node, p string) {
			c.SMTP = newSMTP()
			d.mapping(n, p, smtpFields(c.SMTP))
		},
		"policies": named(func(d *decoder, name string, n *yaml.Node, p string) {
			pol := newPolicy(name, c.File)
			d.policies = append(d.policies, pol)
			d.mapping(n, p, policyFields(pol))
		}),
		"max_concurrent_jobs": integer(&c.MaxConcurrentJobs),
		"shutdown_timeout":    duration(&c.ShutdownTimeout),
		"alerts":              object(alertsFields(&c.Alerts)),
	}
}

// targetFields is the schema of a target of type typ; an empty or unknown typ accepts the keys
// of every type, so typos are still found while the type itself is reported.
func targetFields(t *Target, typ string) fields {
	fs := fields{
		"type": oneOf(&t.Type, TargetS3, TargetDir),
	}
	if typ != TargetS3 {
		fs["path"] = pathField(&t.Path)
	}
	if typ != TargetDir {
		fs["endpoint"] = str(&t.Endpoint)
		fs["region"] = str(&t.Region)
		fs["bucket"] = str(&t.Bucket)
		fs["prefix"] = str(&t.Prefix)
		fs["bucket_lookup"] = oneOf(&t.BucketLookup, BucketLookupAuto, BucketLookupPath, BucketLookupDNS)
		fs["ca_file"] = pathField(&t.CAFile)
		fs["part_size"] = size(&t.PartSize)
		fs["object_lock_days"] = integer(&t.ObjectLockDays)
		fs["object_lock_mode"] = oneOf(&t.ObjectLockMode, ObjectLockCompliance, ObjectLockGovernance)
		secret(fs, "access_key", &t.AccessKey)
		secret(fs, "secret_key", &t.SecretKey)
	}
	return fs
}

func encryptionFields(e *Encryption) fields {
	return fields{
		"recipients":      strList(&e.Recipients),
		"recipients_file": pathField(&e.RecipientsFile),
		"identity_file":   pathField(&e.IdentityFile),
		"dedup_key_file":  pathField(&e.DedupKeyFile),
	}
}

func smtpFields(s *SMTP) fields {
	fs := fields{
		"host":     str(&s.Host),
		"port":     integer(&s.Port),
		"from":     str(&s.From),
		"starttls": boolean(&s.StartTLS),
	}
	secret(fs, "username", &s.Username)
	secret(fs, "password", &s.Password)
	return fs
}

func policyFields(p *Policy) fields {
	return fields{
		"schedule": str(&p.Schedule),
		"mysql": func(d *decoder, n *yaml.Node, path string) {
			p.MySQL = newMySQL()
			d.mapping(n, path, mysqlFields(p.MySQL))
		},
		"targets":     strList(&p.Targets),
		"min_targets": integer(&p.MinTargets),
		"retention":   object(retentionFields(&p.Retention)),

		"catch_up":          boolean(&p.CatchUp),
		"jitter":            duration(&p.Jitter),
		"uncommitted_grace": duration(&p.UncommittedGrace),
		"alerts":            object(alertsFields(&p.Alerts)),
		"drill":             drillField(&p.Drill),
		"storage":           storageField(&p.Storage),
	}
}

func mysqlFields(m *MySQL) fields {
	fs := fields{
		"databases":         strList(&m.Databases),
		"exclude_tables":    strList(&m.ExcludeTables),
		"threads":           integer(&m.Threads),
		"chunk_size":        size(&m.ChunkSize),
		"lock_wait_timeout": duration(&m.LockWaitTimeout),
		"compression":       oneOf(&m.CompressionLevel, CompressionFastest, CompressionDefault, CompressionBetter, CompressionBest),
		"include_users":     boolean(&m.IncludeUsers),
	}
	secret(fs, "dsn", &m.DSN)
	return fs
}

func retentionFields(r *Retention) fields {
	return fields{
		"keep_last": integer(&r.KeepLast),
		"hourly":    integer(&r.Hourly),
		"daily":     integer(&r.Daily),
		"weekly":    integer(&r.Weekly),
		"monthly":   integer(&r.Monthly),
		"yearly":    integer(&r.Yearly),
	}
}

// target decodes one target: its type decides which keys are valid.
func (d *decoder) target(n *yaml.Node, p string, t *Target) {
	typ := d.peek(n, "type")
	all := targetFields(&Target{}, "")
	d.mapping(n, p, targetFields(t, typ), func(key string) (string, string, bool) {
		if _, ok := all[key]; !ok {
			return "", "", false
		}
		own := make([]string, 0)
		for k := range targetFields(&Target{}, typ) {
			own = append(own, k)
		}
		sort.Strings(own)
		return fmt.Sprintf("`%s` does not apply to a %s target", key, typ),
			fmt.Sprintf("a %s target takes: %s", typ, strings.Join(own, ", ")), true
	})
}

// peek returns the expanded value of scalar key in mapping n without recording anything; the
// real decoding reports any problem with it.
func (d *decoder) peek(n *yaml.Node, key string) string {
	n = resolve(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return ""
	}
	scratch := &decoder{file: d.file}
	for _, kv := range scratch.pairs(n, "", 0) {
		if kv.key.Value != key {
			continue
		}
		v := resolve(kv.value)
		if v == nil || v.Kind != yaml.ScalarNode || isNull(v) {
			return ""
		}
		s, _, err := expandEnv(v.Value, d.lookup)
		if err != nil {
			return ""
		}
		return s
	}
	return ""
}
