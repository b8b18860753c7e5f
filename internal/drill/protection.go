package drill

import (
	"context"
	"log/slog"
	"time"

	"github.com/backupd/backupd/internal/backupset"
)

// A drill protects the set it reads with a marker on the target (backupset.Protect), so that
// retention on any host leaves the set alone until the drill is over. The marker expires by
// itself if the drill dies; it is renewed while the drill runs longer than its time to live.
const (
	protectTTL   = time.Hour
	protectRenew = 20 * time.Minute
)

// protectSet marks the set in use and returns the function that releases the marker. A marker
// that cannot be written is logged, not fatal: the drill still proves what it can.
func protectSet(ctx context.Context, src backupset.Dest, m *backupset.Manifest, now func() time.Time, log *slog.Logger) (release func()) {
	hold, err := backupset.Protect(ctx, src.Target, m.Policy, m.SetID, "drill", protectTTL, now)
	if err != nil {
		log.Warn("could not mark the set in use; retention on another host could delete it during the drill", "error", err)
		return func() {}
	}
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(protectRenew)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if err := hold.Renew(ctx, protectTTL); err != nil {
					log.Warn("could not renew the in-use marker of the set", "error", err)
				}
			}
		}
	}()
	return func() {
		close(done)
		<-stopped
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := hold.Release(rctx); err != nil {
			log.Warn("could not remove the in-use marker of the set; it expires by itself", "error", err)
		}
	}
}
