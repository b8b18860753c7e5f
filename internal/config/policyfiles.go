package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"
)

// loadPolicies decodes one file per policy from policies_dir and adds every policy, inline or
// from a file, to c.Policies.
func (d *decoder) loadPolicies(c *Config) {
	defined := map[string]*Policy{}
	for _, p := range d.policies {
		defined[p.Name] = p
	}
	if c.PoliciesDir != "" {
		entries, err := os.ReadDir(c.PoliciesDir)
		if err != nil {
			d.report("policies_dir", fmt.Sprintf("cannot read policies directory %s: %v", d.shown(c.PoliciesDir), unwrapPath(err)),
				"create it, or remove policies_dir")
		}
		for _, e := range entries {
			name, ext := e.Name(), filepath.Ext(e.Name())
			if e.IsDir() || strings.HasPrefix(name, ".") || (ext != ".yaml" && ext != ".yml") {
				continue
			}
			if p := d.policyFile(filepath.Join(c.PoliciesDir, name), strings.TrimSuffix(name, ext), defined); p != nil {
				defined[p.Name] = p
				d.policies = append(d.policies, p)
			}
		}
	}
	for _, p := range d.policies {
		c.Policies[p.Name] = p
	}
}

// policyFile decodes one policy file; nil when its name is taken (a problem is recorded).
func (d *decoder) policyFile(abs, name string, defined map[string]*Policy) *Policy {
	shown := d.shown(abs)
	data, err := d.readSecret(abs, "policy file")
	if err != nil {
		d.report("policies_dir", err.Error(), "")
		return nil
	}
	mainFile := d.file
	d.file = shown
	d.files = append(d.files, shown)
	defer func() { d.file = mainFile }()

	root := d.parseYAML(data)
	nameLine := 0
	if n := d.peek(root, "name"); n != "" {
		name = n
		nameLine = keyLine(root, "name")
	}
	p := "policies." + name
	if prev, dup := defined[name]; dup {
		where := d.shown(prev.File)
		if l, ok := d.pos[p]; ok && l.line > 0 {
			where = fmt.Sprintf("%s:%d", l.file, l.line)
		}
		d.problem(shown, nameLine, p, fmt.Sprintf("policy `%s` is defined twice: in %s and in %s", name, where, shown),
			"rename one of them (a policy file's name, or its `name:` key, is the policy name)")
		return nil
	}
	d.pos[p] = loc{shown, 0}
	pol := newPolicy(name, abs)
	fs := policyFields(pol)
	fs["name"] = str(new(string)) // already applied above; accepted only in policy files
	if root != nil {
		d.mapping(root, p, fs)
	}
	return pol
}

func keyLine(n *yaml.Node, key string) int {
	n = resolve(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return 0
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i].Line
		}
	}
	return 0
}
