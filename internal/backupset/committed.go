package backupset

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/backupd/backupd/internal/signing"
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

// Trust decides whose signatures count. *signing.Verifier is one (keys.Verifier builds it from
// signing.trusted_keys); nil trusts nothing. It is passed in by every reader of sets rather than
// read from the config here, so that one definition serves hosts with different trust.
type Trust interface {
	// Verify checks that sig is a signature of exactly msg for namespace by a trusted key, with
	// the errors of signing.Verifier.Verify.
	Verify(namespace string, msg, sig []byte) (signing.KeyInfo, error)
}

// AllowUnsigned returns trust that also accepts a set with no signature at all — a set written
// before backupd signed its sets — and marks its manifest Unsigned. A badly signed set, or one
// signed by a key that is not trusted, is refused as before. Only restore, verify and drill use
// it, on the operator's explicit request (--allow-unsigned); list, retention, stale checks,
// catch-up and garbage collection never do.
func AllowUnsigned(t Trust) Trust { return unsignedOK{t} }

type unsignedOK struct{ Trust }

// UnsignedWarning is what restore, verify and drill say, loudly, about a set accepted unsigned.
const UnsignedWarning = "this set is not signed: anyone with write access to the bucket could have written it"

// SignatureKey is the key of the signature of a set's manifest, beside it.
func SignatureKey(policy, id string) string { return ManifestKey(policy, id) + signing.SignatureSuffix }

// UntrustedError is a manifest that is present on a target but does not commit its set: it
// is not signed by a trusted key, does not parse, was written by a newer format, names another
// set or policy than the key it is stored under, or is dated in the future. Such a set is never
// restored, drilled, counted as newest or deleted by retention (except an unsigned one, see
// Unsigned); it is listed with Reason.
type UntrustedError struct {
	Key    string
	Reason string
	// Parsed is the manifest as far as it parsed (nil when it did not, or when its signature
	// failed: nothing is decoded before the signature verifies): what a conservative garbage
	// collection may read of the set's references. Never restore from it.
	Parsed *Manifest
	// Unsigned: the only fault found is that the manifest has no signature (a set written
	// before signing, or planted). AllowUnsigned accepts such a set; retention may delete it.
	Unsigned bool
}

func (e *UntrustedError) Error() string        { return e.Key + " is not trusted: " + e.Reason }
func (e *UntrustedError) Is(target error) bool { return target == ErrUntrusted }

// Committed is the one definition of a committed set: it decides whether data, read from
// ManifestKey(policy, id), with sig, read from SignatureKey(policy, id) (nil when absent),
// commits that set as seen at now. First the signature must verify over the exact bytes of
// data against trust (nothing of data is decoded before); then the manifest must parse, be of a
// known format, name this set and policy, and not be dated in the future. Every reader of
// sets — list, restore, drill, verify, retention, stale checks, catch-up and storage garbage
// collection — goes through it (via ReadManifest). The error is an *UntrustedError.
func Committed(data, sig []byte, policy, id string, now time.Time, trust Trust) (*Manifest, error) {
	key := ManifestKey(policy, id)
	untrusted := func(m *Manifest, format string, args ...any) (*Manifest, error) {
		return nil, &UntrustedError{Key: key, Reason: fmt.Sprintf(format, args...), Parsed: m}
	}
	if int64(len(data)) > MaxManifestBytes {
		return untrusted(nil, "larger than %d bytes, which backupd never writes", int64(MaxManifestBytes))
	}
	signer, unsigned, err := verifyManifest(data, sig, trust)
	if err != nil {
		var ue *signing.UntrustedKeyError
		switch {
		case errors.Is(err, signing.ErrUnsigned):
			return nil, &UntrustedError{Key: key, Unsigned: true, Reason: "it is not signed (no " + ManifestName + signing.SignatureSuffix +
				"): written before backupd signed its sets, or planted by anyone with write access to the bucket; " +
				"a set you know you wrote before signing existed can be restored with --allow-unsigned"}
		case errors.As(err, &ue):
			return untrusted(nil, "%v", err)
		case errors.Is(err, signing.ErrBadSignature), errors.Is(err, signing.ErrMalformed):
			return untrusted(nil, "bad signature: %v; never restore it (the manifest or its signature was altered or copied from another set)", err)
		default:
			return untrusted(nil, "%v", err)
		}
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
		// Also a valid signature copied beside another set's copy of a manifest.
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
	m.SignedBy, m.Unsigned = signer, unsigned
	return &m, nil
}

// verifyManifest checks sig over data. unsigned is true when there is no signature and trust
// is AllowUnsigned.
func verifyManifest(data, sig []byte, trust Trust) (signer signing.KeyInfo, unsigned bool, err error) {
	allow := false
	if u, ok := trust.(unsignedOK); ok {
		allow, trust = true, u.Trust
	}
	if len(sig) == 0 {
		if allow {
			return signing.KeyInfo{}, true, nil
		}
		return signing.KeyInfo{}, false, signing.ErrUnsigned
	}
	if trust == nil {
		trust = signing.NewVerifier() // trusts no key, but still tells a bad signature from an untrusted one
	}
	k, err := trust.Verify(signing.NamespaceManifest, data, sig)
	return k, false, err
}

// ReadManifest reads the manifest of one set and its signature, and judges them with Committed
// (as of now, against trust). A missing manifest wraps targets.ErrNotFound (the set is not
// committed there); one that is present but not trusted is an *UntrustedError; anything else is
// the target's failure.
func ReadManifest(ctx context.Context, t Target, policy, id string, now time.Time, trust Trust) (*Manifest, error) {
	key := ManifestKey(policy, id)
	data, err := readLimited(ctx, t, key, MaxManifestBytes)
	if err != nil {
		return nil, err
	}
	// The signature is written before the manifest, so a committed set has it by now.
	sig, err := readLimited(ctx, t, SignatureKey(policy, id), signing.MaxSignatureSize)
	if isNotFound(err) {
		sig, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	return Committed(data, sig, policy, id, now, trust)
}

// readLimited reads at most limit+1 bytes of key: one more than any reader accepts, so that an
// oversized object is told apart without reading it whole.
func readLimited(ctx context.Context, t Target, key string, limit int64) ([]byte, error) {
	rc, err := t.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	return data, nil
}

// Untrusted is a set whose manifest is present but not trusted, and why.
type Untrusted struct {
	ID           string
	Reason       string
	LastModified time.Time // of the set's newest object, from the listing
	Parsed       *Manifest // see UntrustedError.Parsed
	Unsigned     bool      // see UntrustedError.Unsigned
}

// Scan reads the manifests of the committed-looking sets in entries (a SetKeys listing),
// newest first, and calls fn with each trusted one until fn returns false; the manifest is
// not kept, so a caller that needs only a summary holds one manifest at a time. Sets whose
// manifest is not trusted are returned; a manifest deleted since the listing is skipped;
// targets' failures are joined into the error and the scan goes on.
func Scan(ctx context.Context, t Target, policy string, entries []SetEntry, now time.Time, trust Trust, fn func(*Manifest) bool) ([]Untrusted, error) {
	var untrusted []Untrusted
	var errs []error
	for i := len(entries) - 1; i >= 0; i-- {
		e := entries[i]
		if !e.Committed {
			continue
		}
		m, err := ReadManifest(ctx, t, policy, e.ID, now, trust)
		var ue *UntrustedError
		switch {
		case errors.As(err, &ue):
			untrusted = append(untrusted, Untrusted{ID: e.ID, Reason: ue.Reason, LastModified: e.LastModified, Parsed: ue.Parsed, Unsigned: ue.Unsigned})
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
