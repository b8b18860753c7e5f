// Package ctxtime waits in ways a context can cut short.
package ctxtime

import (
	"context"
	"time"
)

// Sleep waits d, or returns the context's cause as soon as it is done. A d of zero or less
// returns at once.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}
