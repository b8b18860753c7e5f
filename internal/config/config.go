// Package config loads backupd's YAML configuration: global settings, targets, encryption and
// policies, inline or one file per policy in a directory.
//
// Loading runs three steps: defaults, then parsing (with ${VAR} and ${VAR:-default} expanded from
// the environment in scalar values, after the YAML is parsed, so a value can never break the YAML
// structure; $$ is a literal $), then validation. Validation reports every problem at once, each
// located by file, key path and line, because a daemon that refuses to start should say
// everything that is wrong in one go. Unknown keys are errors: a typo must never silently turn a
// feature off.
//
// Secrets (access_key, secret_key, password, username, dsn) may instead be read from a sibling
// <key>_file. No error or summary produced here contains a secret value.
package config

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/backupd/backupd/internal/fileperm"
)

// Defaults, documented here because they are part of the public contract.
const (
	DefaultListen          = "127.0.0.1:9187"
	DefaultStateDirName    = ".backupd-state" // under the config file's directory
	DefaultRegion          = "us-east-1"
	DefaultBucketLookup    = BucketLookupAuto
	DefaultPartSize        = 16 << 20 // S3 multipart part size; memory per upload stream
	DefaultThreads         = 2
	DefaultChunkSize       = 64 << 20
	DefaultLockWaitTimeout = 30 * time.Second
	DefaultCompression     = CompressionFastest
	DefaultSMTPPort        = 587
	DefaultStartTLS        = true

	// The daemon (backupd run).
	DefaultMaxConcurrentJobs = 1 // jobs at once over all policies: dumps load the database
	DefaultShutdownTimeout   = 5 * time.Minute
	DefaultUncommittedGrace  = 24 * time.Hour
	DefaultShrinkAlert       = 0.5 // alert when a set or table lost more than half its rows
)

// Target types.
const (
	TargetS3  = "s3"
	TargetDir = "dir"
)

// S3 bucket lookup styles.
const (
	BucketLookupAuto = "auto"
	BucketLookupPath = "path"
	BucketLookupDNS  = "dns"
)

// Compression levels, mapped to zstd levels by the sealing code.
const (
	CompressionFastest = "fastest"
	CompressionDefault = "default"
	CompressionBetter  = "better"
	CompressionBest    = "best"
)

// S3 limits a part size must respect.
const (
	minPartSize = 5 << 20
	maxPartSize = 5 << 30
)

// Config is a loaded, validated configuration. Every path in it is absolute.
type Config struct {
	File string // absolute path of the file it was loaded from (as given to Parse for embedded configs)
	Dir  string // absolute; relative paths in the file resolve against it

	Listen      string // daemon HTTP address
	StateDir    string // local state (locks, caches, generated secrets)
	PoliciesDir string // empty when not configured

	Targets    map[string]*Target
	Encryption Encryption
	Signing    Signing
	SMTP       *SMTP // nil when absent
	Policies   map[string]*Policy

	// The daemon.
	MaxConcurrentJobs int           // jobs running at once, over all policies
	ShutdownTimeout   time.Duration // how long SIGTERM lets running jobs finish before cancelling them
	Alerts            Alerts        // the defaults every policy's alerts start from
}

// Target is one place sets are stored.
type Target struct {
	Name string
	Type string // TargetS3 or TargetDir

	Path string // dir: absolute directory

	Endpoint     string // s3: http(s)://host[:port]; the scheme decides TLS
	Region       string
	Bucket       string
	Prefix       string // empty or ending in "/"; never starting with "/"
	AccessKey    string // secret
	SecretKey    string // secret
	BucketLookup string // BucketLookupAuto, BucketLookupPath or BucketLookupDNS
	CAFile       string // absolute; extra CA certificates (PEM) for https endpoints
	PartSize     int64  // multipart part size in bytes

	ObjectLockDays int    // s3: write objects under S3 Object Lock retention for this many days; 0: off
	ObjectLockMode string // ObjectLockCompliance or ObjectLockGovernance
}

// Encryption lists who can read the sets.
type Encryption struct {
	// Recipients are age recipient strings: `recipients:`, then the non-comment lines of
	// recipients_file, without duplicates. Each parses with seal.ParseRecipient. It may be empty when
	// identity_file is set: the backup then derives the public key from that file, generating
	// a key there on the first run (package keys).
	Recipients     []string
	RecipientsFile string // absolute; empty when not configured
	// IdentityFile holds the private key for restore, drill and verify; absolute. Its existence is
	// not checked at load time: the backup host need not have it.
	IdentityFile string
	// DedupKeyFile holds the secret that names storage blobs without revealing their content
	// hashes (dedup_key_file:). Empty: <state_dir>/dedup.key. Generated on first use; share the
	// file between hosts backing up the same storage so they deduplicate against each other.
	// Losing it costs deduplication, never data.
	DedupKeyFile string
}

// SMTP is the mail server for reports and alerts.
type SMTP struct {
	Host     string
	Port     int
	Username string // secret
	Password string // secret
	From     string
	StartTLS bool // require STARTTLS
}

// Policy is what to back up, when, where, and how long to keep it.
type Policy struct {
	Name string
	File string // the file it was defined in

	Schedule string // robfig/cron/v3 standard spec: 5 fields, @descriptors, CRON_TZ= prefix
	MySQL    *MySQL // nil when absent

	Targets    []string // names in Config.Targets, in the order given
	MinTargets int      // committed on at least this many targets counts as success; default len(Targets)
	Retention  Retention

	// The daemon.
	CatchUp          bool          // run once at start when the targets show a missed run
	Jitter           time.Duration // each run starts up to this much after its scheduled time
	UncommittedGrace time.Duration // uncommitted sets older than this are garbage-collected
	Alerts           Alerts        // the global alerts with this policy's keys applied over them

	Drill *Drill // the restoration drill (drill:); nil when absent

	// Storage lists the storage areas snapshotted into every set (storage:).
	Storage []*StorageSource
}

// MySQL is a database source.
type MySQL struct {
	DSN              string   // secret; go-sql-driver/mysql syntax. Print it with RedactDSN.
	Databases        []string // empty: all non-system databases
	ExcludeTables    []string // "db.table"
	Threads          int
	ChunkSize        int64 // target size of one table chunk, in bytes
	LockWaitTimeout  time.Duration
	CompressionLevel string // Compression* constant
	IncludeUsers     bool
}

// Retention is a grandfather-father-son policy. Each field is how many sets to keep in that class;
// all zero means no retention is configured and nothing is pruned.
type Retention struct {
	KeepLast, Hourly, Daily, Weekly, Monthly, Yearly int
}

// IsZero reports whether no retention is configured.
func (r Retention) IsZero() bool { return r == Retention{} }

// Load reads, parses and validates the configuration file at path. The error is a
// *ValidationError listing every problem when the file is wrong, and a plain wrapped error when it
// cannot be read.
func Load(path string) (*Config, error) {
	// A config may carry credentials inline (or through ${VAR} a reader cannot see, but a
	// writer can redirect), so it is held to the rule for secret files.
	if err := fileperm.CheckPrivate(path, "config file"); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("read config %s: %w", path, err)
	}
	return parse(data, path, abs, filepath.Dir(path), filepath.Dir(abs), os.LookupEnv)
}

// Parse parses and validates a configuration held in memory, such as one embedded in the binary.
// file names it in messages; dir is the directory relative paths resolve against.
func Parse(data []byte, file string, dir string) (*Config, error) {
	absDir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("config directory %s: %w", dir, err)
	}
	return parse(data, file, file, dir, absDir, os.LookupEnv)
}

// parse is Load and Parse with the environment injected, so tests need not touch the process's.
func parse(data []byte, shownFile, absFile, shownDir, absDir string, lookup func(string) (string, bool)) (*Config, error) {
	d := newDecoder(shownFile, shownDir, absDir, lookup)
	c := newConfig(absFile, absDir)
	if root := d.parseYAML(data); root != nil {
		d.mapping(root, "", rootFields(c))
	}
	d.loadPolicies(c)
	d.finish(c)
	if len(d.problems) > 0 {
		return nil, &ValidationError{Problems: d.sorted()}
	}
	return c, nil
}

func newConfig(file, dir string) *Config {
	return &Config{
		File:     file,
		Dir:      dir,
		Listen:   DefaultListen,
		Targets:  map[string]*Target{},
		Policies: map[string]*Policy{},

		MaxConcurrentJobs: DefaultMaxConcurrentJobs,
		ShutdownTimeout:   DefaultShutdownTimeout,
		Alerts:            Alerts{ShrinkAlert: DefaultShrinkAlert},
	}
}

func newTarget(name string) *Target {
	return &Target{
		Name:         name,
		Region:       DefaultRegion,
		BucketLookup: DefaultBucketLookup,
		PartSize:     DefaultPartSize,
	}
}

func newSMTP() *SMTP {
	return &SMTP{Port: DefaultSMTPPort, StartTLS: DefaultStartTLS}
}

func newPolicy(name, file string) *Policy {
	return &Policy{Name: name, File: file, UncommittedGrace: DefaultUncommittedGrace}
}

func newMySQL() *MySQL {
	return &MySQL{
		Threads:          DefaultThreads,
		ChunkSize:        DefaultChunkSize,
		LockWaitTimeout:  DefaultLockWaitTimeout,
		CompressionLevel: DefaultCompression,
	}
}
