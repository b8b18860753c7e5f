package config

import (
	"fmt"

	"github.com/backupd/backupd/internal/backupset"
	"github.com/backupd/backupd/internal/targets"
)

// OpenTargets opens the targets policy p writes to, in the policy's order: what every job,
// drill and command of a policy reads and writes through.
func (c *Config) OpenTargets(p *Policy, opts targets.Options) ([]backupset.Dest, error) {
	var dests []backupset.Dest
	for _, name := range p.Targets {
		tc, ok := c.Targets[name]
		if !ok {
			return nil, fmt.Errorf("policy %s names target %q, which is not defined", p.Name, name)
		}
		t, err := targets.Open(name, tc.Spec(), opts)
		if err != nil {
			return nil, fmt.Errorf("open target %s: %w", name, err)
		}
		dests = append(dests, backupset.Dest{Name: name, Target: t})
	}
	return dests, nil
}
