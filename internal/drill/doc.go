// Package drill runs restoration drills: it restores a committed set into a scratch database
// server, proves every table equal to the backup (row count and the dump's checksum, through
// package restore), runs the policy's SQL checks, restores the storage snapshots into a
// temporary directory with every file hash verified (package storage), measures the recovery
// time (RTO) and the age of the data (RPO), and reports — as text, HTML and JSON, stored on the
// policy's targets under <policy>/drills/ so the history survives the host, and mailed to the
// drill's notify list.
//
// The scratch is either a throwaway server started from the local mariadbd or mysqld
// (embedded; its data directory is removed afterwards) or an existing server where the drill
// creates databases under unique names (drill_<policy>_<set>_<random>_<db>) and drops them
// afterwards, never touching anything it did not create. Everything a drill creates is removed
// on success, on failure and on cancellation (SIGINT/SIGTERM cancel the context Run gets).
//
// Run is the entry point; History reads past drills from the targets, and NextTarget decides
// which target a rotating drill reads next.
package drill
