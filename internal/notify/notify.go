// Package notify tells people that something happened to their backups: by email over SMTP and
// by a JSON webhook that Slack-compatible incoming webhooks accept. Incidents decides when to
// speak at all — one alert when a problem starts, one notice when it clears — so that a daemon
// checking every few seconds never sends a storm.
//
// Nothing here logs or returns a secret: SMTP passwords never appear in errors, and webhook URLs
// (which carry their token in the path) are reduced to their host.
package notify

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"
)

// Events a Notification reports.
const (
	EventBackupFailed = "backup_failed" // a backup job failed
	EventTargetFailed = "target_failed" // one target failed while others succeeded
	EventStale        = "stale"         // no committed backup for longer than stale_after
	EventShrunk       = "shrunk"        // the set, or a table's row count, shrank past shrink_alert
	EventDrillFailed  = "drill_failed"  // a restoration drill failed
	EventRecovered    = "recovered"     // an incident reported earlier has cleared
)

// Severities of a Notification.
const (
	SeverityCritical = "critical"
	SeverityWarning  = "warning"
	SeverityInfo     = "info"
)

// EventUntrustedSet: a set on the targets whose manifest does not commit it (not signed by a
// trusted key, unparseable, dated in the future): never restored or counted, alerted once per
// set.
const EventUntrustedSet = "untrusted_set"

// Notification is one message to people, independent of how it is delivered.
type Notification struct {
	Event    string // Event* constant
	Policy   string // the policy concerned; empty for global events
	Severity string // Severity* constant
	Title    string // one line, e.g. "nightly: backup failed"
	Text     string // what happened and what to do; plain text, may span lines
	Fields   map[string]string
	Time     time.Time
}

// subject is the one-line summary used as mail subject and webhook headline.
func (n Notification) subject() string {
	if n.Title != "" {
		return n.Title
	}
	s := n.Event
	if s == "" {
		s = "notification"
	}
	if n.Policy != "" {
		s = n.Policy + ": " + s
	}
	return s
}

// sortedFields returns the field names in a stable order, so that messages read the same each time.
func (n Notification) sortedFields() []string { return slices.Sorted(maps.Keys(n.Fields)) }

// Notifier delivers notifications. Notify returns once the notification was accepted by the
// receiving server, or with an error saying which server refused it and why.
type Notifier interface {
	Notify(ctx context.Context, n Notification) error
}

// Multi delivers a notification to every notifier at once. One failing channel does not stop the
// others; the error joins every failure.
type Multi []Notifier

var _ Notifier = Multi(nil)

// Notify implements Notifier.
func (m Multi) Notify(ctx context.Context, n Notification) error {
	errs := make([]error, len(m))
	var wg sync.WaitGroup
	for i, nt := range m {
		wg.Go(func() { errs[i] = nt.Notify(ctx, n) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		failed := 0
		for _, e := range errs {
			if e != nil {
				failed++
			}
		}
		return fmt.Errorf("notify %q: %d of %d channels failed: %w", n.subject(), failed, len(m), err)
	}
	return nil
}
