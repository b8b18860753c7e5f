package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/backupd/backupd/internal/fileperm"
)

// decoder walks yaml.Node trees against field tables (schema.go), collecting every problem
// instead of stopping at the first, and remembering where each key was so that the validation
// after decoding can point at lines too.
type decoder struct {
	file     string // the file being decoded, as shown in messages
	mainFile string
	shownDir string // the config directory as shown in messages
	dir      string // the config directory, absolute
	lookup   func(string) (string, bool)

	problems []Problem
	pos      map[string]loc    // key path -> where it was given
	bad      map[string]bool   // key paths whose value already produced a problem
	raw      map[string]string // key path -> the text before ${VAR} expansion, where there was any
	files    []string          // files in the order problems should be listed

	policies []*Policy // in definition order, before duplicate checks
}

type loc struct {
	file string
	line int
}

func newDecoder(file, shownDir, dir string, lookup func(string) (string, bool)) *decoder {
	return &decoder{
		file:     file,
		mainFile: file,
		shownDir: shownDir,
		dir:      dir,
		lookup:   lookup,
		pos:      map[string]loc{},
		bad:      map[string]bool{},
		raw:      map[string]string{},
		files:    []string{file},
	}
}

// field decodes the value node of one key at key path p.
type field func(d *decoder, n *yaml.Node, p string)

// fields is the schema of one mapping level: its valid keys and how to decode each.
type fields map[string]field

// problem records a problem at an explicit location.
func (d *decoder) problem(file string, line int, p, msg, hint string) {
	d.problems = append(d.problems, Problem{File: file, Path: p, Line: line, Msg: msg, Hint: hint})
}

// nodeProblem records a problem with the value node n of key path p.
func (d *decoder) nodeProblem(n *yaml.Node, p, msg, hint string) {
	d.bad[p] = true
	d.problem(d.file, n.Line, p, msg, hint)
}

// report records a problem found after decoding, located through the remembered positions. A
// path whose value already produced a problem is not reported twice.
func (d *decoder) report(p, msg, hint string) {
	if d.bad[p] {
		return
	}
	l := d.at(p)
	d.problem(l.file, l.line, p, msg, hint)
}

// at returns where key path p, or failing that its nearest known parent, was given.
func (d *decoder) at(p string) loc {
	for {
		if l, ok := d.pos[p]; ok {
			return l
		}
		if p == "" {
			return loc{file: d.mainFile}
		}
		p = parentPath(p)
	}
}

func parentPath(p string) string {
	dot, br := strings.LastIndexByte(p, '.'), strings.LastIndexByte(p, '[')
	if br > dot {
		return p[:br]
	}
	if dot < 0 {
		return ""
	}
	return p[:dot]
}

func joinPath(p, key string) string {
	if p == "" {
		return key
	}
	return p + "." + key
}

func indexPath(p string, i int) string { return fmt.Sprintf("%s[%d]", p, i) }

// sorted returns the problems ordered by file (main file first) and line, so the list reads
// like the file.
func (d *decoder) sorted() []Problem {
	order := map[string]int{}
	for i, f := range d.files {
		if _, ok := order[f]; !ok {
			order[f] = i
		}
	}
	rank := func(f string) int {
		if r, ok := order[f]; ok {
			return r
		}
		return len(d.files)
	}
	ps := append([]Problem(nil), d.problems...)
	sort.SliceStable(ps, func(i, j int) bool {
		if a, b := rank(ps[i].File), rank(ps[j].File); a != b {
			return a < b
		}
		return ps[i].Line < ps[j].Line
	})
	return ps
}

var yamlLine = regexp.MustCompile(`line (\d+)`)

// parseYAML parses one file; nil when it is empty or does not parse (the problem is recorded).
func (d *decoder) parseYAML(data []byte) *yaml.Node {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		line := 0
		if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
			line, _ = strconv.Atoi(m[1])
		}
		d.problem(d.file, line, "", "not valid YAML: "+strings.TrimPrefix(err.Error(), "yaml: "),
			"check the indentation (spaces, not tabs) and quote values that contain ': ' or start with a special character")
		return nil
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil
	}
	return doc.Content[0]
}

func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return "a single value"
	}
	return "something else"
}

type pair struct {
	key, value *yaml.Node
	merged     bool // from a `<<: *anchor` merge; explicit keys override it
}

// pairs returns the key/value pairs of mapping n, explicit ones first, then those of `<<` merges.
func (d *decoder) pairs(n *yaml.Node, p string, depth int) []pair {
	var out []pair
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Tag == "!!merge" {
			merges = append(merges, v)
			continue
		}
		out = append(out, pair{key: k, value: v})
	}
	if depth > 20 {
		return out
	}
	for _, m := range merges {
		m = resolve(m)
		srcs := []*yaml.Node{m}
		if m.Kind == yaml.SequenceNode {
			srcs = srcs[:0]
			for _, s := range m.Content {
				srcs = append(srcs, resolve(s))
			}
		}
		for _, s := range srcs {
			if s.Kind != yaml.MappingNode {
				d.problem(d.file, s.Line, p, "`<<` merges a mapping (or a list of mappings), got "+kindName(s), "")
				continue
			}
			for _, pr := range d.pairs(s, p, depth+1) {
				pr.merged = true
				out = append(out, pr)
			}
		}
	}
	return out
}

// each calls fn for every key/value pair of mapping n, reporting duplicate keys and non-scalar
// keys; a null n is an empty mapping.
func (d *decoder) each(n *yaml.Node, p string, fn func(k *yaml.Node, v *yaml.Node, key string)) {
	n = resolve(n)
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.nodeProblem(n, p, "want a mapping (key: value lines), got "+kindName(n), "")
		return
	}
	seen := map[string]int{}
	for _, kv := range d.pairs(n, p, 0) {
		if kv.key.Kind != yaml.ScalarNode {
			d.problem(d.file, kv.key.Line, p, "a key must be a plain name, got "+kindName(kv.key), "")
			continue
		}
		key := kv.key.Value
		if line, dup := seen[key]; dup {
			if !kv.merged {
				d.problem(d.file, kv.key.Line, joinPath(p, key), fmt.Sprintf("key `%s` given twice (also on line %d)", key, line), "remove one of them")
			}
			continue
		}
		seen[key] = kv.key.Line
		fn(kv.key, kv.value, key)
	}
}

// mapping decodes mapping n at key path p with the schema fs. A key not in fs is a problem;
// misplaced, when given, may explain it better than "unknown key" (say, a key of another target
// type).
func (d *decoder) mapping(n *yaml.Node, p string, fs fields, misplaced ...func(key string) (msg, hint string, ok bool)) {
	d.each(n, p, func(k, v *yaml.Node, key string) {
		kp := joinPath(p, key)
		f, ok := fs[key]
		if !ok {
			d.unknownKey(k, kp, key, fs, misplaced)
			return
		}
		d.pos[kp] = loc{d.file, k.Line}
		f(d, v, kp)
	})
}

// named decodes a mapping of user-chosen names to objects, such as targets and policies.
func named(fn func(d *decoder, name string, n *yaml.Node, p string)) field {
	return func(d *decoder, n *yaml.Node, p string) {
		d.each(n, p, func(k, v *yaml.Node, name string) {
			np := joinPath(p, name)
			d.pos[np] = loc{d.file, k.Line}
			fn(d, name, v, np)
		})
	}
}

func (d *decoder) unknownKey(k *yaml.Node, kp, key string, fs fields, misplaced []func(string) (string, string, bool)) {
	for _, m := range misplaced {
		if msg, hint, ok := m(key); ok {
			d.problem(d.file, k.Line, kp, msg, hint)
			return
		}
	}
	valid := make([]string, 0, len(fs))
	for name := range fs {
		valid = append(valid, name)
	}
	sort.Strings(valid)
	hint := "valid keys here: " + strings.Join(valid, ", ")
	if s := suggest(key, valid); s != "" {
		hint = fmt.Sprintf("did you mean `%s`?", s)
	}
	d.problem(d.file, k.Line, kp, fmt.Sprintf("unknown key `%s`", key), hint)
}

// scalar returns the env-expanded text of scalar n; ok is false when n is null (the key is then
// treated as absent) or when a problem was recorded.
func (d *decoder) scalar(n *yaml.Node, p, want string) (string, bool) {
	n = resolve(n)
	if isNull(n) {
		return "", false
	}
	if n.Kind != yaml.ScalarNode {
		d.nodeProblem(n, p, fmt.Sprintf("want %s, got %s", want, kindName(n)), "")
		return "", false
	}
	s, missing, err := expandEnv(n.Value, d.lookup)
	if s != n.Value {
		d.raw[p] = n.Value
	}
	for _, name := range missing {
		d.nodeProblem(n, p, fmt.Sprintf("environment variable %s is not set", name),
			fmt.Sprintf("set %s in backupd's environment, or give a default with ${%s:-value}", name, name))
	}
	if err != nil {
		d.nodeProblem(n, p, err.Error(), "")
	}
	return s, len(missing) == 0 && err == nil
}

// quote shows the value s of key path p in a message: quoted, or, when it came from the
// environment, as the reference it was expanded from, since an environment value is never
// printed.
func (d *decoder) quote(p, s string) string {
	if raw, ok := d.raw[p]; ok {
		return fmt.Sprintf("the value of %s", raw)
	}
	return strconv.Quote(s)
}

// list decodes sequence n, calling item with each element's key path; a null n is an empty list.
func (d *decoder) list(n *yaml.Node, p string, item func(d *decoder, n *yaml.Node, p string)) {
	n = resolve(n)
	if isNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.nodeProblem(n, p, "want a list, got "+kindName(n), "write [a, b] or one `- item` per line")
		return
	}
	for i, it := range n.Content {
		ip := indexPath(p, i)
		d.pos[ip] = loc{d.file, it.Line}
		item(d, it, ip)
	}
}

// abs resolves a path from the config against the config file's directory.
func (d *decoder) abs(s string) string {
	if filepath.IsAbs(s) {
		return filepath.Clean(s)
	}
	return filepath.Join(d.dir, s)
}

// shown returns an absolute path as messages should show it: relative to the config directory as
// the user gave it, when it is under it.
func (d *decoder) shown(abs string) string {
	rel, err := filepath.Rel(d.dir, abs)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return abs
	}
	return filepath.Join(d.shownDir, rel)
}

// readSecret is readFile for a file that may hold a secret: one open to other users is refused
// (fileperm.CheckPrivate) before it is read.
func (d *decoder) readSecret(abs, what string) ([]byte, error) {
	if err := fileperm.CheckPrivate(abs, what); err != nil {
		return nil, err
	}
	return d.readFile(abs)
}

// readPublic is readFile for a file of public keys: readable by anyone, but one that others may
// change is refused (fileperm.CheckUnwritable).
func (d *decoder) readPublic(abs, what string) ([]byte, error) {
	if err := fileperm.CheckUnwritable(abs, what); err != nil {
		return nil, err
	}
	return d.readFile(abs)
}

// readFile reads a file named in the config; the error names the file as shown and says why,
// never what it contains.
func (d *decoder) readFile(abs string) ([]byte, error) {
	b, err := os.ReadFile(abs)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("cannot read %s: %v", d.shown(abs), err)
	}
	return b, nil
}
