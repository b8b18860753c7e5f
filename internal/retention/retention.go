// Package retention decides which backup sets a grandfather-father-son policy keeps. It is a pure
// function of (sets, now, policy): no I/O, no clock of its own, the same answer for the same input
// in any order, so prune, prune --dry-run and the tests all see exactly the same decisions.
//
// The rules follow restic's and borg's "forget": each rule walks the committed sets from newest to
// oldest and keeps the newest set of every distinct period (hour, day, ISO week, month, year of the
// operator's time zone) until it has covered its count of periods. Rules are independent: one set
// may be kept by several rules, and all of their reasons are reported. When a rule runs out of
// history before it has covered its count, it also keeps the oldest set, which keeps the history
// as long as possible while it grows.
//
// Safety invariants, whatever the policy says (an all-zero policy included):
//   - the newest committed set is always kept;
//   - the newest committed set proven restorable (it passed a restoration drill) is always kept,
//     so a run of new sets that nobody has proven yet cannot push the last known-good one out;
//   - an uncommitted set is never chosen by a rule, and never marked for deletion either: removing
//     it is the garbage collector's decision (see StaleUncommitted), because it may be a backup
//     that is being written right now;
//   - a set dated after now (clock skew between hosts) is kept, flagged, and takes no part in the
//     rules, so that it cannot push genuine sets out of keep_last.
package retention

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Set is one backup set as listing sees it.
type Set struct {
	ID        string    // sorts by time, e.g. 20261127T030000Z-3f9a
	Time      time.Time // when the set was taken
	Committed bool      // its manifest exists: the set is complete
	// Proven: the set passed a restoration drill (verify records no result to go by). The
	// newest proven set is kept whatever the rules say: a newer set may be damaged in a way
	// only a drill shows.
	Proven bool
}

// Policy is a grandfather-father-son retention policy. Each count is how many sets (KeepLast) or
// periods (the others) the rule covers: 0 means the rule keeps nothing, and a negative count
// means the rule covers every period there is (restic's -1).
//
// A Policy whose counts are all zero still keeps the newest committed set. Whether an all-zero
// policy means "do not prune at all" is the caller's decision (config.Retention.IsZero).
type Policy struct {
	KeepLast, Hourly, Daily, Weekly, Monthly, Yearly int

	// Location defines the hours, days, weeks, months and years of the rules: "daily" means the
	// operator's days. Nil means UTC.
	Location *time.Location
}

// IsZero reports whether every count is zero.
func (p Policy) IsZero() bool {
	return p.KeepLast == 0 && p.Hourly == 0 && p.Daily == 0 && p.Weekly == 0 && p.Monthly == 0 && p.Yearly == 0
}

// String describes the policy for logs, e.g. "keep_last 3, daily 7, weekly 4 (Europe/Berlin)".
func (p Policy) String() string {
	var parts []string
	for _, r := range p.rules() {
		switch {
		case r.count > 0:
			parts = append(parts, fmt.Sprintf("%s %d", r.name, r.count))
		case r.count < 0:
			parts = append(parts, r.name+" all")
		}
	}
	s := "only the newest committed set"
	if len(parts) > 0 {
		s = strings.Join(parts, ", ")
	}
	return s + " (" + p.location().String() + ")"
}

func (p Policy) location() *time.Location {
	if p.Location == nil {
		return time.UTC
	}
	return p.Location
}

// Decision is what retention decided for one set.
type Decision struct {
	ID        string
	Time      time.Time
	Committed bool
	Proven    bool
	// Keep is true for a set that must stay. For a committed set, false means prune deletes it.
	// For an uncommitted set it is always false and means only "retention does not vouch for it":
	// prune must leave it to the garbage collector (use Prunable, never !Keep alone).
	Keep bool
	// Future flags a set dated after now: a clock is wrong somewhere. Such a set is kept.
	Future bool
	// Reasons says why: every rule that kept the set, or why it was not kept.
	Reasons []string
}

// Reasons given for sets no rule kept.
const (
	ReasonNewest      = "newest committed set"
	ReasonProven      = "newest set proven restorable by a drill"
	ReasonNotSelected = "not selected by any rule"
	ReasonUncommitted = "uncommitted"
)

// Select decides, for every distinct set ID in sets, whether p keeps it at time now. The result
// is ordered newest first (by time, then by ID) and does not depend on the order of sets. An ID
// listed more than once (e.g. once per target) gets one decision; it counts as committed when
// any of its entries is.
func Select(sets []Set, now time.Time, p Policy) []Decision {
	loc := p.location()
	ds := merge(sets)

	// The sets the rules may choose from: committed and not in the future, newest first.
	var eligible []int
	for i := range ds {
		d := &ds[i]
		if d.Time.After(now) {
			d.Future = true
			d.Reasons = append(d.Reasons, fmt.Sprintf("future-dated: %s is after now (%s); check the clocks of the backup hosts",
				d.Time.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339)))
		}
		if !d.Committed {
			d.Reasons = append([]string{ReasonUncommitted}, d.Reasons...)
			continue
		}
		if d.Future {
			d.Keep = true
			continue
		}
		eligible = append(eligible, i)
	}

	if len(eligible) > 0 {
		newest := &ds[eligible[0]]
		newest.Keep = true
		newest.Reasons = append(newest.Reasons, ReasonNewest)
		for _, i := range eligible {
			if d := &ds[i]; d.Proven {
				d.Keep = true
				d.Reasons = append(d.Reasons, ReasonProven)
				break
			}
		}
	}

	for _, r := range p.rules() {
		if r.count == 0 {
			continue
		}
		covered, last := 0, ""
		keptOldest := false
		for n, i := range eligible {
			if r.count > 0 && covered >= r.count {
				break
			}
			d := &ds[i]
			var reason string
			if r.period == nil {
				reason = fmt.Sprintf("%s %d/%s", r.name, n+1, r.countString())
			} else {
				key := r.period(d.Time.In(loc))
				if key == last {
					continue
				}
				last = key
				reason = r.name + " " + key
			}
			covered++
			d.Keep = true
			d.Reasons = append(d.Reasons, reason)
			keptOldest = n == len(eligible)-1
		}
		// Out of history before the count was covered: keep the oldest set too, so that the
		// history kept is as long as possible (restic and borg do the same).
		if len(eligible) > 0 && r.count > 0 && covered < r.count && !keptOldest {
			d := &ds[eligible[len(eligible)-1]]
			d.Keep = true
			d.Reasons = append(d.Reasons, fmt.Sprintf("%s: oldest set (only %d of %s periods exist)", r.name, covered, r.countString()))
		}
	}

	for i := range ds {
		if ds[i].Committed && !ds[i].Keep {
			ds[i].Reasons = append(ds[i].Reasons, ReasonNotSelected)
		}
	}
	return ds
}

// merge returns one decision per distinct ID, newest first.
func merge(sets []Set) []Decision {
	byID := make(map[string]int, len(sets))
	ds := make([]Decision, 0, len(sets))
	for _, s := range sets {
		if i, ok := byID[s.ID]; ok {
			d := &ds[i]
			d.Committed = d.Committed || s.Committed
			d.Proven = d.Proven || s.Proven
			// Entries of one ID should agree on the time; if they do not, the latest wins so
			// the result stays independent of input order.
			if s.Time.After(d.Time) {
				d.Time = s.Time
			}
			continue
		}
		byID[s.ID] = len(ds)
		ds = append(ds, Decision{ID: s.ID, Time: s.Time, Committed: s.Committed, Proven: s.Proven})
	}
	slices.SortFunc(ds, func(a, b Decision) int {
		if c := b.Time.Compare(a.Time); c != 0 {
			return c
		}
		return strings.Compare(b.ID, a.ID)
	})
	return ds
}

type rule struct {
	name   string
	count  int
	period func(time.Time) string // nil: every set is its own period (keep_last)
}

func (r rule) countString() string {
	if r.count < 0 {
		return "all"
	}
	return fmt.Sprint(r.count)
}

func (p Policy) rules() []rule {
	return []rule{
		{"keep_last", p.KeepLast, nil},
		// The zone offset is part of the hour so that the hour repeated when DST ends is two
		// periods, as it is two hours.
		{"hourly", p.Hourly, func(t time.Time) string { return t.Format("2006-01-02T15Z07:00") }},
		{"daily", p.Daily, func(t time.Time) string { return t.Format("2006-01-02") }},
		{"weekly", p.Weekly, func(t time.Time) string {
			y, w := t.ISOWeek()
			return fmt.Sprintf("%04d-W%02d", y, w)
		}},
		{"monthly", p.Monthly, func(t time.Time) string { return t.Format("2006-01") }},
		{"yearly", p.Yearly, func(t time.Time) string { return t.Format("2006") }},
	}
}

// Prunable returns the IDs of the committed sets that the decisions do not keep: the only sets
// prune may delete. Uncommitted sets are never in it. The order is oldest first.
func Prunable(ds []Decision) []string {
	var ids []string
	for i := len(ds) - 1; i >= 0; i-- {
		if ds[i].Committed && !ds[i].Keep {
			ids = append(ids, ds[i].ID)
		}
	}
	return ids
}

// Keep keeps the sets named by ids with the given reason, e.g. "in use by a running drill" or
// "under object lock": retention must never delete a set that a restore or drill is reading or
// that the target would refuse to delete; the caller knows which those are. IDs not among the
// decisions are ignored.
func Keep(ds []Decision, reason string, ids ...string) {
	for i := range ds {
		if slices.Contains(ids, ds[i].ID) && ds[i].Committed {
			if !ds[i].Keep {
				ds[i].Reasons = slices.DeleteFunc(ds[i].Reasons, func(r string) bool { return r == ReasonNotSelected })
			}
			ds[i].Keep = true
			ds[i].Reasons = append(ds[i].Reasons, reason)
		}
	}
}

// StaleUncommitted returns the IDs of uncommitted sets older than olderThan at now, oldest
// first: sets whose writer died before committing, which the garbage collector may remove. A
// younger one may still be being written. An ID that is committed in any entry of sets is never
// stale, and neither is a set dated in the future.
func StaleUncommitted(sets []Set, now time.Time, olderThan time.Duration) []string {
	var ids []string
	for _, d := range merge(sets) {
		if !d.Committed && now.Sub(d.Time) > olderThan {
			ids = append(ids, d.ID)
		}
	}
	slices.Reverse(ids)
	return ids
}

// Summary renders decisions for prune --dry-run: one line per set, newest first, with the action
// and every reason, then the totals.
//
//	keep    20261127T030000Z-3f9a  newest committed set; keep_last 1/3; daily 2026-11-27
//	delete  20261126T030000Z-77c1  not selected by any rule
//	ignore  20261127T040000Z-0b2e  uncommitted (left to garbage collection)
func Summary(ds []Decision) string {
	var b strings.Builder
	width := 0
	for _, d := range ds {
		width = max(width, len(d.ID))
	}
	var keep, del, ignored, future int
	for _, d := range ds {
		action := "delete"
		reasons := d.Reasons
		switch {
		case !d.Committed:
			action = "ignore"
			ignored++
			reasons = slices.Clone(reasons)
			for i, r := range reasons {
				if r == ReasonUncommitted {
					reasons[i] = "uncommitted (left to garbage collection)"
				}
			}
		case d.Keep:
			action = "keep"
			keep++
		default:
			del++
		}
		if d.Future {
			future++
		}
		fmt.Fprintf(&b, "%-7s %-*s  %s\n", action, width, d.ID, strings.Join(reasons, "; "))
	}
	fmt.Fprintf(&b, "%d to keep, %d to delete", keep, del)
	if ignored > 0 {
		fmt.Fprintf(&b, ", %d uncommitted left alone", ignored)
	}
	if future > 0 {
		fmt.Fprintf(&b, ", %d dated in the future (check the clocks)", future)
	}
	b.WriteString("\n")
	return b.String()
}
