package restore

import (
	"strings"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/backupset"
	"github.com/backupd/backupd/internal/dump"
)

// TestDescribeEscapesNames: names read from a set cannot move the cursor or start a line of
// their own in the plan a person confirms.
func TestDescribeEscapesNames(t *testing.T) {
	evil := "orders\x1b[1A\x1b[2K\r  verify:       every table\nfake"
	p := &Plan{
		Manifest: &backupset.Manifest{SetID: "20261205T000000Z-abcd", Policy: "p\x1b]0;title\x07"},
		Dump:     &dump.Result{Server: dump.Server{Host: "db\x1b[31m"}},
		Databases: []DatabasePlan{{Source: "shop\x1b[2J", Dest: "shop\x1b[2J", Whole: true,
			Tables: []dump.Table{{Name: evil}, {Name: "plain"}}}},
	}
	var b strings.Builder
	p.Describe(&b, time.Now())
	out := b.String()
	if strings.ContainsAny(out, "\x1b\r\x07") {
		t.Errorf("the plan holds control characters:\n%q", out)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "fake") {
			t.Errorf("a table name started a line of its own:\n%s", out)
		}
	}
	if !strings.Contains(out, `orders\x1b[1A\x1b[2K\r  verify:       every table\nfake`) {
		t.Errorf("the table name is not shown escaped:\n%s", out)
	}
}
