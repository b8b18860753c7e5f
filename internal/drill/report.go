package drill

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/backupd/backupd/internal/humanize"
)

// ReportVersion is bumped whenever a reader of an older version could misread a stored report.
const ReportVersion = 1

// Results of a drill.
const (
	Pass = "PASS"
	Fail = "FAIL"
)

// Table statuses.
const (
	TableOK          = "ok"           // rows and checksum equal to the backup
	TableMismatch    = "mismatch"     // rows or checksum differ
	TableSkipped     = "skipped"      // the backup holds no rows for it by design (no_data)
	TableNotRestored = "not_restored" // the restore stopped before it could be compared
)

// Check statuses.
const (
	CheckPass   = "pass"
	CheckFail   = "fail"
	CheckError  = "error"   // the query failed
	CheckNotRun = "not_run" // the restore did not complete
)

// Report is the outcome of one drill. It is stored as JSON on the targets; field names are a
// contract with whoever reads them (dashboards, `drill history`).
type Report struct {
	Version    int       `json:"version"`
	ID         string    `json:"id"` // <start time>-<set ID>: sorts by time
	Policy     string    `json:"policy"`
	Result     string    `json:"result"`            // Pass or Fail
	Reasons    []string  `json:"reasons,omitempty"` // why it failed, most important first
	Warnings   []string  `json:"warnings,omitempty"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
	Host       string    `json:"host"` // where the drill ran
	Tool       string    `json:"tool"`

	Target  string      `json:"target"` // the target the set was read from (and only from)
	Set     *SetInfo    `json:"set,omitempty"`
	Scratch ScratchInfo `json:"scratch"`

	// RTO is the wall time of the restore and its verification: databases and storage, from
	// the first download to the last table compared. RPO is the age of the set's data when the
	// drill started. Limits are 0 when not configured.
	RTOSeconds    float64 `json:"rto_seconds"`
	RPOSeconds    float64 `json:"rpo_seconds"`
	MaxRTOSeconds float64 `json:"max_rto_seconds,omitempty"`
	MaxRPOSeconds float64 `json:"max_rpo_seconds,omitempty"`
	// Phase times, for the curious: the database restore (with verification), the storage
	// restore, the checks, and starting the scratch server (not part of the RTO).
	DatabaseSeconds float64 `json:"database_seconds"`
	StorageSeconds  float64 `json:"storage_seconds"`
	ChecksSeconds   float64 `json:"checks_seconds"`
	ScratchSeconds  float64 `json:"scratch_seconds"`

	Databases []DatabaseResult `json:"databases"`
	Checks    []CheckResult    `json:"checks"`
	Storage   []StorageResult  `json:"storage"`
	// Trend is the last drills of the policy, oldest first, this one last.
	Trend []TrendPoint `json:"trend"`
}

// SetInfo describes the set a drill restored.
type SetInfo struct {
	ID         string    `json:"id"`
	SnapshotAt time.Time `json:"snapshot_at"` // the point in time of the data
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
	Source     string    `json:"source,omitempty"` // e.g. "mariadb 10.11.19 on db1"
	Objects    int       `json:"objects"`
	Bytes      int64     `json:"bytes"` // sealed bytes of the set's objects (storage packs shared with other sets not counted)
	// PlainBytes is what a restore brings back: the dump's SQL text and the storage files.
	PlainBytes int64 `json:"plain_bytes"`
	Tables     int   `json:"tables"`
	Rows       int64 `json:"rows"`
}

// ScratchInfo says where the drill restored.
type ScratchInfo struct {
	Kind    string `json:"kind"`              // "embedded" or "dsn"
	Server  string `json:"server,omitempty"`  // VERSION() of the scratch server
	Address string `json:"address,omitempty"` // dsn: host:port or socket (never a password)
}

// DatabaseResult is one database of the set.
type DatabaseResult struct {
	Source     string        `json:"source"`
	RestoredAs string        `json:"restored_as"`
	Error      string        `json:"error,omitempty"` // the restore of this database failed
	Tables     []TableResult `json:"tables"`
}

// TableResult compares one restored table with the backup.
type TableResult struct {
	Name             string `json:"name"`
	Status           string `json:"status"` // Table* constants
	RowsExpected     int64  `json:"rows_expected"`
	RowsFound        *int64 `json:"rows_found,omitempty"`
	ChecksumExpected string `json:"checksum_expected,omitempty"`
	ChecksumFound    string `json:"checksum_found,omitempty"`
	Detail           string `json:"detail,omitempty"`
}

// CheckResult is one configured check.
type CheckResult struct {
	Name     string  `json:"name"`
	Database string  `json:"database,omitempty"` // the source database it ran in
	SQL      string  `json:"sql"`
	Expect   string  `json:"expect"`
	Value    *string `json:"value,omitempty"` // nil: NULL or no row
	Status   string  `json:"status"`          // Check* constants
	Detail   string  `json:"detail,omitempty"`
	Seconds  float64 `json:"seconds"`
}

// StorageResult is one storage source of the set, restored into a temporary directory.
type StorageResult struct {
	Source        string  `json:"source"`
	FilesExpected int64   `json:"files_expected"`
	Files         int64   `json:"files"` // restored, each verified against its SHA-256
	Dirs          int64   `json:"dirs"`
	Symlinks      int64   `json:"symlinks"`
	Bytes         int64   `json:"bytes"`
	Error         string  `json:"error,omitempty"`
	Seconds       float64 `json:"seconds"`
}

// TrendPoint is one drill in the trend.
type TrendPoint struct {
	ID         string    `json:"id"`
	At         time.Time `json:"at"`
	Result     string    `json:"result"`
	Target     string    `json:"target"`
	SetID      string    `json:"set_id,omitempty"`
	RTOSeconds float64   `json:"rto_seconds"`
	RPOSeconds float64   `json:"rpo_seconds"`
	Bytes      int64     `json:"bytes"` // the set's plain size
}

// Passed reports whether the drill passed.
func (r *Report) Passed() bool { return r.Result == Pass }

// RTO is the measured recovery time.
func (r *Report) RTO() time.Duration { return seconds(r.RTOSeconds) }

// RPO is the measured recovery point: the age of the data.
func (r *Report) RPO() time.Duration { return seconds(r.RPOSeconds) }

// Subject is the mail subject: "[backupd] drill PASS <policy>" or "… FAIL …".
func (r *Report) Subject() string { return fmt.Sprintf("[backupd] drill %s %s", r.Result, r.Policy) }

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

func secs(d time.Duration) float64 { return d.Seconds() }

// Summary counts the tables of the report by status.
func (r *Report) tableCounts() (ok, bad, other int) {
	for _, db := range r.Databases {
		for _, t := range db.Tables {
			switch t.Status {
			case TableOK:
				ok++
			case TableMismatch:
				bad++
			default:
				other++
			}
		}
	}
	return ok, bad, other
}

// WriteText writes the report for a terminal or a plain-text mail: the verdict and reasons
// first, then the details.
func (r *Report) WriteText(w io.Writer) {
	fmt.Fprintf(w, "backupd drill %s: policy %s\n", r.Result, r.Policy)
	if len(r.Reasons) > 0 {
		fmt.Fprintf(w, "\n%d problem(s):\n", len(r.Reasons))
		for _, s := range r.Reasons {
			fmt.Fprintf(w, "  - %s\n", s)
		}
	}
	for _, s := range r.Warnings {
		fmt.Fprintf(w, "  warning: %s\n", s)
	}
	fmt.Fprintln(w)
	if s := r.Set; s != nil {
		fmt.Fprintf(w, "set       %s from target %s; data as of %s UTC\n", s.ID, r.Target, s.SnapshotAt.UTC().Format("2006-01-02 15:04:05"))
		if s.Source != "" {
			fmt.Fprintf(w, "          source %s\n", s.Source)
		}
		fmt.Fprintf(w, "size      %d tables, %d rows, %s to restore (%s stored)\n", s.Tables, s.Rows, humanize.Bytes(s.PlainBytes), humanize.Bytes(s.Bytes))
	} else {
		fmt.Fprintf(w, "set       none (target %s)\n", r.Target)
	}
	fmt.Fprintf(w, "scratch   %s\n", r.Scratch.describe(r.ScratchSeconds))
	fmt.Fprintf(w, "RTO       %s\n", limitLine(r.RTO(), r.MaxRTOSeconds))
	fmt.Fprintf(w, "RPO       %s\n", limitLine(r.RPO(), r.MaxRPOSeconds))
	fmt.Fprintf(w, "drill     %s UTC on %s, %s in all\n", r.StartedAt.UTC().Format("2006-01-02 15:04:05"), r.Host, round(r.FinishedAt.Sub(r.StartedAt)))

	if len(r.Databases) > 0 {
		ok, bad, other := r.tableCounts()
		fmt.Fprintf(w, "\ntables: %d equal to the backup, %d different, %d not compared\n", ok, bad, other)
	}
	for _, db := range r.Databases {
		name := db.Source
		if db.RestoredAs != db.Source {
			name += " (restored as " + db.RestoredAs + ")"
		}
		fmt.Fprintf(w, "  database %s\n", name)
		if db.Error != "" {
			fmt.Fprintf(w, "    restore failed: %s\n", db.Error)
		}
		width := 5
		for _, t := range db.Tables {
			width = max(width, len([]rune(t.Name)))
		}
		fmt.Fprintf(w, "    %-*s  %13s  %13s  %s\n", width, "TABLE", "ROWS EXPECTED", "ROWS FOUND", "CHECKSUM")
		for _, t := range db.Tables {
			found := "-"
			if t.RowsFound != nil {
				found = fmt.Sprint(*t.RowsFound)
			}
			fmt.Fprintf(w, "    %-*s  %13d  %13s  %s\n", width+len(t.Name)-len([]rune(t.Name)), t.Name, t.RowsExpected, found, t.verdict())
		}
	}
	if len(r.Checks) > 0 {
		fmt.Fprintln(w, "\nchecks:")
		for _, c := range r.Checks {
			fmt.Fprintf(w, "  %-5s %s: %s\n", strings.ToUpper(c.Status), c.Name, c.describe())
		}
	}
	if len(r.Storage) > 0 {
		fmt.Fprintln(w, "\nstorage:")
		for _, s := range r.Storage {
			fmt.Fprintf(w, "  %s: %s\n", s.Source, s.describe())
		}
	}
	if len(r.Trend) > 0 {
		fmt.Fprintf(w, "\ntrend (RTO and size of the last %d drill(s), oldest first):\n", len(r.Trend))
		for _, p := range r.Trend {
			mark := ""
			if p.ID == r.ID {
				mark = "  <- this drill"
			}
			fmt.Fprintf(w, "  %s  %s  %-12s RTO %-9s %s%s\n", p.At.UTC().Format("2006-01-02 15:04"), p.Result, p.Target,
				round(seconds(p.RTOSeconds)), humanize.Bytes(p.Bytes), mark)
		}
	}
}

func (t TableResult) verdict() string {
	switch t.Status {
	case TableOK:
		return "equal"
	case TableMismatch:
		return "DIFFERENT: " + t.Detail
	case TableSkipped:
		return "not compared: " + t.Detail
	default:
		if t.Detail != "" {
			return "not compared: " + t.Detail
		}
		return "not compared"
	}
}

func (c CheckResult) describe() string {
	v := "NULL"
	if c.Value != nil {
		v = *c.Value
	}
	switch c.Status {
	case CheckPass:
		return fmt.Sprintf("%s (expected %s)", v, c.Expect)
	case CheckFail:
		return fmt.Sprintf("%s (expected %s): %s", v, c.Expect, c.Detail)
	default:
		return c.Detail
	}
}

func (s StorageResult) describe() string {
	if s.Error != "" {
		return fmt.Sprintf("FAILED after %d of %d files: %s", s.Files, s.FilesExpected, s.Error)
	}
	return fmt.Sprintf("%d files (%s), %d directories, %d symlinks restored; every file hash verified", s.Files, humanize.Bytes(s.Bytes), s.Dirs, s.Symlinks)
}

func (s ScratchInfo) describe(startSeconds float64) string {
	switch s.Kind {
	case scratchEmbedded:
		d := "embedded server"
		if s.Server != "" {
			d += " " + s.Server
		}
		if startSeconds > 0 {
			d += fmt.Sprintf(" (started in %s, not counted in the RTO)", round(seconds(startSeconds)))
		}
		return d
	case scratchDSN:
		d := "server " + s.Address
		if s.Server != "" {
			d += " (" + s.Server + ")"
		}
		return d
	}
	return "none"
}

func limitLine(v time.Duration, limit float64) string {
	if limit <= 0 {
		return round(v).String() + " (no limit configured)"
	}
	verdict := "within"
	if v > seconds(limit) {
		verdict = "OVER"
	}
	return fmt.Sprintf("%s (%s the limit of %s)", round(v), verdict, seconds(limit))
}

// round shortens a duration for people: whole seconds above a minute, tenths below.
func round(d time.Duration) time.Duration {
	if d >= time.Minute {
		return d.Round(time.Second)
	}
	return d.Round(100 * time.Millisecond)
}

// Problem is nil when the drill passed, else an error with its first reason (and how many more
// there are): what an alert says in one line.
func (r *Report) Problem() error {
	if r.Passed() {
		return nil
	}
	if len(r.Reasons) == 0 {
		return fmt.Errorf("the drill of policy %s failed", r.Policy)
	}
	more := ""
	if len(r.Reasons) > 1 {
		more = fmt.Sprintf(" (and %d more problem(s))", len(r.Reasons)-1)
	}
	return fmt.Errorf("%s%s", r.Reasons[0], more)
}

// Brief is a few lines for an alert: the verdict, every reason, the set, target, RTO and RPO,
// and where the full report is.
func (r *Report) Brief() string {
	var b strings.Builder
	fmt.Fprintf(&b, "drill %s of policy %s from target %s", r.Result, r.Policy, r.Target)
	if r.Set != nil {
		fmt.Fprintf(&b, ", set %s", r.Set.ID)
	}
	fmt.Fprintf(&b, "; RTO %s, RPO %s\n", round(r.RTO()), round(r.RPO()))
	for _, s := range r.Reasons {
		fmt.Fprintf(&b, "- %s\n", s)
	}
	fmt.Fprintf(&b, "full report: %s%s.html on the policy's targets; backupd drill history --policy %s", DrillsPrefix(r.Policy), r.ID, r.Policy)
	return b.String()
}
