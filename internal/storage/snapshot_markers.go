package storage

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"filippo.io/age"

	"github.com/backupd/backupd/internal/backupset"
	"github.com/backupd/backupd/internal/seal"
	"github.com/backupd/backupd/internal/targets"
)

// markerRefresh is how often a long snapshot rewrites its in-progress markers, so that
// GCOptions.MarkerMaxAge bounds the time since the last sign of life, not the job's length.
const markerRefresh = time.Hour

// putMarkers writes this snapshot's in-progress marker on every target.
func (sn *snapshotter) putMarkers(ctx context.Context) error {
	n, err := writeMarker(ctx, sn.st.dests, sn.keys.hdrRcpt, sn.opts.Policy, sn.opts.SetID, sn.spec.Name, sn.now())
	for name, size := range n {
		sn.res.Uploaded[name] += size
	}
	if err != nil {
		return err
	}
	sn.lastMarker = sn.now()
	return nil
}

// writeMarker writes the in-progress marker of one source of a set on every target and
// returns the bytes written per target.
func writeMarker(ctx context.Context, dests []backupset.Dest, rcpt age.Recipient, policy, setID, source string, now time.Time) (map[string]int64, error) {
	host, _ := os.Hostname()
	plain, _ := json.Marshal(map[string]any{
		"format": "backupd-snapshot-marker", "set": setID, "source": source,
		"host": host, "written": now.UTC(),
	})
	var buf bytes.Buffer
	sw, err := seal.NewWriter(&buf, []age.Recipient{rcpt}, seal.Fastest)
	if err == nil {
		_, err = sw.Write(plain)
	}
	if err == nil {
		err = sw.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("seal in-progress marker: %w", err)
	}
	key := markerKey(policy, setID, source)
	written := map[string]int64{}
	for _, d := range dests {
		if err := d.Target.Put(ctx, key, bytes.NewReader(buf.Bytes()), int64(buf.Len())); err != nil {
			return written, fmt.Errorf("write in-progress marker %s to target %s: %w", key, d.Name, err)
		}
		written[d.Name] += int64(buf.Len())
	}
	return written, nil
}

// dropMarkers removes this snapshot's markers after it failed, so that garbage collection
// need not wait for them to go stale. Best effort, on a context that survives cancellation.
func (sn *snapshotter) dropMarkers(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	key := markerKey(sn.opts.Policy, sn.opts.SetID, sn.spec.Name)
	for _, d := range sn.st.dests {
		if err := d.Target.Delete(ctx, key); err != nil {
			sn.log.Warn("could not delete the in-progress marker of a failed snapshot", "target", d.Name, "key", key, "error", err)
		}
	}
}

// retireMarkers deletes the markers of sets that have committed since: they protect nothing
// any more, and a marker left behind by a set that retention later deletes would hold back
// garbage collection until it goes stale. Best effort; garbage collection does the same.
func (sn *snapshotter) retireMarkers(ctx context.Context) {
	for _, d := range sn.st.dests {
		sets, err := backupset.SetKeys(ctx, d.Target, sn.opts.Policy)
		if err != nil {
			continue // load reports the target's trouble
		}
		listed := map[string]bool{}
		for _, s := range sets {
			listed[s.ID] = s.Committed
		}
		// committed reads the manifest only of a set that has a marker: the marker goes only
		// once its set's manifest is trusted (backupset.Committed).
		committed := func(set string) bool {
			if !listed[set] {
				return false
			}
			_, err := backupset.ReadManifest(ctx, d.Target, sn.opts.Policy, set, sn.now(), sn.opts.Trust)
			return err == nil
		}
		var stale []string
		err = d.Target.List(ctx, pendingPrefix(sn.opts.Policy), func(oi targets.ObjectInfo) error {
			if set, _, ok := parseMarkerKey(sn.opts.Policy, oi.Key); ok && committed(set) {
				stale = append(stale, oi.Key)
			}
			return nil
		})
		if err != nil {
			continue
		}
		for _, key := range stale {
			if err := d.Target.Delete(ctx, key); err != nil {
				sn.log.Warn("could not retire an in-progress marker", "target", d.Name, "key", key, "error", err)
			}
		}
	}
}

// storeStream chunks r, stores the chunks and returns their references, the SHA-256 of all
// of r and its length. size is what the source said r holds: below the chunker's minimum
