package storage

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"strings"

	"filippo.io/age"
	"github.com/restic/chunker"
)

// blobID is what the dedup metadata calls a blob: HMAC-SHA256 of its plaintext SHA-256 under
// a key derived from the name key, so that someone who can read pack headers (or steals them
// with the name key's derived identity) learns nothing that confirms a guessed file.
type blobID [32]byte

// keyring holds what is derived from the name key. Everything here is a function of the name
// key alone, so a host that lost it and generated a new one simply stops recognising old blobs
// (and chunks differently): it costs dedup, never data.
type keyring struct {
	blobKey []byte
	pol     chunker.Pol
	hdrID   *age.X25519Identity
	hdrRcpt *age.X25519Recipient
	mac     hash.Hash // used only by the snapshot's producer goroutine
}

// MinNameKeyLen is the shortest name key accepted. The daemon generates 32 random bytes.
const MinNameKeyLen = 16

func newKeyring(nameKey []byte) (*keyring, error) {
	if len(nameKey) < MinNameKeyLen {
		return nil, fmt.Errorf("name key is %d bytes; want at least %d random bytes (the daemon generates 32 in its state directory)", len(nameKey), MinNameKeyLen)
	}
	derive := func(label string) []byte {
		m := hmac.New(sha256.New, nameKey)
		m.Write([]byte(label))
		return m.Sum(nil)
	}
	k := &keyring{blobKey: derive("backupd/files/blob-id/v1")}
	pol, err := chunker.DerivePolynomial(&prfReader{key: derive("backupd/files/chunker-polynomial/v1")})
	if err != nil {
		return nil, fmt.Errorf("derive chunker polynomial: %w", err)
	}
	k.pol = pol
	id, err := age.ParseX25519Identity(headerIdentityString(derive("backupd/files/header-key/v1")))
	if err != nil {
		return nil, fmt.Errorf("derive header key: %w", err)
	}
	k.hdrID, k.hdrRcpt = id, id.Recipient()
	k.mac = hmac.New(sha256.New, k.blobKey)
	return k, nil
}

func (k *keyring) blobID(sum [32]byte) blobID {
	k.mac.Reset()
	k.mac.Write(sum[:])
	var id blobID
	k.mac.Sum(id[:0])
	return id
}

// HeaderIdentity returns the age identity (AGE-SECRET-KEY-1…) derived from a name key. Pack
// headers and in-progress markers are encrypted to it rather than to the backup recipients,
// because the daemon, which holds only public keys, must read them to deduplicate. Nobody
// needs them to restore; this is for reading them by hand (`age -d -i`).
func HeaderIdentity(nameKey []byte) (string, error) {
	k, err := newKeyring(nameKey)
	if err != nil {
		return "", err
	}
	return k.hdrID.String(), nil
}

func headerIdentityString(scalar []byte) string {
	return strings.ToUpper(bech32Encode("age-secret-key-", scalar))
}

// prfReader is an endless deterministic byte stream, HMAC-SHA256(key, counter), that feeds the
// chunker's polynomial search so the polynomial is a function of the name key.
type prfReader struct {
	key []byte
	ctr uint64
	buf []byte
}

func (r *prfReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(r.buf) == 0 {
			m := hmac.New(sha256.New, r.key)
			var c [8]byte
			binary.BigEndian.PutUint64(c[:], r.ctr)
			r.ctr++
			m.Write(c[:])
			r.buf = m.Sum(nil)
		}
		k := copy(p[n:], r.buf)
		r.buf = r.buf[k:]
		n += k
	}
	return n, nil
}
