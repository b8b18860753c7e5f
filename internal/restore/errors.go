package restore

import (
	"errors"
	"strings"
)

// Kinds of failure a caller (the CLI) maps to exit codes and advice. A returned error matches at
// most one of them with errors.Is; its message is unchanged by the kind.
var (
	// ErrUnreachable: no target holding the set, or the destination server, could be reached.
	// Nothing in the destination was changed.
	ErrUnreachable = errors.New("unreachable")
	// ErrNoSet: the targets answered, but none holds the set asked for.
	ErrNoSet = errors.New("no such set")
	// ErrWrongIdentity: the identities given cannot decrypt the set.
	ErrWrongIdentity = errors.New("wrong identity")
	// ErrExists: the destination already holds something the restore would create; nothing was
	// changed. --drop-existing or --as resolve it.
	ErrExists = errors.New("destination not empty")
	// ErrDestination: the destination refused the preflight (access denied, max_allowed_packet
	// too small, a read-only server); nothing was changed.
	ErrDestination = errors.New("destination not usable")
	// ErrSelection: the options ask for something the set does not have (an unknown database or
	// table, --as with several databases, users that were not backed up).
	ErrSelection = errors.New("bad selection")
	// ErrVerify: the restored data does not match the manifest; the destination keeps its
	// incomplete marker.
	ErrVerify = errors.New("verification failed")
)

// kindError gives err a kind without changing its message.
type kindError struct {
	kind error
	err  error
}

func (e *kindError) Error() string   { return e.err.Error() }
func (e *kindError) Unwrap() []error { return []error{e.kind, e.err} }

func withKind(kind, err error) error {
	if err == nil {
		return nil
	}
	return &kindError{kind: kind, err: err}
}

// OneLine returns err with its message on a single line (errors.Join separates with newlines),
// keeping everything errors.Is and errors.As can find.
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
