package storage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"filippo.io/age"

	"github.com/backupd/backupd/internal/backupset"
)

// MarkerKeeper rewrites the in-progress markers of a job's storage snapshots on a timer until
// the job commits its set or fails. A snapshot refreshes its own marker only while it walks
// its source; without the keeper, a first source that finished long before a later one (or a
// host whose clock runs behind) would leave a marker that another host's garbage collection
// takes for stale, and the packs of the set about to commit would go.
type MarkerKeeper struct {
	policy, setID string
	dests         []backupset.Dest
	rcpt          age.Recipient
	every         time.Duration
	now           func() time.Time
	log           *slog.Logger
	refreshed     func() // tests: called after each refresh round

	mu      sync.Mutex // held while markers are written, so remove waits for a round in flight
	sources map[string]bool

	stop chan struct{}
	wg   sync.WaitGroup
}

// KeepOptions tune KeepMarkers; zero values are the defaults.
type KeepOptions struct {
	Every  time.Duration // default: markerRefresh (1h), well inside GCOptions.MarkerMaxAge
	Now    func() time.Time
	Logger *slog.Logger
}

// KeepMarkers starts a keeper for the markers of set setID; pass it in SnapshotOptions.Markers
// of every snapshot of the job, and Stop it once the set has committed or the job failed.
func KeepMarkers(ctx context.Context, policy, setID string, dests []backupset.Dest, nameKey []byte, opts KeepOptions) (*MarkerKeeper, error) {
	keys, err := newKeyring(nameKey)
	if err != nil {
		return nil, err
	}
	k := &MarkerKeeper{
		policy: policy, setID: setID, dests: dests, rcpt: keys.hdrRcpt,
		every: opts.Every, now: opts.Now, log: opts.Logger,
		sources: map[string]bool{}, stop: make(chan struct{}),
	}
	if k.every <= 0 {
		k.every = markerRefresh
	}
	if k.now == nil {
		k.now = time.Now
	}
	if k.log == nil {
		k.log = slog.New(slog.DiscardHandler)
	}
	k.wg.Go(func() {
		t := time.NewTicker(k.every)
		defer t.Stop()
		for {
			select {
			case <-k.stop:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				k.refresh(ctx)
			}
		}
	})
	return k, nil
}

func (k *MarkerKeeper) refresh(ctx context.Context) {
	k.mu.Lock()
	for src := range k.sources {
		if _, err := writeMarker(ctx, k.dests, k.rcpt, k.policy, k.setID, src, k.now()); err != nil {
			// The next round tries again; the snapshot's own marker write already proved the
			// targets writable, and MarkerMaxAge leaves many rounds of slack.
			k.log.Warn("could not refresh an in-progress marker", "set", k.setID, "storage", src, "error", err)
		}
	}
	k.mu.Unlock()
	if k.refreshed != nil {
		k.refreshed()
	}
}

func (k *MarkerKeeper) add(source string) {
	k.mu.Lock()
	k.sources[source] = true
	k.mu.Unlock()
}

func (k *MarkerKeeper) remove(source string) {
	k.mu.Lock()
	delete(k.sources, source)
	k.mu.Unlock()
}

// Stop ends the refreshes and waits for a round in flight. Markers stay where they are: those
// of a committed set are retired by the next snapshot or garbage collection.
func (k *MarkerKeeper) Stop() {
	if k == nil {
		return
	}
	select {
	case <-k.stop:
	default:
		close(k.stop)
	}
	k.wg.Wait()
}

// CheckPacks lists the blob area on every target once more and fails if a pack that one of
// the snapshots needs on that target is gone. The backup job runs it just before the
// manifest is written (backupset.WriterOptions.BeforeCommit): a set that references a missing
// pack must never commit.
func CheckPacks(ctx context.Context, dests []backupset.Dest, results ...*SnapshotResult) error {
	var errs []error
	for _, d := range dests {
		var need []string
		policy := ""
		for _, r := range results {
			if r != nil {
				need = append(need, r.needed[d.Name]...)
				policy = r.policy
			}
		}
		if len(need) == 0 {
			continue
		}
		listed, err := listPacks(ctx, d.Target, policy)
		if err != nil {
			errs = append(errs, fmt.Errorf("target %s: list packs to recheck them: %w", d.Name, err))
			continue
		}
		for _, id := range need {
			if !listed[id].pack {
				errs = append(errs, fmt.Errorf("pack %s, which this set references, is gone from target %s (deleted by garbage collection on a host with a skewed clock, a lifecycle rule or a person?); the set is not committed: run the backup again", packKey(policy, id), d.Name))
				break
			}
		}
	}
	return errors.Join(errs...)
}
