package backupset

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/backupd/backupd/internal/humanize"
)

// Kinds of failure of Find, checked with errors.Is; the message is unchanged by the kind.
var (
	// ErrNoSet: the targets answered, but none holds a committed set matching the query.
	ErrNoSet = errors.New("no committed set")
	// ErrUnreachable: no target could be read.
	ErrUnreachable = errors.New("unreachable")
)

// kindError gives err a kind without changing its message.
type kindError struct {
	kind error
	err  error
}

func (e *kindError) Error() string   { return e.err.Error() }
func (e *kindError) Unwrap() []error { return []error{e.kind, e.err} }

// Query selects a set: an exact ID, or the newest finished before a time, or (both zero) the
// newest of all.
type Query struct {
	ID     string
	Before time.Time
	Now    func() time.Time // injected clock, for Committed; time.Now when nil
	// Trust decides whose signatures commit a set (see Committed); nil trusts nothing. With
	// AllowUnsigned(trust), a signed set is still preferred: an unsigned one is chosen only
	// when it is named by ID or no signed set matches, so a planted unsigned set never wins
	// over the newest signed one.
	Trust Trust
}

// Found is a committed set and the targets that hold it, in the order they were given.
type Found struct {
	Manifest *Manifest
	Holders  []Dest
	// Warnings name targets that could not be read while others held the set, and sets newer
	// than the one found whose manifests are not trusted.
	Warnings []string
}

// Find looks for a committed set (see Committed) on every target at once. A target that
// cannot be read is only a warning while another holds the set; when none can be read the
// error is ErrUnreachable, and when they answer but none holds a committed set that matches,
// ErrNoSet. Manifests are read newest first and only until one matches.
func Find(ctx context.Context, dests []Dest, policy string, q Query) (*Found, error) {
	if q.ID != "" && !ValidID(q.ID) {
		return nil, &kindError{ErrNoSet, fmt.Errorf("%q is not a set ID (they look like 20261127T030000Z-3f9a): run 'backupd list --policy %s' to see the sets", q.ID, policy)}
	}
	now := time.Now
	if q.Now != nil {
		now = q.Now
	}
	at := now()
	type answer struct {
		m         *Manifest
		untrusted []Untrusted
		err       error
	}
	answers := make([]answer, len(dests))
	var wg sync.WaitGroup
	for i, d := range dests {
		wg.Go(func() {
			a := &answers[i]
			if q.ID != "" {
				m, err := ReadManifest(ctx, d.Target, policy, q.ID, at, q.Trust)
				var ue *UntrustedError
				switch {
				case errors.As(err, &ue):
					a.untrusted = []Untrusted{{ID: q.ID, Reason: ue.Reason}}
				case isNotFound(err):
				default:
					a.m, a.err = m, err
				}
				return
			}
			entries, err := SetKeys(ctx, d.Target, policy)
			if err != nil {
				a.err = err
				return
			}
			if !q.Before.IsZero() {
				// A set started at or after the time cannot have finished before it.
				n := 0
				for _, e := range entries {
					if t, err := IDTime(e.ID); err == nil && t.Before(q.Before) {
						entries[n] = e
						n++
					}
				}
				entries = entries[:n]
			}
			var unsigned *Manifest // the newest matching unsigned set, when allowed
			a.untrusted, a.err = Scan(ctx, d.Target, policy, entries, at, q.Trust, func(m *Manifest) bool {
				if !q.Before.IsZero() && !m.FinishedAt.Before(q.Before) {
					return true
				}
				if m.Unsigned {
					if unsigned == nil {
						unsigned = m
					}
					return true
				}
				a.m = m
				return false
			})
			if a.m == nil {
				a.m = unsigned
			}
			if a.m != nil {
				a.err = nil // an unreadable manifest does not matter once a set is found
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var best *Manifest
	var failed, notTrusted []string
	for i, a := range answers {
		for _, u := range a.untrusted {
			notTrusted = append(notTrusted, fmt.Sprintf("target %s: set %s is not trusted: %s", dests[i].Name, u.ID, u.Reason))
		}
		if a.err != nil {
			failed = append(failed, fmt.Sprintf("target %s: %v", dests[i].Name, humanize.OneLine(a.err)))
			continue
		}
		if a.m != nil && (best == nil || better(a.m, best)) {
			best = a.m
		}
	}
	if best == nil {
		var what string
		switch {
		case q.ID != "" && len(notTrusted) > 0:
			what = fmt.Sprintf("set %s of policy %s is not trusted, so it is never restored, drilled or verified", q.ID, policy)
		case q.ID != "":
			what = fmt.Sprintf("set %s is not on any target of policy %s", q.ID, policy)
		case !q.Before.IsZero():
			what = fmt.Sprintf("no set of policy %s finished before %s", policy, q.Before.UTC().Format(time.RFC3339))
		default:
			what = fmt.Sprintf("policy %s has no committed set on its targets", policy)
		}
		if len(failed) == len(dests) {
			return nil, &kindError{ErrUnreachable, fmt.Errorf("could not read any target of policy %s: %s: check the network, the endpoint and the credentials, or name a reachable target with --from",
				policy, strings.Join(failed, "; "))}
		}
		msg := fmt.Sprintf("%s: run 'backupd list --policy %s' to see the sets", what, policy)
		if len(notTrusted) > 0 {
			msg += " (" + strings.Join(notTrusted, "; ") + ")"
		}
		if len(failed) > 0 {
			msg += " (not readable: " + strings.Join(failed, "; ") + ")"
		}
		return nil, &kindError{ErrNoSet, errors.New(msg)}
	}
	found := &Found{Manifest: best, Warnings: notTrusted}
	if best.Unsigned {
		found.Warnings = append(found.Warnings, fmt.Sprintf("set %s: %s", best.SetID, UnsignedWarning))
	}
	for i, a := range answers {
		switch {
		case a.m != nil && a.m.SetID == best.SetID:
			found.Holders = append(found.Holders, dests[i])
		case a.err != nil:
			found.Warnings = append(found.Warnings, fmt.Sprintf("target %s cannot be read, restoring from the others: %v", dests[i].Name, humanize.OneLine(a.err)))
		}
	}
	return found, nil
}

// better reports whether a is preferred over b: a signed set over an unsigned one, then the
// newer.
func better(a, b *Manifest) bool {
	if a.Unsigned != b.Unsigned {
		return !a.Unsigned
	}
	return a.SetID > b.SetID
}
