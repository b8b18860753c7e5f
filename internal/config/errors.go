package config

import (
	"fmt"
	"strings"
)

// Problem is one thing wrong with a configuration, located as precisely as is known.
type Problem struct {
	File string // the file the problem is in
	Path string // key path, e.g. policies.nightly.targets[1]
	Line int    // 1-based; 0 when unknown
	Msg  string // what is wrong
	Hint string // what to do about it; may be empty
}

func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d", p.Line)
	}
	if p.Path != "" {
		fmt.Fprintf(&b, ": %s", p.Path)
	}
	fmt.Fprintf(&b, ": %s", p.Msg)
	if p.Hint != "" {
		fmt.Fprintf(&b, " (hint: %s)", p.Hint)
	}
	return b.String()
}

// ValidationError lists every problem found in a configuration, so one run shows them all.
type ValidationError struct {
	Problems []Problem
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "invalid configuration: %d problem(s):", len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  - ")
		b.WriteString(p.String())
	}
	return b.String()
}
