// Package storage snapshots an application's storage — a local directory tree or a bucket on its
// own S3 provider — into backup sets, deduplicated across sets, and restores it.
//
// File contents are cut into content-defined chunks (github.com/restic/chunker; a file below
// 512 KiB is one chunk) and stored as blobs inside packs: a pack is a sealed object (an age file
// of a zstd stream) whose plaintext is its blobs, back to back, about 16 MiB of them. Packs live
// in a blob area that every set of the policy shares, <policy>/blobs/ on each target; a set
// stores only a small index root, files/<source>.index, which is committed with the set's
// manifest. The index itself (one JSON line per path: type, size, mode, owner, mtime, symlink
// target, SHA-256, and where each chunk is) is a stream chunked and stored like file contents,
// so an unchanged tree costs its next set almost nothing and one changed file costs about that
// file plus an index chunk. FORMAT.md describes every object and how to read each by hand.
//
// Names reveal nothing: pack IDs are random, and the dedup metadata (a sealed header beside each
// pack listing its blobs) names blobs by an HMAC of their SHA-256 under a key derived from a
// separate name key. Headers are encrypted to an age identity derived from that key, because
// the daemon holds only public backup keys and still has to read them. Losing the name key
// costs dedup, never data: restore reads only the index, which says where every byte is.
//
// The entry points are Snapshot (one source into the set being written), Describe (the
// manifest's "files" section, which lists the packs a set keeps alive), Restore (one source of
// a set to a directory or a bucket, verified, falling back between targets pack by pack), GC
// (mark and sweep of unreferenced packs, safe while a snapshot runs; see GC) and Usage.
package storage
