// Package dump takes consistent, parallel, verifiable logical dumps of MySQL and MariaDB
// databases, written as plain SQL objects that the stock mariadb client can load.
//
// Run reads the databases over go-sql-driver/mysql and hands every object to a Sink: one object
// per database (CREATE DATABASE), per sequence, per table (CREATE TABLE), per chunk of table
// data (multi-row INSERTs, about Options.ChunkBytes each), per view, routine, trigger and event,
// and optionally one for users and grants. The Result lists the objects in load order with
// every table's row count and checksum; it holds no row data and no secrets and is embedded in
// the backup set's manifest. FORMAT.md in this directory specifies names, load order, the text
// of each object and the checksum; restore, drills and the manual-restore documentation follow
// it.
//
// Consistency: on MariaDB >= 10.4 commits are blocked with BACKUP STAGE BLOCK_COMMIT, on MySQL
// all writes with FLUSH TABLES WITH READ LOCK, only while each of Options.Threads worker
// connections starts a consistent snapshot and the binary log position is read — typically
// well under a millisecond. Long-running statements that would make the lock wait are found in
// the processlist first; the lock is never waited for longer than Options.LockWaitTimeout, and
// no single attempt stalls writers for more than a second. Without the privilege for a global
// lock the dump falls back to one connection and one snapshot, and says so in the Result.
// MyISAM, Aria and other non-transactional tables are dumped while writes to them (only them)
// are blocked on MariaDB, and are flagged as possibly inconsistent elsewhere.
//
// Privileges: the server hides from information_schema, without an error, the triggers, events
// and routines the account may not see. Before any lock the account's grants (SHOW GRANTS, its
// enabled roles and PUBLIC included) are checked for every database dumped, and the dump fails
// naming the database, the object kind and the grant to add: TRIGGER and EVENT on the database
// (or globally), and SELECT on mysql.proc (MariaDB) or SHOW_ROUTINE (MySQL 8, untested). The
// reading is conservative: a grant it does not understand (a table-level TRIGGER, for one)
// counts as missing.
//
// Data: tables with an integer key are split into key ranges by planChunks, a pure function of
// MIN/MAX (read inside the snapshot) and table statistics; the ranges are dumped in parallel,
// largest first. Rows are read with the text protocol straight from the driver and encoded into
// literals that load back bit for bit (FLOAT and DOUBLE included); memory is bounded by the
// workers' statement buffers, never by a table's size.
//
// Verification: Checksum recomputes a table's row count and checksum on any server with the
// same column list, session and encoding the dump used, so a restored table can be proven equal
// to the dumped one.
package dump
