package daemon

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/backupset"
	"github.com/backupd/backupd/internal/signing"
	"github.com/backupd/backupd/internal/targets"
	"github.com/backupd/backupd/internal/testenv"
)

// Test signing keys: testKeys[0] and testKeys[1] are trusted by every test leaser,
// testKeys[2] is nobody's.
var testKeys = func() [3]*signing.Signer {
	var out [3]*signing.Signer
	for i := range out {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			panic(err)
		}
		if out[i], err = signing.NewSigner(priv, fmt.Sprintf("test-%d", i)); err != nil {
			panic(err)
		}
	}
	return out
}()

func testVerifier() *signing.Verifier {
	return signing.NewVerifier(testKeys[0].Public(), testKeys[1].Public())
}

func testLeaser(host string) *leaser {
	l := newLeaser(slog.New(slog.DiscardHandler), time.Now, time.Minute)
	l.host = host
	signer := testKeys[0]
	if strings.HasSuffix(host, "b") {
		signer = testKeys[1]
	}
	l.setTrust(signer, testVerifier())
	return l
}

// plainTarget hides the optional interfaces of a target: a store without conditional writes.
type plainTarget struct{ t targets.Target }

func (p plainTarget) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	return p.t.Put(ctx, key, r, size)
}
func (p plainTarget) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	return p.t.Get(ctx, key)
}
func (p plainTarget) List(ctx context.Context, prefix string, fn func(targets.ObjectInfo) error) error {
	return p.t.List(ctx, prefix, fn)
}
func (p plainTarget) Delete(ctx context.Context, key string) error { return p.t.Delete(ctx, key) }

// TestLeaseClaims: on targets with conditional writes, two hosts racing for a tick get it
// once; a tick while the previous run is still going elsewhere is refused; a crashed host's
// claim stops counting once it expires.
func TestLeaseClaims(t *testing.T) {
	for name, open := range map[string]func(t *testing.T) targets.Target{
		"dir": func(t *testing.T) targets.Target {
			tgt, err := targets.Open("d", targets.Spec{Type: "dir", Path: t.TempDir()}, targets.Options{})
			if err != nil {
				t.Fatal(err)
			}
			return tgt
		},
		"minio": func(t *testing.T) targets.Target {
			srv := testenv.MinIO(t)
			tgt, err := targets.Open("m", targets.Spec{Type: "s3", Endpoint: srv.Endpoint, Region: srv.Region, Bucket: testenv.NewBucket(t, srv),
				AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, BucketLookup: "path"}, targets.Options{})
			if err != nil {
				t.Fatal(err)
			}
			return tgt
		},
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			dests := []backupset.Dest{{Name: "t", Target: open(t)}}
			hostA, hostB := testLeaser("host-a"), testLeaser("host-b")
			tick := at("2026-11-27T10:00:00Z")

			var wg sync.WaitGroup
			var leases [2]*lease
			var errs [2]error
			for i, l := range []*leaser{hostA, hostB} {
				wg.Go(func() { leases[i], errs[i] = l.acquire(ctx, "p", KindBackup, "", dests, tick, time.Hour, nil) })
			}
			wg.Wait()
			won := 0
			for i := range 2 {
				switch {
				case errs[i] == nil:
					won++
				case !errors.Is(errs[i], errTaken):
					t.Errorf("host %d: got %v, want errTaken", i, errs[i])
				}
			}
			if won != 1 {
				t.Fatalf("got %d hosts holding tick %s, want 1 (errors %v)", won, tick, errs)
			}
			holder := leases[0]
			if holder == nil {
				holder = leases[1]
			}

			next := tick.Add(4 * time.Second)
			if _, err := hostB.acquire(ctx, "p", KindBackup, "", dests, next, time.Hour, nil); !errors.Is(err, errBusy) {
				t.Errorf("next tick while the run goes on: got %v, want errBusy", err)
			}
			holder.release("committed")
			l, err := hostB.acquire(ctx, "p", KindBackup, "", dests, next, time.Hour, nil)
			if err != nil {
				t.Fatalf("next tick after release: %v", err)
			}
			if _, err := hostA.acquire(ctx, "p", KindBackup, "", dests, tick, time.Hour, nil); !errors.Is(err, errTaken) {
				t.Errorf("an older tick after a newer claim: got %v, want errTaken", err)
			}

			// host-b crashes while holding its claim: rewrite it as expired, as it would be
			// once its renewals stopped a lease TTL ago.
			key := claimKey("p", KindBackup, next)
			c, err := readClaim(ctx, dests[0].Target, key, testVerifier())
			if err != nil {
				t.Fatal(err)
			}
			c.Expires = time.Now().Add(-time.Second)
			data, err := sealClaim(testKeys[1], c)
			if err != nil {
				t.Fatal(err)
			}
			if err := targets.PutMutable(ctx, dests[0].Target, key, data); err != nil {
				t.Fatal(err)
			}
			// The "crashed" host's renewals would go on in this process; stop them at the end.
			t.Cleanup(func() { l.release("crashed") })
			l3, err := hostA.acquire(ctx, "p", KindBackup, "", dests, next.Add(4*time.Second), time.Hour, nil)
			if err != nil {
				t.Fatalf("tick after a crashed host's lease expired: got %v, want the lease", err)
			}
			l3.release("committed")
			got, err := readClaim(ctx, dests[0].Target, claimKey("p", KindBackup, next.Add(4*time.Second)), testVerifier())
			if err != nil || got.State != "done" || got.Host != "host-a" {
				t.Errorf("released claim: got %+v, %v; want state done by host-a", got, err)
			}
		})
	}
}

// TestLeaseClaimsArePruned: only the newest claims stay on the target.
func TestLeaseClaimsArePruned(t *testing.T) {
	ctx := context.Background()
	tgt, err := targets.Open("d", targets.Spec{Type: "dir", Path: t.TempDir()}, targets.Options{})
	if err != nil {
		t.Fatal(err)
	}
	dests := []backupset.Dest{{Name: "d", Target: tgt}}
	l := testLeaser("h")
	tick := at("2026-11-27T10:00:00Z")
	for i := range keepClaims + 5 {
		ls, err := l.acquire(ctx, "p", KindBackup, "", dests, tick.Add(time.Duration(i)*time.Minute), time.Hour, nil)
		if err != nil {
			t.Fatal(err)
		}
		ls.release("ok")
	}
	n := 0
	tgt.List(ctx, claimPrefix("p", KindBackup), func(targets.ObjectInfo) error { n++; return nil })
	if n != keepClaims+1 {
		t.Errorf("got %d claims left, want %d", n, keepClaims+1)
	}
}

// TestLeaseGetLock: without conditional writes, hosts coordinate through GET_LOCK on the
// source server, and a tick whose set already exists is not run again.
func TestLeaseGetLock(t *testing.T) {
	ctx := context.Background()
	dsn := testenv.MariaDBDSN(t)
	dir := t.TempDir()
	tgt, err := targets.Open("d", targets.Spec{Type: "dir", Path: dir}, targets.Options{})
	if err != nil {
		t.Fatal(err)
	}
	dests := []backupset.Dest{{Name: "d", Target: plainTarget{tgt}}}
	policy := strings.ReplaceAll(testenv.UniqueName("lease"), "_", "-")
	hostA, hostB := testLeaser("host-a"), testLeaser("host-b")
	tick := at("2026-11-27T10:00:00Z")

	la, err := hostA.acquire(ctx, policy, KindBackup, dsn, dests, tick, time.Hour, setMadeSince(policy, dests, tick, time.Hour))
	if err != nil {
		t.Fatalf("host a: %v", err)
	}
	if la.how != "GET_LOCK on the source server" {
		t.Errorf("got lease by %q, want GET_LOCK on the source server", la.how)
	}
	if _, err := hostB.acquire(ctx, policy, KindBackup, dsn, dests, tick, time.Hour, setMadeSince(policy, dests, tick, time.Hour)); !errors.Is(err, errBusy) {
		t.Errorf("host b while a holds GET_LOCK: got %v, want errBusy", err)
	}
	// Host a makes its set for the tick and releases.
	fakeSet(t, dir, policy, backupset.NewID(tick.Add(time.Second)), true, tick.Add(time.Second))
	la.release("ok")
	if _, err := hostB.acquire(ctx, policy, KindBackup, dsn, dests, tick, time.Hour, setMadeSince(policy, dests, tick, time.Hour)); !errors.Is(err, errTaken) {
		t.Errorf("host b after a made the tick's set: got %v, want errTaken", err)
	}
	lb, err := hostB.acquire(ctx, policy, KindBackup, dsn, dests, tick.Add(time.Hour), time.Hour, setMadeSince(policy, dests, tick.Add(time.Hour), time.Hour))
	if err != nil {
		t.Fatalf("host b, next tick: %v", err)
	}
	lb.release("ok")

	if _, err := hostA.acquire(ctx, policy, KindBackup, "root@tcp(127.0.0.1:1)/", dests, tick.Add(2*time.Hour), time.Hour, setMadeSince(policy, dests, tick.Add(2*time.Hour), time.Hour)); err == nil ||
		!strings.Contains(err.Error(), "cannot make sure that no other host runs this job") {
		t.Errorf("neither conditional writes nor the database: got %v, want an error saying hosts cannot be coordinated", err)
	}
}

// TestClaimHorizon: a trusted claim up to one schedule period ahead of the tick means another
// host is ahead of this one and has it; one further ahead is an attack, passed over and
// reported once however many ticks see it. A claim signed by an untrusted key never counts.
func TestClaimHorizon(t *testing.T) {
	tick := at("2026-11-27T10:00:00Z")
	for _, tt := range []struct {
		name       string
		at         time.Time
		signer     *signing.Signer
		wantTaken  bool
		wantReport int
	}{
		{"trusted, half a period ahead", tick.Add(30 * time.Minute), testKeys[1], true, 0},
		{"trusted, exactly one period ahead", tick.Add(time.Hour), testKeys[1], true, 0},
		{"trusted, two periods ahead", tick.Add(2 * time.Hour), testKeys[1], false, 1},
		{"trusted, at 99991231T000000Z", time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC), testKeys[1], false, 1},
		{"untrusted key, half a period ahead", tick.Add(30 * time.Minute), testKeys[2], false, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			tgt, err := targets.Open("d", targets.Spec{Type: "dir", Path: t.TempDir()}, targets.Options{})
			if err != nil {
				t.Fatal(err)
			}
			dests := []backupset.Dest{{Name: "d", Target: tgt}}
			data, err := sealClaim(tt.signer, claim{Job: KindBackup, Tick: tt.at, Host: "other", State: "done", Expires: tt.at})
			if err != nil {
				t.Fatal(err)
			}
			if err := targets.PutIfAbsent(ctx, tgt, claimKey("p", KindBackup, tt.at), data); err != nil {
				t.Fatal(err)
			}
			l := testLeaser("host-a")
			var reports []string
			l.report = func(policy, key, why string) { reports = append(reports, key+": "+why) }
			for i := range 2 { // two ticks: the report is not repeated
				tk := tick.Add(time.Duration(i) * time.Minute)
				ls, err := l.acquire(ctx, "p", KindBackup, "", dests, tk, time.Hour, nil)
				if got := errors.Is(err, errTaken); got != tt.wantTaken {
					t.Fatalf("tick %d: got %v, want taken=%v", i, err, tt.wantTaken)
				}
				if ls != nil {
					ls.release("done")
				}
			}
			if len(reports) != tt.wantReport {
				t.Errorf("got reports %q, want %d", reports, tt.wantReport)
			}
		})
	}
}

// TestClaimVerifiesByHand: a claim object can be checked with jq and ssh-keygen alone, as
// docs/verify-signatures.md shows; a changed byte fails that check.
func TestClaimVerifiesByHand(t *testing.T) {
	dir := t.TempDir()
	data, err := sealClaim(testKeys[0], claim{Job: KindBackup, Tick: at("2026-11-27T10:00:00Z"), Host: "db1 <&>", State: "running"})
	if err != nil {
		t.Fatal(err)
	}
	allowed := signing.AllowedSignersLine(testKeys[0].Public()) + "\n"
	script := `jq -j .claim 20261127T100000Z.json > claim && jq -j .signature 20261127T100000Z.json > claim.sig &&
ssh-keygen -Y verify -f allowed_signers -I backupd -n backupd-claim -s claim.sig < claim`
	for _, tt := range []struct {
		name   string
		object []byte
		wantOK bool
	}{
		{"as written", data, true},
		{"host changed", bytes.Replace(data, []byte(`db1`), []byte(`db2`), 1), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for name, body := range map[string][]byte{"20261127T100000Z.json": tt.object, "allowed_signers": []byte(allowed)} {
				if err := os.WriteFile(filepath.Join(dir, name), body, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			cmd := exec.Command("sh", "-c", script)
			cmd.Dir = dir
			out, err := cmd.CombinedOutput()
			if got := err == nil; got != tt.wantOK {
				t.Errorf("ssh-keygen -Y verify: got ok=%v (%v: %s), want ok=%v", got, err, out, tt.wantOK)
			}
		})
	}
}
