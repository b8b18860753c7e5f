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
	"github.com/backupd/backupd/internal/schedule"
	"github.com/backupd/backupd/internal/signing"
	"github.com/backupd/backupd/internal/targets"
)

// Why a tick does not run here; both mean another host has it.
var (
	// errTaken: another host claimed this tick (or a later one), or already made its set.
	errTaken = errors.New("another host has this tick")
	// errBusy: the previous run is still going on another host.
	errBusy = errors.New("another host is still running this job")
	// errSlotPlanted: the tick's claim slot holds an object that is not a trusted claim. It
	// is neither deleted nor overwritten (two honest hosts could then both run): the tick is
	// coordinated through GET_LOCK instead.
	errSlotPlanted = errors.New("the claim of this tick is not a trusted claim")
)

// maxClaimPeriod bounds the schedule period that decides how far ahead of a tick a claim may
// be: irregular cron schedules (monthly, yearly) would otherwise let a planted claim months
// ahead pass as legitimate.
const maxClaimPeriod = 31 * 24 * time.Hour

// claimPeriod is the largest gap between the next few ticks after tick: a claim further ahead
// than this is not a host that is merely ahead of this one.
func claimPeriod(s schedule.Schedule, tick time.Time) time.Duration {
	var p time.Duration
	t := tick
	for range 8 {
		n := s.Next(t)
		if n.IsZero() {
			break
		}
		p = max(p, n.Sub(t))
		t = n
	}
	if p <= 0 || p > maxClaimPeriod {
		p = maxClaimPeriod
	}
	return p
}

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
// Claims are signed, and only those signed by a trusted key and at most one schedule period
// ahead of the tick count: anyone who can write to the bucket can plant a claim, and a planted
// one must never make every host stand aside (see claim).
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
	signer      *signing.Signer // signs our claims; nil: no claims, GET_LOCK only
	verifier    *signing.Verifier
	// report is told once per object about a claim object that does not count: unsigned,
	// untrusted, or dated too far ahead. Set before the first acquire.
	report   func(policy, key, why string)
	reported map[string]bool
	// listed is told which claim objects a listing of prefix found, so that alerts about
	// objects since deleted can clear. Optional.
	listed func(policy, prefix string, present map[string]bool)
}

// setTrust sets the keys claims are signed and verified with (at start and on each reload).
func (l *leaser) setTrust(s *signing.Signer, v *signing.Verifier) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.signer, l.verifier = s, v
}

func (l *leaser) trust() (*signing.Signer, *signing.Verifier) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.signer, l.verifier
}

// planted reports an object that does not count as a claim, once per object.
func (l *leaser) planted(policy, key, why string) {
	l.mu.Lock()
	seen := l.reported[key]
	l.reported[key] = true
	report := l.report
	l.mu.Unlock()
	if seen {
		return
	}
	l.log.Warn("ignoring a lease claim that is not a trusted claim; it may have been planted to stop backups",
		"policy", policy, "object", key, "why", why)
	if report != nil {
		report(policy, key, why)
	}
}

func newLeaser(log *slog.Logger, now func() time.Time, ttl time.Duration) *leaser {
	host, _ := os.Hostname()
	if ttl <= 0 {
		ttl = DefaultLeaseTTL
	}
	return &leaser{host: host, ttl: ttl, now: now, log: log, conditional: map[string]bool{}, reported: map[string]bool{}}
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

// claimEnvelope is what a claim object holds: the claim's JSON and an SSH signature
// (namespace signing.NamespaceClaim) over exactly those bytes. One object, because a claim is
// created with a single conditional write. The claim is a JSON string, not nested JSON, so
// that `jq -j .claim` gives back the signed bytes exactly for a check by hand.
type claimEnvelope struct {
	Claim     string `json:"claim"`
	Signature string `json:"signature"`
}

// maxClaimSize bounds the read of a claim object: a claim and its signature are well under it.
const maxClaimSize = 64 << 10

func sealClaim(s *signing.Signer, c claim) ([]byte, error) {
	body, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	sig, err := s.Sign(signing.NamespaceClaim, body)
	if err != nil {
		return nil, err
	}
	return json.Marshal(claimEnvelope{Claim: string(body), Signature: string(sig)})
}

// untrustedClaimError: the object exists but is not a claim signed by a trusted key.
type untrustedClaimError struct{ why string }

func (e *untrustedClaimError) Error() string { return e.why }

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
// period is the schedule's period at tick (claimPeriod): claims further ahead are planted.
func (l *leaser) acquire(ctx context.Context, policy, kind, dsn string, dests []backupset.Dest, tick time.Time, period time.Duration, done tickDoneFunc) (*lease, error) {
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
	planted := false
	signer, _ := l.trust()
	switch {
	case len(dests) == 0:
		claimErr = errors.New("the policy has no target")
	case signer == nil:
		claimErr = errors.New("this host has no signing key to sign its claims with")
	default:
		lt := dests[0]
		ok, err := l.supportsConditional(ctx, policy, lt)
		switch {
		case err != nil:
			claimErr = fmt.Errorf("target %s: %w", lt.Name, err)
		case !ok:
			claimErr = fmt.Errorf("target %s does not support conditional writes", lt.Name)
		default:
			c, err := l.claim(ctx, policy, kind, lt, tick, period)
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
			planted = errors.Is(err, errSlotPlanted)
			claimErr = fmt.Errorf("claim on target %s: %w", lt.Name, err)
		}
	}

	if dbErr != nil && planted && dsn == "" {
		// Nothing else to coordinate on: running alone may run the tick twice with another
		// host in the same position, which beats every host skipping it for good.
		l.log.Warn("the claim of this tick is not a trusted claim and the policy has no source server for GET_LOCK; running without coordination",
			"policy", policy, "job", kind, "why", claimErr.Error())
		if done != nil {
			if what, ok := done(ctx); ok {
				return nil, fmt.Errorf("%w: %s", errTaken, what)
			}
		}
		return &lease{how: "no coordination (planted claim, no source server)", release: func(string) {}}, nil
	}
	if dbErr != nil {
		return nil, fmt.Errorf("cannot make sure that no other host runs this job: %v; and GET_LOCK on the source server: %w", claimErr, dbErr)
	}
	if planted {
		l.log.Warn("coordinating this tick through GET_LOCK on the source server", "policy", policy, "job", kind, "why", claimErr.Error())
	} else {
		l.log.Debug("coordinating through GET_LOCK on the source server", "policy", policy, "job", kind, "why", claimErr.Error())
	}
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
//
// Only claims signed by a trusted key, whose signed tick matches their name, count. One dated
// more than period ahead of tick is an attack (a host merely ahead of this one is at most a
// tick ahead), never a reason to stand aside. Objects that do not count are reported once and
// passed over; one occupying this tick's own slot gives errSlotPlanted.
func (l *leaser) claim(ctx context.Context, policy, kind string, d backupset.Dest, tick time.Time, period time.Duration) (func(result string), error) {
	signer, verifier := l.trust()
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
	present := make(map[string]bool, len(keys))
	for _, k := range keys {
		present[k] = true
	}
	l.mu.Lock()
	for k := range l.reported {
		if strings.HasPrefix(k, prefix) && !present[k] {
			delete(l.reported, k) // deleted: report it again should it come back
		}
	}
	listed := l.listed
	l.mu.Unlock()
	if listed != nil {
		listed(policy, prefix, present)
	}
	key := claimKey(policy, kind, tick)
	now := l.now()
	horizon := tick.Add(period)
	for i := len(keys) - 1; i >= 0; i-- {
		k := keys[i]
		kt, err := time.Parse(claimTimeLayout, strings.TrimSuffix(strings.TrimPrefix(k, prefix), ".json"))
		if err != nil {
			l.planted(policy, k, "its name is not a tick")
			continue
		}
		if kt.After(horizon) {
			l.planted(policy, k, fmt.Sprintf("it claims tick %s, more than one schedule period (%s) ahead of tick %s",
				kt.Format(time.RFC3339), period, tick.UTC().Format(time.RFC3339)))
			continue
		}
		c, err := readClaim(ctx, d.Target, k, verifier)
		var ue *untrustedClaimError
		if errors.As(err, &ue) {
			l.planted(policy, k, ue.why)
			if k == key {
				return nil, fmt.Errorf("%w (%s: %s)", errSlotPlanted, k, ue.why)
			}
			continue
		}
		if errors.Is(err, targets.ErrNotFound) {
			continue // pruned since the listing
		}
		if err != nil {
			return nil, err
		}
		if k == key {
			return nil, fmt.Errorf("%w: tick %s was claimed by %s", errTaken, tick.UTC().Format(time.RFC3339), c.Host)
		}
		if k > key {
			return nil, fmt.Errorf("%w: a later tick is already claimed by %s (%s)", errTaken, c.Host, k)
		}
		if c.State == "running" && now.Before(c.Expires) {
			return nil, fmt.Errorf("%w: the run of tick %s is still going on %s (its lease runs until %s)",
				errBusy, c.Tick.UTC().Format(time.RFC3339), c.Host, c.Expires.UTC().Format(time.RFC3339))
		}
		break // the newest trusted claim before ours decides
	}

	c := claim{Job: kind, Tick: tick.UTC(), Host: l.host, PID: os.Getpid(), Token: randomToken(),
		Acquired: now.UTC(), Expires: now.Add(l.ttl).UTC(), State: "running"}
	data, err := sealClaim(signer, c)
	if err != nil {
		return nil, err
	}
	if err := targets.PutIfAbsent(ctx, d.Target, key, data); err != nil {
		if !errors.Is(err, targets.ErrExists) {
			return nil, err
		}
		// Either another host won, or a retry of our own write found it: the token tells.
		got, rerr := readClaim(ctx, d.Target, key, verifier)
		var ue *untrustedClaimError
		if errors.As(rerr, &ue) {
			l.planted(policy, key, ue.why)
			return nil, fmt.Errorf("%w (%s: %s)", errSlotPlanted, key, ue.why)
		}
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
		data, err := sealClaim(signer, c)
		mu.Unlock()
		if err == nil {
			err = targets.PutMutable(ctx, d.Target, key, data)
		}
		if err != nil {
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

// readClaim reads a claim object and returns its claim when it is signed by a trusted key and
// its signed tick and job match its name; otherwise an *untrustedClaimError says why not.
func readClaim(ctx context.Context, t backupset.Target, key string, v *signing.Verifier) (claim, error) {
	var c claim
	rc, err := t.Get(ctx, key)
	if err != nil {
		return c, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, maxClaimSize+1))
	if err != nil {
		return c, err
	}
	if len(data) > maxClaimSize {
		return c, &untrustedClaimError{fmt.Sprintf("larger than %d bytes", maxClaimSize)}
	}
	var env claimEnvelope
	if err := json.Unmarshal(data, &env); err != nil || len(env.Claim) == 0 {
		return c, &untrustedClaimError{"not a signed claim (" + signing.ErrUnsigned.Error() + ")"}
	}
	if v == nil {
		return c, &untrustedClaimError{"no signing key is trusted"}
	}
	if _, err := v.Verify(signing.NamespaceClaim, []byte(env.Claim), []byte(env.Signature)); err != nil {
		return c, &untrustedClaimError{err.Error()}
	}
	if err := json.Unmarshal([]byte(env.Claim), &c); err != nil {
		return c, &untrustedClaimError{"its signed claim does not parse: " + err.Error()}
	}
	name := strings.TrimSuffix(key[strings.LastIndex(key, "/")+1:], ".json")
	if c.Tick.UTC().Format(claimTimeLayout) != name || !strings.HasSuffix(strings.TrimSuffix(key, "/"+name+".json"), "/"+c.Job) {
		return c, &untrustedClaimError{fmt.Sprintf("its signed claim is for job %q tick %s, not the one its name says (a copy of another claim)",
			c.Job, c.Tick.UTC().Format(time.RFC3339))}
	}
	return c, nil
}

// setMadeSince is the tick-done check of backups: some target holds a committed set started at
// or after tick. Targets that cannot be listed are passed over: the backup will report them.
// A set dated more than period after the tick is planted, not another host's run of it.
func setMadeSince(policy string, dests []backupset.Dest, tick time.Time, period time.Duration) tickDoneFunc {
	return func(ctx context.Context) (string, bool) {
		return setSince(ctx, policy, dests, tick, period)
	}
}

func setSince(ctx context.Context, policy string, dests []backupset.Dest, tick time.Time, period time.Duration) (string, bool) {
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
			if t.After(tick.Add(period)) {
				continue
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
