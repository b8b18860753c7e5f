package dump

import "time"

// FormatVersion is the version of the object layout and of the checksum definition described in
// FORMAT.md. A reader refuses a version it does not know.
const FormatVersion = 1

// Consistency modes.
const (
	ModeBackupStage       = "backup_stage"       // MariaDB >= 10.4: BACKUP STAGE, N snapshots
	ModeFTWRL             = "ftwrl"              // MySQL, older MariaDB: FLUSH TABLES WITH READ LOCK, N snapshots
	ModeSingleTransaction = "single_transaction" // no privilege for a global lock: one snapshot
)

// Table types.
const (
	TypeTable    = "table"
	TypeView     = "view"
	TypeSequence = "sequence"
)

// Load phases, in load order. Objects of the schema and post phases are loaded one at a time
// in the listed order; data objects in any order and in parallel.
const (
	PhaseSchema = "schema"
	PhaseData   = "data"
	PhasePost   = "post"
	PhaseUsers  = "users"
)

// Object kinds.
const (
	KindDatabase  = "database"
	KindSequence  = "sequence"
	KindTable     = "table"
	KindData      = "data"
	KindProcedure = "procedure"
	KindFunction  = "function"
	KindView      = "view"
	KindTrigger   = "trigger"
	KindEvent     = "event"
	KindUsers     = "users"
)

// Result describes a finished dump. It holds no row data and no secrets; the backup job embeds
// it in manifest.json, and restore and drills follow it.
type Result struct {
	FormatVersion int         `json:"format_version"`
	Server        Server      `json:"server"`
	Consistency   Consistency `json:"consistency"`
	// Binlog is the binary log position of the snapshot; nil when the binary log is off.
	Binlog     *Binlog   `json:"binlog,omitempty"`
	StartedAt  time.Time `json:"started_at"`
	SnapshotAt time.Time `json:"snapshot_at"` // the point in time the data is from (RPO)
	FinishedAt time.Time `json:"finished_at"`
	// Databases in load order.
	Databases []Database `json:"databases"`
	// Users is the users, roles and grants object (IncludeUsers), loaded last.
	Users    *Object  `json:"users,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
	Rows     int64    `json:"rows"`  // rows in all data objects
	Bytes    int64    `json:"bytes"` // plain SQL bytes of all objects
	// MaxStatementBytes is the longest statement written; a server loading the dump needs a
	// max_allowed_packet above it.
	MaxStatementBytes int64 `json:"max_statement_bytes"`
}

// Server identifies the source server.
type Server struct {
	Flavor  string `json:"flavor"` // "mariadb" or "mysql"
	Version string `json:"version"`
	Host    string `json:"host"` // @@hostname
}

// Consistency says how the point in time was obtained.
type Consistency struct {
	Mode string `json:"mode"` // backup_stage, ftwrl or single_transaction
	// LockHeldMS is how long commits (ftwrl: all writes) were blocked, in milliseconds.
	LockHeldMS float64 `json:"lock_held_ms"`
	// NonTransactionalWritesBlockedMS is how long writes to non-transactional tables were blocked
	// (backup_stage only: they are dumped during BACKUP STAGE FLUSH).
	NonTransactionalWritesBlockedMS float64 `json:"non_transactional_writes_blocked_ms,omitempty"`
	// NonTransactionalConsistent is false when non-transactional tables were read outside the
	// snapshot and may not match the rest of the dump (true when there are none).
	NonTransactionalConsistent bool `json:"non_transactional_consistent"`
}

// Binlog is a binary log position.
type Binlog struct {
	File     string `json:"file"`
	Position uint64 `json:"position"`
	GTID     string `json:"gtid,omitempty"`
}

// Database is one dumped database.
type Database struct {
	Name      string `json:"name"`
	Charset   string `json:"charset"`
	Collation string `json:"collation"`
	// Objects in load order: phase schema (database, sequences, tables), phase data (data chunks,
	// any order), phase post (procedures and functions, views in dependency order, triggers,
	// events).
	Objects []Object `json:"objects"`
	// Tables lists every table, view and sequence with its row count and checksum.
	Tables []Table `json:"tables"`
}

// Object is one object written to the Sink.
type Object struct {
	Key   string `json:"key"`   // the name passed to Sink.Create
	Kind  string `json:"kind"`  // database, sequence, table, data, procedure, function, view, trigger, event, users
	Phase string `json:"phase"` // schema, data, post, users
	// Name is the SQL name of what the object defines or fills (table, view, routine, trigger,
	// event, sequence); empty for database and users objects.
	Name string `json:"name,omitempty"`
	// Table is the table a trigger belongs to.
	Table string `json:"table,omitempty"`
	Rows  int64  `json:"rows,omitempty"` // data objects: rows in this object
	Bytes int64  `json:"bytes"`          // plain SQL size
}

// Table is one table, view or sequence.
type Table struct {
	Name   string `json:"name"`
	Type   string `json:"type"` // table, view or sequence
	Engine string `json:"engine,omitempty"`
	// Rows and Checksum are what Checksum must return for the restored table (tables only).
	Rows     int64   `json:"rows"`
	Checksum string  `json:"checksum,omitempty"`
	Chunks   []Chunk `json:"chunks,omitempty"`
	// NoData says why a table's rows are not in the dump (MERGE, FEDERATED, BLACKHOLE); such a
	// table has no checksum and is not verified.
	NoData string `json:"no_data,omitempty"`
	// NonTransactional marks MyISAM, Aria, MEMORY and other tables outside InnoDB's snapshot.
	NonTransactional bool `json:"non_transactional,omitempty"`
	// SystemVersioned marks a system-versioned table; only its current rows are dumped.
	SystemVersioned bool `json:"system_versioned,omitempty"`
}

// Chunk is one data object of a table.
type Chunk struct {
	Key  string `json:"key"`
	Rows int64  `json:"rows"`
}
