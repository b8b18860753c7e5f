// Package restore brings the databases of a set back into a MySQL/MariaDB server, fast and
// verified, and Verify proves every object of a set intact without a database.
//
// It restores databases only: a set's storage sources (directory trees and buckets) are restored
// by package storage (storage.Restore), which reads its own index and packs.
//
// A restore is prepared first (Prepare): the set is found on the targets, the selection
// resolved (databases, --as, tables), and the destination checked — reachable, a large enough
// max_allowed_packet, nothing in the way unless DropExisting — and the identity proven by
// decrypting one object. Nothing is changed until Execute, which loads the dump's objects in
// FORMAT.md's order: every database's schema objects one at a time, then the data objects with
// Threads connections in parallel (each table's secondary indexes built and its checksum
// compared with the manifest as soon as its last object is in), then routines, views, triggers
// and events, then users. Each destination database carries MarkerTable from its creation until
// the end, so a failed or interrupted restore is never mistaken for a good copy.
//
// Errors carry a kind (ErrUnreachable, ErrNoSet, ErrWrongIdentity, ErrExists, ErrDestination,
// ErrSelection, ErrVerify) for the CLI's exit codes, and never a password.
package restore
