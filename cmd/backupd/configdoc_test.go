package main

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/backupd/backupd/internal/config"
	"github.com/backupd/backupd/internal/testenv"
)

// probeKey is a key no schema level has; the decoder answers it with the level's valid keys.
const probeKey = "zzzzzzzz"

// schemaLevel is one mapping level of the config: its path as docs/configuration.md writes it
// (<name> for a user-chosen name, [] for a list entry) and how to wrap a flow-style key/value
// pair so that it lands at that level.
type schemaLevel struct {
	path string
	wrap func(pair string) string
}

// schemaKeys lists every key path the config loader accepts, found by asking the loader itself:
// at each level an unknown key is answered with "valid keys here: …", and each valid key is
// tried as a mapping, a mapping of names and a list of mappings to find the levels below. This
// reads the schema, not how the config package lays out its files.
func schemaKeys(t *testing.T) map[string]bool {
	t.Helper()
	dir := t.TempDir()
	problems := func(yml string) []config.Problem {
		_, err := config.Parse([]byte(yml), "probe.yaml", dir)
		var ve *config.ValidationError
		if !errors.As(err, &ve) {
			return nil
		}
		return ve.Problems
	}
	// unknownAt returns the hint of the unknown-key problem at path, if there is one.
	unknownAt := func(yml, path string) (string, bool) {
		for _, p := range problems(yml) {
			if p.Path == path && strings.HasPrefix(p.Msg, "unknown key") {
				return p.Hint, true
			}
		}
		return "", false
	}
	join := func(parent, key string) string {
		if parent == "" {
			return key
		}
		return parent + "." + key
	}
	// decoderPath is path as the decoder names it: a name is "n", a list entry [0].
	decoderPath := func(path string) string {
		return strings.NewReplacer(".<name>", ".n", "[]", "[0]").Replace(path)
	}

	keys := map[string]bool{}
	queue := []schemaLevel{{path: "", wrap: func(pair string) string { return "{" + pair + "}" }}}
	for len(queue) > 0 {
		lvl := queue[0]
		queue = queue[1:]
		hint, ok := unknownAt(lvl.wrap(probeKey+": 1"), decoderPath(join(lvl.path, probeKey)))
		valid, listed := strings.CutPrefix(hint, "valid keys here: ")
		if !ok || !listed {
			t.Fatalf("the loader did not list the valid keys of %q (got hint %q)", lvl.path, hint)
		}
		for _, key := range strings.Split(valid, ", ") {
			path := join(lvl.path, key)
			keys[path] = true
			for _, child := range []struct {
				path string
				wrap func(string) string
			}{
				{path, func(pair string) string { return lvl.wrap(key + ": {" + pair + "}") }},
				{path + ".<name>", func(pair string) string { return lvl.wrap(key + ": {n: {" + pair + "}}") }},
				{path + "[]", func(pair string) string { return lvl.wrap(key + ": [{" + pair + "}]") }},
			} {
				if _, ok := unknownAt(child.wrap(probeKey+": 1"), decoderPath(join(child.path, probeKey))); ok {
					queue = append(queue, schemaLevel{path: child.path, wrap: child.wrap})
					break
				}
			}
		}
	}
	return keys
}

// documentedKeys reads docs/configuration.md: under each "## `path`" heading (or "## `path`,
// `other.path`" for levels sharing one table), a table whose first column names the keys of that
// level in backquotes (a secret's `key_file` beside it).
func documentedKeys(t *testing.T, doc string) map[string]bool {
	t.Helper()
	heading := regexp.MustCompile("^##+ `")
	quoted := regexp.MustCompile("`([^`]*)`")
	row := regexp.MustCompile("^\\| *(`[^|]*)\\|")
	key := regexp.MustCompile("`([a-z0-9_]+)`")
	keys := map[string]bool{}
	var levels []string // a heading may name several levels that share one table
	for _, line := range strings.Split(doc, "\n") {
		if heading.MatchString(line) {
			levels = nil
			for _, m := range quoted.FindAllStringSubmatch(line, -1) {
				levels = append(levels, strings.TrimPrefix(m[1], "(top level)"))
			}
			continue
		}
		if strings.HasPrefix(line, "#") {
			levels = nil
			continue
		}
		m := row.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		for _, level := range levels {
			for _, k := range key.FindAllStringSubmatch(m[1], -1) {
				if level == "" {
					keys[k[1]] = true
				} else {
					keys[level+"."+k[1]] = true
				}
			}
		}
	}
	return keys
}

// TestConfigDocComplete checks docs/configuration.md against the loader: every key it accepts is
// documented, and every documented key is one it accepts.
func TestConfigDocComplete(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "docs", "configuration.md"))
	if err != nil {
		t.Fatal(err)
	}
	schema := schemaKeys(t)
	if len(schema) < 60 || !schema["policies.<name>.mysql.dsn"] || !schema["policies.<name>.storage[].s3.bucket"] {
		t.Fatalf("the schema probe found %d keys (%v); want every level, e.g. policies.<name>.mysql.dsn and policies.<name>.storage[].s3.bucket", len(schema), sorted(schema))
	}
	documented := documentedKeys(t, string(doc))
	for _, k := range sorted(schema) {
		if !documented[k] {
			t.Errorf("got key %s accepted by the config loader but not documented in docs/configuration.md; add it to the table of its level", k)
		}
	}
	for _, k := range sorted(documented) {
		if !schema[k] {
			t.Errorf("got key %s documented in docs/configuration.md, but the config loader does not accept it", k)
		}
	}
}

// TestConfigDocDetector makes sure the doc reader finds keys, so that the completeness test can fail.
func TestConfigDocDetector(t *testing.T) {
	doc := "# Config\n\n## `(top level)`\n\n| Key | Type |\n|---|---|\n| `listen` | string |\n\n" +
		"## `policies.<name>.mysql`\n\n| Key | Type |\n|---|---|\n| `dsn` / `dsn_file` | string |\n\n" +
		"## `alerts`, `policies.<name>.alerts`\n\n| `email` | list |\n\n## Notes\n\n| `not_a_key` | x |\n"
	got := strings.Join(sorted(documentedKeys(t, doc)), " ")
	want := "alerts.email listen policies.<name>.alerts.email policies.<name>.mysql.dsn policies.<name>.mysql.dsn_file"
	if got != want {
		t.Errorf("got keys %q, want %q", got, want)
	}
}

func sorted(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
