package humanize

import "strings"

// OneLine returns err with its message on a single line (errors.Join separates with newlines),
// keeping everything errors.Is and errors.As can find: for reports, log lines and tables.
func OneLine(err error) error {
	if err == nil || !strings.Contains(err.Error(), "\n") {
		return err
	}
	return &oneLine{err}
}

type oneLine struct{ err error }

func (e *oneLine) Error() string {
	lines := strings.Split(strings.TrimSpace(e.err.Error()), "\n")
	for i := range lines {
		lines[i] = strings.TrimSpace(lines[i])
	}
	return strings.Join(lines, "; ")
}
func (e *oneLine) Unwrap() error { return e.err }
