package drill

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/backupd/backupd/internal/dump"
	"github.com/backupd/backupd/internal/mysqldsn"
)

// Scratch kinds.
const (
	scratchEmbedded = "embedded"
	scratchDSN      = "dsn"
)

// maxNameLen is MySQL's and MariaDB's limit on a database name, in characters.
const maxNameLen = 64

// dsnScratch is an existing server where the drill creates databases under names of its own
// and drops exactly those afterwards.
type dsnScratch struct {
	dsn     string
	db      *sql.DB
	address string
	version string
	names   map[string]string // source database -> drill database
	log     *slog.Logger
}

// openDSNScratch connects and chooses a name for every source database that does not exist on
// the server. The names carry a random token, so two drills of the same set never collide.
func openDSNScratch(ctx context.Context, dsn, policy, setID string, sources []string, log *slog.Logger) (*dsnScratch, error) {
	cfg, err := mysqldsn.Parse(dsn)
	if errors.Is(err, mysqldsn.ErrAllowAllFiles) {
		return nil, fmt.Errorf("drill.scratch.dsn: %w", err)
	}
	if err != nil {
		return nil, fmt.Errorf("the scratch DSN does not parse (details withheld: they may contain the password)")
	}
	cfg.Timeout = 10 * time.Second
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("open the scratch server: %w", err)
	}
	s := &dsnScratch{dsn: dsn, db: sql.OpenDB(connector), address: cfg.Addr, names: map[string]string{}, log: log}
	if err := s.db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&s.version); err != nil {
		s.db.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("connect to the scratch server %s as %s: %v: check drill.scratch.dsn and that the server runs", cfg.Addr, cfg.User, err)
	}
	for attempt := 0; ; attempt++ {
		token := randomHex(2)
		names := map[string]string{}
		for _, src := range sources {
			names[src] = drillDatabaseName(policy, setID, token, src)
		}
		taken, err := s.existing(ctx, names)
		if err != nil {
			s.db.Close()
			return nil, err
		}
		if len(taken) == 0 {
			s.names = names
			return s, nil
		}
		if attempt == 5 {
			s.db.Close()
			return nil, fmt.Errorf("the scratch server already has databases named %s: drop them if they are leftovers of an interrupted drill", strings.Join(taken, ", "))
		}
	}
}

func (s *dsnScratch) existing(ctx context.Context, names map[string]string) ([]string, error) {
	var taken []string
	for _, n := range names {
		var c int
		if err := s.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", n).Scan(&c); err != nil {
			return nil, fmt.Errorf("list the databases of the scratch server: %w", err)
		}
		if c > 0 {
			taken = append(taken, n)
		}
	}
	return taken, nil
}

// Close drops the drill's databases (only those: their names were checked free before the
// restore) and disconnects. It uses a context of its own: it must run after a cancellation.
func (s *dsnScratch) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var first error
	for _, n := range s.names {
		if _, err := s.db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+dump.QuoteIdent(n)); err != nil {
			s.log.Error("could not drop a drill database; drop it by hand", "database", n, "error", err)
			if first == nil {
				first = fmt.Errorf("drop drill database %s: %w", dump.QuoteIdent(n), err)
			}
		}
	}
	s.db.Close()
	return first
}

// drillDatabaseName is drill_<policy>_<set suffix>_<token>_<db>, cut to 64 characters with a
// hash of the source name when it is longer, so every source database gets its own name.
func drillDatabaseName(policy, setID, token, source string) string {
	suffix := setID
	if i := strings.LastIndexByte(setID, '-'); i >= 0 {
		suffix = setID[i+1:]
	}
	prefix := "drill_" + cutRunes(policy, 24) + "_" + suffix + "_" + token + "_"
	name := prefix + source
	if len([]rune(name)) <= maxNameLen {
		return name
	}
	sum := sha256.Sum256([]byte(source))
	tag := "_" + hex.EncodeToString(sum[:3])
	return prefix + cutRunes(source, maxNameLen-len([]rune(prefix))-len(tag)) + tag
}

func cutRunes(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:max(n, 0)])
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// bufferPoolFor sizes the embedded server's buffer pool: the configured size, else about the
// set's plain size (the data then mostly fits), between 128 MiB and a quarter of the memory
// available, rounded to 128 MiB.
func bufferPoolFor(configured, plainBytes int64) int64 {
	if configured > 0 {
		return configured
	}
	const unit = 128 << 20
	upper := int64(8 << 30)
	if avail := memAvailable(); avail > 0 {
		upper = min(upper, avail/4)
	}
	upper = max(upper, unit)
	bp := min(max(plainBytes, unit), upper)
	return (bp + unit - 1) / unit * unit
}

// memAvailable reads MemAvailable from /proc/meminfo; 0 when unknown.
func memAvailable() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemAvailable:" {
			kb, err := strconv.ParseInt(fields[1], 10, 64)
			if err == nil {
				return kb << 10
			}
		}
	}
	return 0
}
