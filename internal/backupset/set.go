// Package backupset is the on-target format of backupd: set IDs, object keys, the manifest that
// commits a set, writing a set to several targets at once, and listing committed sets.
//
// Layout on every target (under the target's own prefix):
//
//	<policy>/<set-id>/<object name>.zst.age   sealed objects (age file of a zstd frame)
//	<policy>/<set-id>/manifest.json.sig       SSH signature of manifest.json, written before it
//	<policy>/<set-id>/manifest.json           written last; its presence is the commit
//
// A set without manifest.json does not exist for list, restore or retention; one whose
// manifest is not signed by a trusted key is listed as untrusted and used by none of them.
package backupset

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path"
	"regexp"
	"strings"
	"time"

	"github.com/backupd/backupd/internal/signing"
)

// ManifestName is the commit marker of a set.
const ManifestName = "manifest.json"

// SealedSuffix ends the key of every sealed object, telling a person which tools open it.
const SealedSuffix = ".zst.age"

// FormatVersion is bumped whenever a reader of an older version could misread a set.
const FormatVersion = 1

const idTimeLayout = "20060102T150405Z"

var idPattern = regexp.MustCompile(`^\d{8}T\d{6}Z-[0-9a-f]{4}$`)

// NewID returns a set ID that sorts by time: the UTC start time and a random suffix so that two
// hosts starting in the same second do not collide.
func NewID(start time.Time) string {
	var b [2]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return start.UTC().Format(idTimeLayout) + "-" + hex.EncodeToString(b[:])
}

// ValidID reports whether id has the shape NewID produces.
func ValidID(id string) bool { return idPattern.MatchString(id) }

// IDTime returns the start time encoded in a set ID.
func IDTime(id string) (time.Time, error) {
	if !ValidID(id) {
		return time.Time{}, fmt.Errorf("%q is not a set ID (want e.g. 20261127T030000Z-3f9a)", id)
	}
	return time.Parse(idTimeLayout, id[:len(idTimeLayout)])
}

// Prefix is the key prefix of one set.
func Prefix(policy, id string) string { return policy + "/" + id + "/" }

// ObjectKey is the full key of a sealed object named name in a set.
func ObjectKey(policy, id, name string) string { return Prefix(policy, id) + name + SealedSuffix }

// ManifestKey is the full key of a set's manifest.
func ManifestKey(policy, id string) string { return Prefix(policy, id) + ManifestName }

// LocksPrefix is where hosts coordinate for a policy: leases of scheduled jobs and the
// protection markers of sets in use. Nothing under it is part of a set.
func LocksPrefix(policy string) string { return policy + "/locks/" }

// ValidPolicyName reports whether a policy name is safe as a key segment.
func ValidPolicyName(p string) bool {
	return p != "" && !strings.ContainsAny(p, "/\\\x00") && p != "." && p != ".." && path.Clean(p) == p
}

// Object is one sealed object of a set.
type Object struct {
	Name      string `json:"name"`       // plain name, e.g. shop/orders.00001.sql; key is ObjectKey(policy, set, Name)
	Size      int64  `json:"size"`       // sealed bytes on the target
	SHA256    string `json:"sha256"`     // hex SHA-256 of the sealed bytes
	PlainSize int64  `json:"plain_size"` // bytes before compression and encryption
}

// Manifest describes a committed set. It holds no row data and no secrets: listing and
// retention read it without a private key.
type Manifest struct {
	FormatVersion int             `json:"format_version"`
	Tool          string          `json:"tool"`
	SetID         string          `json:"set_id"`
	Policy        string          `json:"policy"`
	StartedAt     time.Time       `json:"started_at"`
	FinishedAt    time.Time       `json:"finished_at"`
	Host          string          `json:"host"`        // the host that made the set
	Targets       []string        `json:"targets"`     // targets the set was sent to
	Recipients    []string        `json:"recipients"`  // public keys the objects are encrypted to
	Compression   string          `json:"compression"` // zstd level name
	Objects       []Object        `json:"objects"`
	MySQL         json.RawMessage `json:"mysql,omitempty"` // the dump's description (package dump's Result)
	Files         json.RawMessage `json:"files,omitempty"` // storage snapshots

	// Set by Committed, never stored: the trusted key whose signature committed the set, or
	// Unsigned when an unsigned set was accepted at the operator's request (AllowUnsigned).
	SignedBy signing.KeyInfo `json:"-"`
	Unsigned bool            `json:"-"`
}

// Bytes is the sealed size of the whole set.
func (m *Manifest) Bytes() int64 {
	var n int64
	for _, o := range m.Objects {
		n += o.Size
	}
	return n
}

// PlainBytes is the size of the set before compression.
func (m *Manifest) PlainBytes() int64 {
	var n int64
	for _, o := range m.Objects {
		n += o.PlainSize
	}
	return n
}

// Object returns the object named name.
func (m *Manifest) Object(name string) (Object, bool) {
	for _, o := range m.Objects {
		if o.Name == name {
			return o, true
		}
	}
	return Object{}, false
}
