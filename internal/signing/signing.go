// Package signing signs what a backup host writes to its targets and verifies it on every host
// that reads it back, so that objects planted by anyone who can merely write to a bucket are
// never taken for the host's own.
//
// Keys are Ed25519 in OpenSSH formats: the private key in an OpenSSH PEM file (`ssh-keygen -y -f`
// prints its public key) and trusted public keys as `ssh-ed25519 AAAA… comment` lines.
// Signatures use the SSH signature format (SSHSIG), so an operator can check one by hand with
// `ssh-keygen -Y verify` (docs/verify-signatures.md). Each kind of object has its own namespace
// (Namespace* constants); the namespace is part of the signed data, so a signature of one kind
// never verifies as another.
//
// A signature covers the exact bytes stored: callers verify before decoding anything.
package signing

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/ssh"
)

// Namespaces, one per kind of signed object. They are part of the public format: changing one
// makes every existing signature of that kind fail.
const (
	NamespaceManifest    = "backupd-manifest"
	NamespaceIndex       = "backupd-index"
	NamespaceClaim       = "backupd-claim"
	NamespaceDrillReport = "backupd-drill-report"
	NamespacePause       = "backupd-pause"
)

// SignatureSuffix names a signature object beside the object it signs
// (manifest.json → manifest.json.sig), as `ssh-keygen -Y sign` names its output.
const SignatureSuffix = ".sig"

// Principal is the name allowed_signers files use for backupd's keys in the by-hand
// verification (`ssh-keygen -Y verify -I backupd`). It is not part of what is signed.
const Principal = "backupd"

// Verification errors, checked with errors.Is. An *UntrustedKeyError is ErrUntrustedKey.
var (
	// ErrUnsigned: there is no signature. Callers whose signature object does not exist return
	// (or wrap) it too, so "unsigned" is one condition wherever it is found.
	ErrUnsigned = errors.New("not signed")
	// ErrMalformed: the bytes are not an SSH signature backupd accepts.
	ErrMalformed = errors.New("malformed signature")
	// ErrBadSignature: a well-formed signature that does not match these bytes, or was made for
	// another kind of object (namespace).
	ErrBadSignature = errors.New("signature does not match")
	// ErrUntrustedKey: a valid signature by a key that is not trusted.
	ErrUntrustedKey = errors.New("signed by a key that is not trusted")
)

// UntrustedKeyError is a valid signature by a key missing from signing.trusted_keys. It carries
// what an operator needs to trust the key — after checking that it is really one of theirs.
type UntrustedKeyError struct {
	Fingerprint   string // SHA256:…
	AuthorizedKey string // the `ssh-ed25519 AAAA…` line to add to signing.trusted_keys
}

func (e *UntrustedKeyError) Error() string {
	return fmt.Sprintf("%v: %s is not in signing.trusted_keys; if it is the key of one of your backup hosts "+
		"(`backupd signing-key` on that host prints it), add this line to signing.trusted_keys: %s",
		ErrUntrustedKey, e.Fingerprint, e.AuthorizedKey)
}

// Is makes errors.Is(err, ErrUntrustedKey) true.
func (e *UntrustedKeyError) Is(target error) bool { return target == ErrUntrustedKey }

// KeyInfo describes a public key.
type KeyInfo struct {
	Key           ssh.PublicKey
	Fingerprint   string // SHA256:…, as ssh-keygen -l prints it
	Comment       string // from the trusted_keys line or the key file; may be empty
	AuthorizedKey string // "ssh-ed25519 AAAA… comment", one line
}

func newKeyInfo(key ssh.PublicKey, comment string) KeyInfo {
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key)))
	if comment != "" {
		line += " " + comment
	}
	return KeyInfo{Key: key, Fingerprint: ssh.FingerprintSHA256(key), Comment: comment, AuthorizedKey: line}
}

// String is the fingerprint and comment, for logs.
func (k KeyInfo) String() string {
	if k.Comment == "" {
		return k.Fingerprint
	}
	return k.Fingerprint + " (" + k.Comment + ")"
}

// ParseTrustedKey parses one `ssh-ed25519 AAAA… [comment]` line (authorized_keys format,
// without options). Only Ed25519 keys are accepted: backupd signs with nothing else.
func ParseTrustedKey(line string) (KeyInfo, error) {
	line = strings.TrimSpace(line)
	if line == "" {
		return KeyInfo{}, errors.New("empty key")
	}
	key, comment, options, rest, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		return KeyInfo{}, fmt.Errorf("not an SSH public key line (want `ssh-ed25519 AAAA… comment`): %v", err)
	}
	if len(options) > 0 {
		return KeyInfo{}, fmt.Errorf("authorized_keys options (%s) are not allowed: give only `ssh-ed25519 AAAA… comment`", strings.Join(options, ","))
	}
	if len(strings.TrimSpace(string(rest))) > 0 {
		return KeyInfo{}, errors.New("more than one key on the line: give one key per entry")
	}
	if key.Type() != ssh.KeyAlgoED25519 {
		return KeyInfo{}, fmt.Errorf("a %s key: backupd signs only with ssh-ed25519 keys", key.Type())
	}
	return newKeyInfo(key, comment), nil
}

// Signer signs with one Ed25519 private key.
type Signer struct {
	priv ed25519.PrivateKey
	info KeyInfo
}

// NewSigner wraps an Ed25519 private key; comment names it in its public key line.
func NewSigner(priv ed25519.PrivateKey, comment string) (*Signer, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("ed25519 private key of %d bytes, want %d", len(priv), ed25519.PrivateKeySize)
	}
	pub, err := ssh.NewPublicKey(priv.Public())
	if err != nil {
		return nil, err
	}
	return &Signer{priv: priv, info: newKeyInfo(pub, comment)}, nil
}

// Public describes the signer's public key; its AuthorizedKey is the line other hosts put in
// signing.trusted_keys.
func (s *Signer) Public() KeyInfo { return s.info }

// Sign returns an armored SSH signature of msg for namespace, the bytes `ssh-keygen -Y sign`
// would write to msg's .sig file.
func (s *Signer) Sign(namespace string, msg []byte) ([]byte, error) {
	if namespace == "" {
		return nil, errors.New("sign: empty namespace")
	}
	data, err := signedData(namespace, hashSHA512, msg)
	if err != nil {
		return nil, err
	}
	sig, err := ssh.NewSignerFromKey(s.priv)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	ssig, err := sig.Sign(rand.Reader, data)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	return armor(marshalBlob(s.info.Key, namespace, hashSHA512, ssig)), nil
}

// Verifier checks signatures against a set of trusted public keys.
type Verifier struct {
	trusted map[string]KeyInfo // by the key's wire encoding
	keys    []KeyInfo          // in the order given
}

// NewVerifier trusts keys. With none, every valid signature is ErrUntrustedKey.
func NewVerifier(keys ...KeyInfo) *Verifier {
	v := &Verifier{trusted: map[string]KeyInfo{}}
	for _, k := range keys {
		w := string(k.Key.Marshal())
		if _, dup := v.trusted[w]; dup {
			continue
		}
		v.trusted[w] = k
		v.keys = append(v.keys, k)
	}
	return v
}

// Keys returns the trusted keys in the order given.
func (v *Verifier) Keys() []KeyInfo { return append([]KeyInfo(nil), v.keys...) }

// Verify checks that sig is a signature of exactly msg for namespace by a trusted key, and
// returns that key. Errors: ErrUnsigned (sig is empty), ErrMalformed, ErrBadSignature (also for
// a signature made for another namespace), *UntrustedKeyError (valid, but by a key not trusted).
// It decodes at most MaxSignatureSize bytes of sig and never panics on any input.
func (v *Verifier) Verify(namespace string, msg, sig []byte) (KeyInfo, error) {
	if len(sig) == 0 {
		return KeyInfo{}, ErrUnsigned
	}
	s, err := parseSignature(sig)
	if err != nil {
		return KeyInfo{}, err
	}
	if s.namespace != namespace {
		return KeyInfo{}, fmt.Errorf("%w: made for namespace %q, not %q (a signature of another kind of object)",
			ErrBadSignature, sanitize(s.namespace), namespace)
	}
	data, err := signedData(namespace, s.hashAlg, msg)
	if err != nil {
		return KeyInfo{}, err
	}
	// The signature is checked against the key it names before trust is decided, so
	// "untrusted key" is only ever said of a key that really signed these bytes.
	if err := s.publicKey.Verify(data, s.signature); err != nil {
		return KeyInfo{}, fmt.Errorf("%w: the bytes were changed after signing, or the signature belongs to other bytes (key %s)",
			ErrBadSignature, ssh.FingerprintSHA256(s.publicKey))
	}
	k, ok := v.trusted[string(s.publicKey.Marshal())]
	if !ok {
		info := newKeyInfo(s.publicKey, "")
		return KeyInfo{}, &UntrustedKeyError{Fingerprint: info.Fingerprint, AuthorizedKey: info.AuthorizedKey}
	}
	return k, nil
}

// AllowedSignersLine is k as a line of an OpenSSH allowed_signers file for the by-hand check
// (`ssh-keygen -Y verify -f allowed_signers -I backupd -n NAMESPACE`): principal backupd,
// accepted for backupd's namespaces only.
func AllowedSignersLine(k KeyInfo) string {
	return Principal + ` namespaces="backupd-*" ` + k.AuthorizedKey
}
