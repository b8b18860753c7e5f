package backupset

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// MaxManifestBytes caps what is read of a manifest. As written (indented JSON) a manifest
// takes about 200 bytes per object (name, sizes, SHA-256), 200 more per dumped chunk and 150
// per table in its database part, and 78 per storage pack the set references (packs hold
// 16 MiB): a set of 20 000 tables dumped in 100 000 chunks plus 8 TiB of deduplicated storage
// (500 000 packs) needs about 85 MB. The cap leaves room above that; the writer refuses to
// commit a larger manifest, so no set backupd wrote is unreadable because of it, and a planted
// object cannot make a reader allocate without bound.
const MaxManifestBytes = 128 << 20

// ClockSkew is how far in the future a set may be dated and still count: the clocks of the
// host that wrote it and the host that reads it may differ this much.
const ClockSkew = 10 * time.Minute

// ErrUntrusted matches an UntrustedError.
var ErrUntrusted = errors.New("untrusted set")

// UntrustedError is a manifest that is present on a target but does not commit its set: it
// does not parse, was written by a newer format, names another set or policy than the key it
// is stored under, or is dated in the future. Such a set is never restored, drilled, counted
// as newest or deleted by retention; it is listed with Reason.
type UntrustedError struct {
	Key    string
	Reason string
	// Parsed is the manifest as far as it parsed (nil when it did not): what a conservative
	// garbage collection may read of the set's references. Never restore from it.
	Parsed *Manifest
}

func (e *UntrustedError) Error() string        { return e.Key + " is not trusted: " + e.Reason }
func (e *UntrustedError) Is(target error) bool { return target == ErrUntrusted }

// Committed is the one definition of a committed set: it decides whether data, read from
// ManifestKey(policy, id), commits that set as seen at now. Every reader of sets — list,
// restore, drill, verify, retention, stale checks, catch-up and storage garbage collection —
// goes through it (via ReadManifest). The error is an *UntrustedError.
func Committed(data []byte, policy, id string, now time.Time) (*Manifest, error) {
	key := ManifestKey(policy, id)
	untrusted := func(m *Manifest, format string, args ...any) (*Manifest, error) {
		return nil, &UntrustedError{Key: key, Reason: fmt.Sprintf(format, args...), Parsed: m}
	}
	if int64(len(data)) > MaxManifestBytes {
		return untrusted(nil, "larger than %d bytes, which backupd never writes", int64(MaxManifestBytes))
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return untrusted(nil, "it does not parse: %v", err)
	}
	switch {
	case m.FormatVersion < 1:
		return untrusted(&m, "it has no format version")
	case m.FormatVersion > FormatVersion:
		return untrusted(&m, "it has format version %d; this backupd reads up to %d: upgrade backupd", m.FormatVersion, FormatVersion)
	case m.SetID != id || m.Policy != policy:
		return untrusted(&m, "it describes set %q of policy %q, not the set it is stored as", m.SetID, m.Policy)
	}
	limit := now.Add(ClockSkew)
	idTime, err := IDTime(id)
	if err != nil {
		return untrusted(&m, "%v", err)
	}
	for _, d := range []struct {
		what string
		t    time.Time
	}{{"its set ID", idTime}, {"its start", m.StartedAt}, {"its finish", m.FinishedAt}} {
		if d.t.After(limit) {
			return untrusted(&m, "%s is dated %s, in the future (now %s): a set from a host whose clock is wrong, or planted",
				d.what, d.t.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
		}
	}
	// Signed sets: the check of the manifest's signature against the trusted keys belongs
	// here, as the last condition, so that every reader gets it at once.
	return &m, nil
}

// ReadManifest reads the manifest of one set and judges it with Committed (as of now). A
// missing manifest wraps targets.ErrNotFound (the set is not committed there); one that is
// present but not trusted is an *UntrustedError; anything else is the target's failure.
func ReadManifest(ctx context.Context, t Target, policy, id string, now time.Time) (*Manifest, error) {
	key := ManifestKey(policy, id)
	rc, err := t.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, MaxManifestBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	return Committed(data, policy, id, now)
}

// Untrusted is a set whose manifest is present but not trusted, and why.
type Untrusted struct {
	ID           string
	Reason       string
	LastModified time.Time // of the set's newest object, from the listing
	Parsed       *Manifest // see UntrustedError.Parsed
}

// Scan reads the manifests of the committed-looking sets in entries (a SetKeys listing),
// newest first, and calls fn with each trusted one until fn returns false; the manifest is
// not kept, so a caller that needs only a summary holds one manifest at a time. Sets whose
// manifest is not trusted are returned; a manifest deleted since the listing is skipped;
// targets' failures are joined into the error and the scan goes on.
func Scan(ctx context.Context, t Target, policy string, entries []SetEntry, now time.Time, fn func(*Manifest) bool) ([]Untrusted, error) {
	var untrusted []Untrusted
	var errs []error
	for i := len(entries) - 1; i >= 0; i-- {
		e := entries[i]
		if !e.Committed {
			continue
		}
		m, err := ReadManifest(ctx, t, policy, e.ID, now)
		var ue *UntrustedError
		switch {
		case errors.As(err, &ue):
			untrusted = append(untrusted, Untrusted{ID: e.ID, Reason: ue.Reason, LastModified: e.LastModified, Parsed: ue.Parsed})
			continue
		case isNotFound(err):
			continue
		case err != nil:
			errs = append(errs, err)
			if ctx.Err() != nil {
				return untrusted, errors.Join(errs...)
			}
			continue
		}
		if !fn(m) {
			break
		}
	}
	return untrusted, errors.Join(errs...)
}
