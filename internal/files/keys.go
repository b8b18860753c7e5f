package files

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strings"

	"filippo.io/age"
	"github.com/restic/chunker"
)

// Key layout of the shared blob area of a policy, on every target (under the target's prefix).
// Sets live beside it under <policy>/<set-id>/; <policy>/drills/ and <policy>/locks/ belong to
// other packages.
const (
	packSuffix   = ".zst.age"     // a pack: sealed concatenation of blobs
	headerSuffix = ".hdr.zst.age" // its header: sealed list of (blob ID, offset, length)
	markerSuffix = ".zst.age"     // an in-progress marker of a running snapshot
)

func blobsPrefix(policy string) string   { return policy + "/blobs/" }
func packsPrefix(policy string) string   { return policy + "/blobs/packs/" }
func pendingPrefix(policy string) string { return policy + "/blobs/pending/" }

func packKey(policy, id string) string {
	return packsPrefix(policy) + id[:2] + "/" + id + packSuffix
}

func headerKey(policy, id string) string {
	return packsPrefix(policy) + id[:2] + "/" + id + headerSuffix
}

func markerKey(policy, setID, source string) string {
	return pendingPrefix(policy) + setID + "." + source + markerSuffix
}

// parsePackKey classifies a key under packsPrefix: a pack, a pack header, or neither.
func parsePackKey(policy, key string) (id string, header, ok bool) {
	rest, found := strings.CutPrefix(key, packsPrefix(policy))
	if !found {
		return "", false, false
	}
	dir, name, found := strings.Cut(rest, "/")
	if !found {
		return "", false, false
	}
	if n, isHdr := strings.CutSuffix(name, headerSuffix); isHdr {
		id, header = n, true
	} else if n, isPack := strings.CutSuffix(name, packSuffix); isPack {
		id = n
	} else {
		return "", false, false
	}
	if !validPackID(id) || dir != id[:2] {
		return "", false, false
	}
	return id, header, true
}

// parseMarkerKey returns the set ID and source name of an in-progress marker key.
func parseMarkerKey(policy, key string) (setID, source string, ok bool) {
	rest, found := strings.CutPrefix(key, pendingPrefix(policy))
	if !found {
		return "", "", false
	}
	rest, found = strings.CutSuffix(rest, markerSuffix)
	if !found {
		return "", "", false
	}
	setID, source, found = strings.Cut(rest, ".")
	return setID, source, found && setID != "" && source != ""
}

// Pack IDs are random: a pack's name says nothing about what it holds, and two hosts can never
// pick the same name for different contents.
func newPackID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return hex.EncodeToString(b[:])
}

func validPackID(id string) bool {
	if len(id) != 32 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

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

// bech32Encode implements BIP 173 encoding (without its 90-character limit, as age does), which
// age uses for its key strings; age has no public constructor from raw key bytes.
func bech32Encode(hrp string, data []byte) string {
	const charset = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
	values := convertBits(data)
	chk := bech32Checksum(hrp, values)
	var b strings.Builder
	b.WriteString(hrp)
	b.WriteByte('1')
	for _, v := range append(values, chk...) {
		b.WriteByte(charset[v])
	}
	return b.String()
}

func convertBits(data []byte) []byte {
	var out []byte
	acc, bits := uint32(0), uint(0)
	for _, b := range data {
		acc = acc<<8 | uint32(b)
		bits += 8
		for bits >= 5 {
			bits -= 5
			out = append(out, byte(acc>>bits)&31)
		}
	}
	if bits > 0 {
		out = append(out, byte(acc<<(5-bits))&31)
	}
	return out
}

func bech32Polymod(values []byte) uint32 {
	gen := [5]uint32{0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3}
	chk := uint32(1)
	for _, v := range values {
		top := chk >> 25
		chk = (chk&0x1ffffff)<<5 ^ uint32(v)
		for i := 0; i < 5; i++ {
			if (top>>i)&1 == 1 {
				chk ^= gen[i]
			}
		}
	}
	return chk
}

func bech32Checksum(hrp string, data []byte) []byte {
	var values []byte
	for i := 0; i < len(hrp); i++ {
		values = append(values, hrp[i]>>5)
	}
	values = append(values, 0)
	for i := 0; i < len(hrp); i++ {
		values = append(values, hrp[i]&31)
	}
	values = append(values, data...)
	values = append(values, 0, 0, 0, 0, 0, 0)
	mod := bech32Polymod(values) ^ 1
	out := make([]byte, 6)
	for i := range out {
		out[i] = byte(mod>>(5*(5-uint(i)))) & 31
	}
	return out
}

var errNoTargets = errors.New("no targets: a snapshot needs at least one target for its blobs")
