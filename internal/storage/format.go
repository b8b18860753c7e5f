package storage

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/restic/chunker"
)

// Entry types in the index.
const (
	TypeFile    = "file"
	TypeDir     = "dir"
	TypeSymlink = "symlink"
	// TypeSkipped records a file the snapshot saw but could not store consistently (it kept
	// changing while being read). Restore reports it and creates nothing.
	TypeSkipped = "skipped"
)

// Entry is one line of a source's index: a JSON object per path, in walk order.
type Entry struct {
	Path   string     `json:"path"`             // relative, '/'-separated
	Type   string     `json:"type"`             // file, dir, symlink, skipped
	Mode   uint32     `json:"mode,omitempty"`   // unix permission bits incl. setuid/setgid/sticky (07777)
	MTime  int64      `json:"mtime,omitempty"`  // unix nanoseconds
	UID    int        `json:"uid"`              // -1 when the source has no owners (buckets)
	GID    int        `json:"gid"`              // -1 likewise
	Size   int64      `json:"size,omitempty"`   // bytes, files only
	SHA256 string     `json:"sha256,omitempty"` // hex SHA-256 of the whole file
	Link   string     `json:"link,omitempty"`   // symlink target, as stored on disk
	Chunks []ChunkRef `json:"chunks,omitempty"` // the file's bytes, in order
	Reason string     `json:"reason,omitempty"` // why a path was skipped
}

// ChunkRef says where one piece of a stream is: a byte range of the plaintext of a pack.
type ChunkRef struct {
	Size int64 `json:"size"`
	// SHA256 is the chunk's hex SHA-256. Omitted when the file has a single chunk (then it is
	// the file's own) and for index chunks (the whole index stream has one).
	SHA256 string `json:"sha256,omitempty"`
	// At lists copies, any of which will do. Usually one; more when targets diverged and a
	// blob was stored again for the targets that lacked it.
	At []Loc `json:"at"`
}

// Loc is a byte offset in the plaintext of a pack.
type Loc struct {
	Pack   string `json:"pack"`
	Offset int64  `json:"offset"`
}

// maxBlobSize is the largest chunk this format stores (the chunker's maximum): a size above
// it in an index is refused before anything is allocated for it.
const maxBlobSize = chunker.MaxSize

// IndexFormat names the index root object's format.
const IndexFormat = "backupd-files-index"

// IndexVersion is bumped whenever an older reader could misread an index. Version 2 added
// pack_sha256; version 1 indexes still restore, without the pack check.
const IndexVersion = 2

// indexRoot is the set object files/<source>.index: a small sealed JSON document that says
// where the index stream is. The stream itself is stored like file contents, in chunks inside
// packs, so that an unchanged tree's index costs nothing in the next set and one changed file
// costs about one index chunk.
type indexRoot struct {
	Format   string     `json:"format"`
	Version  int        `json:"version"`
	Source   string     `json:"source"`
	Kind     string     `json:"kind"`   // dir or s3
	Origin   string     `json:"origin"` // path or endpoint/bucket/prefix; never credentials
	Entries  int64      `json:"entries"`
	Files    int64      `json:"files"`
	Dirs     int64      `json:"dirs"`
	Symlinks int64      `json:"symlinks"`
	Skipped  int64      `json:"skipped"`
	Bytes    int64      `json:"bytes"`        // sum of file sizes
	Size     int64      `json:"index_size"`   // bytes of the index stream
	SHA256   string     `json:"index_sha256"` // hex SHA-256 of the index stream
	Chunks   []ChunkRef `json:"index_chunks"` // the index stream, in order
	// PackSums maps each pack the index references to the hex SHA-256 of its sealed bytes
	// (version 2 on). The manifest records the root's own SHA-256, so these are covered by
	// whatever vouches for the manifest; a restore checks a pack against them before
	// decrypting it, and falls back to the next target on a mismatch. A pack stored by a
	// backupd that did not record sums yet has none.
	PackSums map[string]string `json:"pack_sha256,omitempty"`
}

// IndexObjectName is the set object holding a source's index root.
func IndexObjectName(source string) string { return "files/" + source + ".index" }

// headerFormat names a pack header's format.
const headerFormat = "backupd-pack-header"

// packHeader is the sealed sidecar of a pack. It is encrypted to the identity derived from
// the name key, so the daemon (which holds only public backup keys) can deduplicate.
type packHeader struct {
	Format  string      `json:"format"`
	Version int         `json:"version"`
	Pack    string      `json:"pack"`
	Kind    string      `json:"kind"` // data or index
	Size    int64       `json:"size"` // plaintext bytes
	Blobs   []headerRec `json:"blobs"`
}

type headerRec struct {
	ID     string `json:"id"` // hex blob ID (HMAC of the blob's SHA-256)
	Offset int64  `json:"offset"`
	Length int64  `json:"length"`
}

// DescriptionVersion is the version of the manifest's "files" section.
const DescriptionVersion = 1

// Description is the "files" section of a set's manifest: plaintext, no secrets, and all that
// garbage collection needs to know which packs a set keeps alive.
type Description struct {
	Version int             `json:"version"`
	Sources []SourceSummary `json:"sources"`
}

// SourceSummary describes one source's snapshot in the manifest.
type SourceSummary struct {
	Name     string `json:"name"`
	Kind     string `json:"kind"`
	Index    string `json:"index"` // set object name of the index root
	Entries  int64  `json:"entries"`
	Files    int64  `json:"files"`
	Dirs     int64  `json:"dirs"`
	Symlinks int64  `json:"symlinks"`
	Skipped  int64  `json:"skipped"`
	Bytes    int64  `json:"bytes"`     // sum of file sizes in the tree
	NewBytes int64  `json:"new_bytes"` // plaintext bytes this set stored anew
	// Packs lists every pack the set references, sorted. Pack IDs are random and reveal
	// nothing about the content.
	Packs []string `json:"packs"`
	// PackSums holds the sealed SHA-256 of the packs whose sum is known, so that the next
	// snapshot (which cannot decrypt index roots) can record them again when it reuses a pack.
	// The authoritative copy for restores is the index root's.
	PackSums map[string]string `json:"pack_sha256,omitempty"`
}

// Describe builds the manifest's "files" section from the snapshots of one set.
func Describe(results ...*SnapshotResult) (json.RawMessage, error) {
	d := Description{Version: DescriptionVersion}
	seen := map[string]bool{}
	for _, r := range results {
		if r == nil {
			continue
		}
		if seen[r.Source] {
			return nil, fmt.Errorf("storage source %s appears twice in one set", r.Source)
		}
		seen[r.Source] = true
		d.Sources = append(d.Sources, r.summary())
	}
	return json.Marshal(d)
}

// ParseDescription reads a manifest's "files" section; an empty section is no sources.
func ParseDescription(raw json.RawMessage) (*Description, error) {
	d := &Description{}
	if len(raw) == 0 || string(raw) == "null" {
		return d, nil
	}
	if err := json.Unmarshal(raw, d); err != nil {
		return nil, fmt.Errorf("parse the manifest's files section: %w", err)
	}
	if d.Version > DescriptionVersion {
		return nil, fmt.Errorf("the manifest's files section has version %d; this backupd reads up to %d: upgrade backupd", d.Version, DescriptionVersion)
	}
	for _, s := range d.Sources {
		for _, p := range s.Packs {
			if !validPackID(p) {
				return nil, fmt.Errorf("the manifest's files section names pack %q, which is not a pack ID", p)
			}
		}
	}
	return d, nil
}

// Source returns the summary of the named source.
func (d *Description) Source(name string) (SourceSummary, bool) {
	for _, s := range d.Sources {
		if s.Name == name {
			return s, true
		}
	}
	return SourceSummary{}, false
}

// unixMode converts Go's mode bits to the unix permission bits stored in the index.
func unixMode(m fs.FileMode) uint32 {
	u := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		u |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		u |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		u |= 0o1000
	}
	return u
}

func goMode(u uint32) fs.FileMode {
	m := fs.FileMode(u & 0o777)
	if u&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if u&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if u&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m
}

func parseSum(s string) ([32]byte, error) {
	var sum [32]byte
	if len(s) != 64 {
		return sum, fmt.Errorf("SHA-256 %q is not 64 hex digits", s)
	}
	if _, err := hex.Decode(sum[:], []byte(s)); err != nil {
		return sum, fmt.Errorf("SHA-256 %q: %w", s, err)
	}
	return sum, nil
}

// checkEntry validates one entry of an index as read back from a target. It is the line
// between a possibly hostile index and the filesystem; the structural checks that need the
// whole index (duplicates, entries below symlinks or files) are in checkTree.
func checkEntry(e *Entry) error {
	if len(e.Path) > maxPathBytes || len(e.Link) > maxPathBytes {
		return fmt.Errorf("path or symlink target is longer than %d bytes", maxPathBytes)
	}
	if len(e.Reason) > maxPathBytes {
		return fmt.Errorf("skip reason is longer than %d bytes", maxPathBytes)
	}
	if err := checkRelPath(e.Path); err != nil {
		return err
	}
	if e.Mode&^0o7777 != 0 {
		return fmt.Errorf("mode %o has bits beyond 07777", e.Mode)
	}
	switch e.Type {
	case TypeDir, TypeSkipped:
	case TypeSymlink:
		if e.Link == "" || strings.IndexByte(e.Link, 0) >= 0 {
			return errors.New("symlink target is empty or contains a NUL byte")
		}
	case TypeFile:
		if _, err := parseSum(e.SHA256); err != nil {
			return err
		}
		if e.Size < 0 {
			return fmt.Errorf("size %d is negative", e.Size)
		}
		var total int64
		for i, c := range e.Chunks {
			if c.Size <= 0 || c.Size > maxBlobSize {
				return fmt.Errorf("chunk %d has size %d; chunks are 1 to %d bytes", i, c.Size, maxBlobSize)
			}
			if len(e.Chunks) > 1 {
				if _, err := parseSum(c.SHA256); err != nil {
					return fmt.Errorf("chunk %d: %w", i, err)
				}
			}
			if err := checkLocs(c.At); err != nil {
				return fmt.Errorf("chunk %d: %w", i, err)
			}
			total += c.Size
		}
		if total != e.Size {
			return fmt.Errorf("chunks hold %d bytes, size says %d", total, e.Size)
		}
	default:
		return fmt.Errorf("unknown type %q", e.Type)
	}
	return nil
}

func checkLocs(at []Loc) error {
	if len(at) == 0 {
		return errors.New("no location")
	}
	for _, l := range at {
		if !validPackID(l.Pack) || l.Offset < 0 || l.Offset > maxPackPlain {
			return fmt.Errorf("location %s@%d is malformed", l.Pack, l.Offset)
		}
	}
	return nil
}

// checkTree refuses an index whose entries could make a restore write through a symlink or
// a file it created, or write one path twice.
func checkTree(entries []*Entry) error {
	byPath := make(map[string]*Entry, len(entries))
	for _, e := range entries {
		if byPath[e.Path] != nil {
			return fmt.Errorf("index entry %q: appears twice", e.Path)
		}
		byPath[e.Path] = e
	}
	for _, e := range entries {
		for p := parentOf(e.Path); p != ""; p = parentOf(p) {
			if a := byPath[p]; a != nil && a.Type != TypeDir {
				return fmt.Errorf("index entry %q: lies below %q, which is a %s, not a directory", e.Path, p, a.Type)
			}
		}
	}
	return nil
}

func parentOf(p string) string {
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return ""
	}
	return p[:i]
}
