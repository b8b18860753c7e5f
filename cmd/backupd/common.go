package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"golang.org/x/term"

	"github.com/backupd/backupd/internal/config"
	"github.com/backupd/backupd/policies"
)

// loadConfig loads the config file, or the embedded default (policies/default.yaml, paths
// relative to the current directory) when path is empty.
func loadConfig(path string) (*config.Config, error) {
	if path != "" {
		cfg, err := config.Load(path)
		var ve *config.ValidationError
		if err != nil && !errors.As(err, &ve) {
			// An unreadable config file is the operator's to fix, like a bad one: exit 2.
			return nil, usageErrorf("%v", err)
		}
		return cfg, err
	}
	wd, err := os.Getwd()
	if err != nil {
		return nil, fmt.Errorf("find the current directory for the embedded default config: %w", err)
	}
	return config.Parse(policies.Default, "<embedded default config>", wd)
}

// pickPolicy returns the named policy, or the only one when name is empty.
func pickPolicy(cfg *config.Config, name string) (*config.Policy, error) {
	names := make([]string, 0, len(cfg.Policies))
	for n := range cfg.Policies {
		names = append(names, n)
	}
	sort.Strings(names)
	if name == "" {
		if len(names) == 1 {
			return cfg.Policies[names[0]], nil
		}
		return nil, usageErrorf("--policy is required: the config defines %d policies (%s)", len(names), strings.Join(names, ", "))
	}
	p, ok := cfg.Policies[name]
	if !ok {
		return nil, usageErrorf("no policy %q in %s; defined: %s", name, cfg.File, strings.Join(names, ", "))
	}
	return p, nil
}

// isTerminal reports whether w is an interactive terminal (progress and human logs) rather than
// a pipe or file (JSON logs).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// policyFlags are --config and --policy, which most commands take.
type policyFlags struct{ config, policy *string }

func addPolicyFlags(fs *flag.FlagSet) policyFlags {
	return policyFlags{
		config: fs.String("config", "", "config file (default: the embedded default config: the local MariaDB to ./backups)"),
		policy: fs.String("policy", "", "policy name (may be omitted when the config has one policy)"),
	}
}

// load loads the config and picks the policy the flags name.
func (f policyFlags) load() (*config.Config, *config.Policy, error) {
	cfg, err := loadConfig(*f.config)
	if err != nil {
		return nil, nil, err
	}
	p, err := pickPolicy(cfg, *f.policy)
	if err != nil {
		return nil, nil, err
	}
	return cfg, p, nil
}
