package main

import (
	"context"
	"io"
)

// registerPending adds the commands whose issue has not landed yet. Each says so and exits 2, so
// scripts written against the documented interface fail loudly instead of doing nothing. It runs
// after every init, so a command built in its own file takes precedence over its line here.
func registerPending() {
	for _, c := range []struct{ name, summary string }{
		{"backup", "run one backup of a policy now"},
		{"restore", "restore a set (or part of it) into a database or directory"},
		{"drill", "restore the newest set into a scratch database and report"},
		{"run", "run the daemon: schedules, retention, alerts, metrics"},
		{"list", "list committed sets of a policy"},
		{"prune", "apply retention to a policy's sets"},
		{"verify", "download and check every object of a set"},
	} {
		name := c.name
		if _, done := commands[name]; done {
			continue
		}
		register(&command{name: name, summary: c.summary + " (not built yet)", run: func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
			return usageErrorf("'%s' is not built yet in this version of backupd", name)
		}})
	}
}
