// Package schedule computes when a policy's jobs run and when it is stale: pure functions of
// a parsed schedule and the times passed in, so that they are table-tested without a clock.
package schedule

import (
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// Schedule is when a job runs: a robfig/cron/v3 schedule (five fields, @descriptors, @every,
// CRON_TZ=) with one change: @every intervals are aligned to the Unix epoch instead of to the
// moment the process started. Every host then computes the same ticks whatever it started,
// which is what lets the tick name the lease that makes one run per tick across hosts, and a
// restart does not push the next run away.
//
// All methods are pure functions of their arguments.
type Schedule struct {
	Spec string
	// Location is the schedule's time zone: CRON_TZ=, else the host's local zone (as cron
	// reads five-field expressions). Retention counts its days and weeks in it too.
	Location *time.Location

	every time.Duration // @every; zero for calendar schedules
	cron  cron.Schedule
}

// Parse parses a policy's schedule: text.
func Parse(spec string) (Schedule, error) {
	parsed, err := cron.ParseStandard(spec)
	if err != nil {
		return Schedule{}, fmt.Errorf("schedule %q: %w", spec, err)
	}
	s := Schedule{Spec: spec, Location: time.Local, cron: parsed}
	if tz, ok := zone(spec); ok {
		loc, err := time.LoadLocation(tz)
		if err != nil {
			return Schedule{}, fmt.Errorf("schedule %q: time zone: %w", spec, err)
		}
		s.Location = loc
	}
	if c, ok := parsed.(cron.ConstantDelaySchedule); ok {
		s.every = c.Delay
	}
	return s, nil
}

// zone returns the zone of a CRON_TZ= (or TZ=) prefix, as robfig/cron reads it.
func zone(spec string) (string, bool) {
	spec = strings.TrimSpace(spec)
	for _, p := range []string{"CRON_TZ=", "TZ="} {
		if rest, ok := strings.CutPrefix(spec, p); ok {
			tz, _, _ := strings.Cut(rest, " ")
			return tz, true
		}
	}
	return "", false
}

// Next returns the first tick strictly after t; zero when there is none (a date that never
// comes, like February 30th).
func (s Schedule) Next(t time.Time) time.Time {
	if s.every > 0 {
		d := s.every.Nanoseconds()
		u := t.UnixNano()
		n := u - mod(u, d) + d
		return time.Unix(0, n).In(t.Location())
	}
	return s.cron.Next(t)
}

// Prev returns the last tick at or before t; zero when there is none within about eight years.
func (s Schedule) Prev(t time.Time) time.Time {
	if s.every > 0 {
		d := s.every.Nanoseconds()
		u := t.UnixNano()
		return time.Unix(0, u-mod(u, d)).In(t.Location())
	}
	// cron only answers "next", so look back over growing windows until one holds a tick, then
	// walk forward to the last tick in it. The window ends up at most four gaps long.
	for window := time.Minute; window <= 8*366*24*time.Hour; window *= 4 {
		n := s.cron.Next(t.Add(-window))
		if n.IsZero() {
			return time.Time{}
		}
		if n.After(t) {
			continue
		}
		for {
			nn := s.cron.Next(n)
			if nn.IsZero() || nn.After(t) {
				return n
			}
			n = nn
		}
	}
	return time.Time{}
}

// Interval returns the time between the first two ticks after t: the schedule's period there
// (a weekday-only schedule has a longer one over the weekend).
func (s Schedule) Interval(t time.Time) time.Duration {
	a := s.Next(t)
	if a.IsZero() {
		return 0
	}
	b := s.Next(a)
	if b.IsZero() {
		return 0
	}
	return b.Sub(a)
}

func mod(a, b int64) int64 {
	m := a % b
	if m < 0 {
		m += b
	}
	return m
}

// JitterDelay is how long after its tick a run starts: a fraction r (in [0,1)) of jitter, but
// never more than half the interval to the next tick, so that jitter cannot make a run overlap
// the next one or skip it.
func JitterDelay(jitter, interval time.Duration, r float64) time.Duration {
	if jitter <= 0 {
		return 0
	}
	if interval > 0 {
		jitter = min(jitter, interval/2)
	}
	return time.Duration(float64(jitter) * r)
}

// MissedTick decides catch-up: whether the last tick before now has no run, judging by the
// start time of the newest run the targets hold (zero when they hold none). It returns that
// tick when it was missed.
func MissedTick(s Schedule, newest, now time.Time) (time.Time, bool) {
	prev := s.Prev(now)
	if prev.IsZero() {
		return time.Time{}, false
	}
	if newest.IsZero() || newest.Before(prev) {
		return prev, true
	}
	return time.Time{}, false
}

// Derived stale threshold: when stale_after is not given, a policy is stale once the run
// after its newest set is overdue by the schedule's interval (at most 2h, the time that run
// may take), and never sooner than an hour after the newest set.
const (
	staleMaxGrace = 2 * time.Hour
	staleMinAge   = time.Hour
)

// StaleDeadline returns the time after which a policy whose newest committed set started at
// newest is stale. staleAfter > 0 is an explicit threshold; 0 derives one from the schedule.
func StaleDeadline(s Schedule, staleAfter time.Duration, newest time.Time) time.Time {
	if staleAfter > 0 {
		return newest.Add(staleAfter)
	}
	next := s.Next(newest)
	if next.IsZero() {
		return newest.Add(staleMinAge)
	}
	grace := staleMaxGrace
	if iv := s.Interval(next.Add(-time.Nanosecond)); iv > 0 {
		grace = min(grace, iv)
	}
	deadline := next.Add(grace)
	if floor := newest.Add(staleMinAge); deadline.Before(floor) {
		deadline = floor
	}
	return deadline
}
