package storage

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
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
