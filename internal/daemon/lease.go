package daemon

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql" // GET_LOCK on the policy's source server

	"github.com/backupd/backupd/internal/backupset"
	"github.com/backupd/backupd/internal/dump"
	"github.com/backupd/backupd/internal/mysqldsn"
	"github.com/backupd/backupd/internal/targets"
)

// Why a tick does not run here; both mean another host has it.
var (
	// errTaken: another host claimed this tick (or a later one), or already made its set.
	errTaken = errors.New("another host has this tick")
	// errBusy: the previous run is still going on another host.
	errBusy = errors.New("another host is still running this job")
)

const (
	// DefaultLeaseTTL is how long a claim stays valid without being renewed: a host that
	// crashed holds its job at most this long. Holders renew at a third of it.
	DefaultLeaseTTL = 2 * time.Minute
	// keepClaims is how many old claims stay on the target, for people reading the bucket.
	keepClaims = 10
	// claimTimeLayout names claims by their tick; it sorts by time.
	claimTimeLayout = "20060102T150405Z"
)

// leaser makes one host run each tick of a job, however many daemons share the policy.
//
// The primary mechanism is a claim on the policy's first target, written with a conditional
// write (S3 If-None-Match: *, link(2) on a directory): <policy>/locks/<job>/<tick>.json. The
// tick is the same on every host (Schedule aligns @every to the epoch), so exactly one host
// creates the claim and runs; the others see ErrExists. While it runs, the holder renews the
// claim's expiry; a host that finds the newest claim still running and unexpired skips its
// tick, so runs do not overlap across hosts either; a crashed host's claim simply expires.
//
// Whether a target honours the condition is probed once (a server that ignores
// If-None-Match would let every host win). Where it does not, or the first target cannot be
// reached, the fallback is GET_LOCK on the policy's source server, held for the run, plus a
// look at the targets: a committed set started at or after the tick means another host has
// done it. GET_LOCK is also taken, best effort, alongside a claim, so that hosts on the two
// mechanisms exclude each other too; a lock held by a dead client's session ends with it.
type leaser struct {
	host string
	ttl  time.Duration
	now  func() time.Time
	log  *slog.Logger

	mu          sync.Mutex
	conditional map[string]bool // probe results by target name
}

func newLeaser(log *slog.Logger, now func() time.Time, ttl time.Duration) *leaser {
	host, _ := os.Hostname()
	if ttl <= 0 {
		ttl = DefaultLeaseTTL
	}
	return &leaser{host: host, ttl: ttl, now: now, log: log, conditional: map[string]bool{}}
}

// forget drops the probe results, e.g. after a reload changed the targets.
func (l *leaser) forget() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.conditional = map[string]bool{}
}

// claim is the body of a claim object.
type claim struct {
	Job      string    `json:"job"`
	Tick     time.Time `json:"tick"`
	Host     string    `json:"host"`
	PID      int       `json:"pid"`
	Token    string    `json:"token"`
	Acquired time.Time `json:"acquired"`
	Expires  time.Time `json:"expires"`
	State    string    `json:"state"` // running or done
	Finished time.Time `json:"finished,omitzero"`
	Result   string    `json:"result,omitempty"`
}

func claimPrefix(policy, kind string) string { return backupset.LocksPrefix(policy) + kind + "/" }

func claimKey(policy, kind string, tick time.Time) string {
	return claimPrefix(policy, kind) + tick.UTC().Format(claimTimeLayout) + ".json"
}

// lease is held while a job runs; release it exactly once.
type lease struct {
	how     string // for logs: which mechanism holds it
	release func(result string)
}

// tickDoneFunc tells whether another host has already done a tick (used with GET_LOCK, which
// excludes hosts only while held): what it found, and true when it is done.
type tickDoneFunc func(ctx context.Context) (string, bool)

// acquire takes the job's tick for this host. It fails with errTaken or errBusy when another
// host has it, and with another error when it cannot find out (nothing to coordinate on).
// done is consulted only on the GET_LOCK path.
func (l *leaser) acquire(ctx context.Context, policy, kind, dsn string, dests []backupset.Dest, tick time.Time, done tickDoneFunc) (*lease, error) {
	lockName := mysqlLockName(policy, kind)
	var releaseDB func()
	var dbErr error
	if dsn != "" {
		releaseDB, dbErr = getLock(ctx, dsn, lockName)
		if errors.Is(dbErr, errBusy) {
			return nil, fmt.Errorf("%w: GET_LOCK('%s') on the source server is held by another session", errBusy, lockName)
		}
	} else {
		dbErr = errors.New("the policy has no database source to take GET_LOCK on")
	}
	if releaseDB == nil {
		releaseDB = func() {}
	}

	var claimErr error
	if len(dests) == 0 {
		claimErr = errors.New("the policy has no target")
	} else {
		lt := dests[0]
		ok, err := l.supportsConditional(ctx, policy, lt)
		switch {
		case err != nil:
			claimErr = fmt.Errorf("target %s: %w", lt.Name, err)
		case !ok:
			claimErr = fmt.Errorf("target %s does not support conditional writes", lt.Name)
		default:
			c, err := l.claim(ctx, policy, kind, lt, tick)
			if err == nil {
				return &lease{how: "claim on target " + lt.Name, release: func(result string) {
					c(result)
					releaseDB()
				}}, nil
			}
			if errors.Is(err, errTaken) || errors.Is(err, errBusy) {
				releaseDB()
				return nil, err
			}
			claimErr = fmt.Errorf("claim on target %s: %w", lt.Name, err)
		}
	}

	if dbErr != nil {
		return nil, fmt.Errorf("cannot make sure that no other host runs this job: %v; and GET_LOCK on the source server: %w", claimErr, dbErr)
	}
	l.log.Debug("coordinating through GET_LOCK on the source server", "policy", policy, "job", kind, "why", claimErr.Error())
	if done == nil {
		done = func(context.Context) (string, bool) { return "", false }
	}
	if what, ok := done(ctx); ok {
		releaseDB()
		return nil, fmt.Errorf("%w: %s", errTaken, what)
	}
	return &lease{how: "GET_LOCK on the source server", release: func(string) { releaseDB() }}, nil
}

// supportsConditional probes a target once per daemon lifetime (or reload).
func (l *leaser) supportsConditional(ctx context.Context, policy string, d backupset.Dest) (bool, error) {
	l.mu.Lock()
	ok, known := l.conditional[d.Name]
	l.mu.Unlock()
	if known {
		return ok, nil
	}
	key := backupset.LocksPrefix(policy) + "probe-" + randomToken() + ".tmp"
	ok, err := targets.ProbeConditional(ctx, d.Target, key)
	if err != nil {
		return false, fmt.Errorf("probe conditional writes: %w", err)
	}
	if !ok {
		l.log.Warn("target does not honour conditional writes; coordinating hosts through GET_LOCK on the source server instead",
			"target", d.Name)
	}
	l.mu.Lock()
	l.conditional[d.Name] = ok
	l.mu.Unlock()
	return ok, nil
}

// claim creates the claim of tick and keeps it renewed until the returned release is called.
func (l *leaser) claim(ctx context.Context, policy, kind string, d backupset.Dest, tick time.Time) (func(result string), error) {
	prefix := claimPrefix(policy, kind)
	var keys []string
	err := d.Target.List(ctx, prefix, func(oi targets.ObjectInfo) error {
		if strings.HasSuffix(oi.Key, ".json") {
			keys = append(keys, oi.Key)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(keys)
	key := claimKey(policy, kind, tick)
	now := l.now()
	if len(keys) > 0 {
		newest := keys[len(keys)-1]
		if newest >= key {
			who := ""
			if c, err := readClaim(ctx, d.Target, newest); err == nil {
				who = " by " + c.Host
			}
			if newest == key {
				return nil, fmt.Errorf("%w: tick %s was claimed%s", errTaken, tick.UTC().Format(time.RFC3339), who)
			}
			return nil, fmt.Errorf("%w: a later tick is already claimed%s (%s)", errTaken, who, newest)
		}
		c, err := readClaim(ctx, d.Target, newest)
		if err != nil && !errors.Is(err, targets.ErrNotFound) {
			return nil, err
		}
		if err == nil && c.State == "running" && now.Before(c.Expires) {
			return nil, fmt.Errorf("%w: the run of tick %s is still going on %s (its lease runs until %s)",
				errBusy, c.Tick.UTC().Format(time.RFC3339), c.Host, c.Expires.UTC().Format(time.RFC3339))
		}
	}

	c := claim{Job: kind, Tick: tick.UTC(), Host: l.host, PID: os.Getpid(), Token: randomToken(),
		Acquired: now.UTC(), Expires: now.Add(l.ttl).UTC(), State: "running"}
	data, _ := json.Marshal(c)
	if err := targets.PutIfAbsent(ctx, d.Target, key, data); err != nil {
		if !errors.Is(err, targets.ErrExists) {
			return nil, err
		}
		// Either another host won, or a retry of our own write found it: the token tells.
		got, rerr := readClaim(ctx, d.Target, key)
		if rerr != nil || got.Token != c.Token {
			who := "another host"
			if rerr == nil {
				who = got.Host
			}
			return nil, fmt.Errorf("%w: tick %s was claimed by %s", errTaken, tick.UTC().Format(time.RFC3339), who)
		}
	}

	// Renew until released. The renewals run on a context of their own: a job cancelled at
	// shutdown still marks its claim done.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	write := func(ctx context.Context) {
		mu.Lock()
		data, _ := json.Marshal(c)
		mu.Unlock()
		if err := targets.PutMutable(ctx, d.Target, key, data); err != nil {
			l.log.Warn("could not renew the lease of a running job", "policy", policy, "job", kind, "target", d.Name, "error", err)
		}
	}
	wg.Go(func() {
		t := time.NewTicker(l.ttl / 3)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				mu.Lock()
				c.Expires = l.now().Add(l.ttl).UTC()
				mu.Unlock()
				rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.ttl/3)
				write(rctx)
				cancel()
			}
		}
	})
	return func(result string) {
		close(stop)
		wg.Wait()
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		mu.Lock()
		c.State, c.Finished, c.Result = "done", l.now().UTC(), result
		mu.Unlock()
		write(rctx)
		l.pruneClaims(rctx, d, prefix, key)
	}, nil
}

// pruneClaims deletes all but the newest keepClaims claims older than own.
func (l *leaser) pruneClaims(ctx context.Context, d backupset.Dest, prefix, own string) {
	var keys []string
	err := d.Target.List(ctx, prefix, func(oi targets.ObjectInfo) error {
		if oi.Key < own && strings.HasSuffix(oi.Key, ".json") {
			keys = append(keys, oi.Key)
		}
		return nil
	})
	if err != nil {
		return
	}
	sort.Strings(keys)
	for len(keys) > keepClaims {
		if err := d.Target.Delete(ctx, keys[0]); err != nil {
			l.log.Debug("could not delete an old claim", "target", d.Name, "key", keys[0], "error", err)
			return
		}
		keys = keys[1:]
	}
}

func readClaim(ctx context.Context, t backupset.Target, key string) (claim, error) {
	var c claim
	rc, err := t.Get(ctx, key)
	if err != nil {
		return c, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, 64<<10))
	if err != nil {
		return c, err
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return c, fmt.Errorf("parse %s: %w", key, err)
	}
	return c, nil
}

// setMadeSince is the tick-done check of backups: some target holds a committed set started at
// or after tick. Targets that cannot be listed are passed over: the backup will report them.
func setMadeSince(policy string, dests []backupset.Dest, tick time.Time) tickDoneFunc {
	return func(ctx context.Context) (string, bool) {
		return setSince(ctx, policy, dests, tick)
	}
}

func setSince(ctx context.Context, policy string, dests []backupset.Dest, tick time.Time) (string, bool) {
	for _, d := range dests {
		entries, err := backupset.SetKeysOnly(ctx, d.Target, policy)
		if err != nil {
			continue
		}
		for i := len(entries) - 1; i >= 0; i-- {
			e := entries[i]
			t, err := backupset.IDTime(e.ID)
			if err != nil || t.Before(tick.Truncate(time.Second)) {
				break
			}
			if e.Committed {
				return "set " + e.ID + " was made at or after the tick", true
			}
		}
	}
	return "", false
}

// mysqlLockName is the GET_LOCK name of a job; MySQL allows 64 characters.
func mysqlLockName(policy, kind string) string {
	name := "backupd/" + policy + "/" + kind
	if len(name) <= 64 {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	return "backupd/" + hex.EncodeToString(sum[:20])
}

// getLock takes GET_LOCK(name, 0) on a connection of its own and holds it until release.
func getLock(ctx context.Context, dsn, name string) (release func(), err error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cfg, err := mysqldsn.Parse(dsn)
	if err != nil {
		if errors.Is(err, mysqldsn.ErrAllowAllFiles) {
			return nil, err
		}
		return nil, errors.New("connect to the source server: the DSN does not parse (details withheld: they may contain the password)")
	}
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to the source server: %s", dump.RedactDSNError(dsn, err))
	}
	db := sql.OpenDB(connector)
	conn, err := db.Conn(ctx)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to the source server: %s", dump.RedactDSNError(dsn, err))
	}
	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK(?, 0)", name).Scan(&got); err != nil {
		conn.Close()
		db.Close()
		return nil, fmt.Errorf("GET_LOCK on the source server: %w", err)
	}
	if !got.Valid || got.Int64 != 1 {
		conn.Close()
		db.Close()
		if got.Valid {
			return nil, errBusy
		}
		return nil, errors.New("GET_LOCK on the source server returned NULL")
	}
	return func() {
		// Cleanup rule (the whole tree): work that must finish after the job's context is
		// cancelled runs under context.WithoutCancel(ctx) and a timeout of its own — the job's
		// values stay, only its cancellation goes; context.Background only where no context
		// is in scope (Close methods).
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		conn.ExecContext(rctx, "DO RELEASE_LOCK(?)", name)
		conn.Close()
		db.Close()
	}, nil
}

func randomToken() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
