package restore

import (
	"errors"

	"github.com/backupd/backupd/internal/backupset"
)

// Kinds of failure a caller (the CLI) maps to exit codes and advice. A returned error matches at
// most one of them with errors.Is; its message is unchanged by the kind.
var (
	// ErrUnreachable: no target holding the set, or the destination server, could be reached.
	// Nothing in the destination was changed. The same as backupset.ErrUnreachable, which
	// finding the set returns.
	ErrUnreachable = backupset.ErrUnreachable
	// ErrNoSet: the targets answered, but none holds the set asked for (backupset.ErrNoSet).
	ErrNoSet = backupset.ErrNoSet
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
