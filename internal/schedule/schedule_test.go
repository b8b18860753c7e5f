package schedule

import (
	"testing"
	"time"
	_ "time/tzdata" // CRON_TZ cases must not depend on the machine's zoneinfo
)

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

func mustSchedule(t *testing.T, spec string) Schedule {
	t.Helper()
	s, err := Parse(spec)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestScheduleNextPrev(t *testing.T) {
	for _, tc := range []struct {
		spec, now, next, prev string
	}{
		// @every is aligned to the epoch, not to when the process started.
		{"@every 4s", "2026-11-27T10:00:01.3Z", "2026-11-27T10:00:04Z", "2026-11-27T10:00:00Z"},
		{"@every 4s", "2026-11-27T10:00:04Z", "2026-11-27T10:00:08Z", "2026-11-27T10:00:04Z"},
		{"@every 6h", "2026-11-27T13:59:59Z", "2026-11-27T18:00:00Z", "2026-11-27T12:00:00Z"},
		{"@every 1h30m", "2026-11-27T00:10:00Z", "2026-11-27T01:30:00Z", "2026-11-27T00:00:00Z"},
		{"CRON_TZ=UTC 0 3 * * *", "2026-11-27T10:00:00Z", "2026-11-28T03:00:00Z", "2026-11-27T03:00:00Z"},
		{"CRON_TZ=UTC 0 3 * * *", "2026-11-27T03:00:00Z", "2026-11-28T03:00:00Z", "2026-11-27T03:00:00Z"},
		{"CRON_TZ=UTC @hourly", "2026-11-27T10:00:00.5Z", "2026-11-27T11:00:00Z", "2026-11-27T10:00:00Z"},
		{"CRON_TZ=UTC */15 * * * *", "2026-11-27T10:07:00Z", "2026-11-27T10:15:00Z", "2026-11-27T10:00:00Z"},
		// Weekdays only: Saturday's previous run was Friday's, the next is Monday's.
		{"CRON_TZ=UTC 0 3 * * 1-5", "2026-11-28T12:00:00Z", "2026-11-30T03:00:00Z", "2026-11-27T03:00:00Z"},
		// 03:00 in Berlin is 02:00 UTC in winter.
		{"CRON_TZ=Europe/Berlin 0 3 * * *", "2026-11-27T10:00:00Z", "2026-11-28T02:00:00Z", "2026-11-27T02:00:00Z"},
		// Yearly: Prev has to look back most of a year.
		{"CRON_TZ=UTC @yearly", "2026-11-27T10:00:00Z", "2027-01-01T00:00:00Z", "2026-01-01T00:00:00Z"},
		// Feb 29th comes every four years.
		{"CRON_TZ=UTC 0 0 29 2 *", "2026-11-27T10:00:00Z", "2028-02-29T00:00:00Z", "2024-02-29T00:00:00Z"},
	} {
		t.Run(tc.spec+" at "+tc.now, func(t *testing.T) {
			s := mustSchedule(t, tc.spec)
			now := at(tc.now)
			if got := s.Next(now); !got.Equal(at(tc.next)) {
				t.Errorf("Next: got %s, want %s", got.UTC(), tc.next)
			}
			if got := s.Prev(now); !got.Equal(at(tc.prev)) {
				t.Errorf("Prev: got %s, want %s", got.UTC(), tc.prev)
			}
		})
	}
}

// TestTicksAgreeAcrossHosts: daemons started at different moments compute the same ticks,
// which is what lets the tick name the lease.
func TestTicksAgreeAcrossHosts(t *testing.T) {
	s := mustSchedule(t, "@every 4s")
	a, b := at("2026-11-27T10:00:00.3Z"), at("2026-11-27T10:00:02.9Z")
	for range 5 {
		na, nb := s.Next(a), s.Next(b)
		if !na.Equal(nb) {
			t.Fatalf("host A's next tick %s, host B's %s: want the same", na, nb)
		}
		a, b = na.Add(137*time.Millisecond), nb.Add(911*time.Millisecond)
	}
}

func TestScheduleLocation(t *testing.T) {
	if got := mustSchedule(t, "CRON_TZ=Europe/Berlin 0 3 * * *").Location.String(); got != "Europe/Berlin" {
		t.Errorf("got %s, want Europe/Berlin", got)
	}
	if got := mustSchedule(t, "CRON_TZ=America/New_York @every 1h").Location.String(); got != "America/New_York" {
		t.Errorf("@every with CRON_TZ: got %s, want America/New_York", got)
	}
	if got := mustSchedule(t, "0 3 * * *").Location; got != time.Local {
		t.Errorf("no CRON_TZ: got %s, want Local", got)
	}
	if _, err := Parse("0 3 * *"); err == nil {
		t.Error("four fields: got nil, want an error")
	}
}

func TestJitterDelay(t *testing.T) {
	for _, tc := range []struct {
		name             string
		jitter, interval time.Duration
		r                float64
		want             time.Duration
	}{
		{"none", 0, time.Hour, 0.9, 0},
		{"fraction", 10 * time.Minute, 24 * time.Hour, 0.5, 5 * time.Minute},
		{"capped at half the interval", time.Hour, 4 * time.Second, 0.99, 1980 * time.Millisecond},
		{"unknown interval", time.Minute, 0, 0.5, 30 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := JitterDelay(tc.jitter, tc.interval, tc.r); got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func TestMissedTick(t *testing.T) {
	daily := mustSchedule(t, "CRON_TZ=UTC 0 3 * * *")
	now := at("2026-11-27T10:00:00Z")
	for _, tc := range []struct {
		name, newest string
		missed       bool
	}{
		{"no set at all", "", true},
		{"today's run made it", "2026-11-27T03:00:07Z", false},
		{"today's run made it late (jitter)", "2026-11-27T03:09:00Z", false},
		{"a manual backup after the tick counts", "2026-11-27T09:00:00Z", false},
		{"yesterday's is the newest", "2026-11-26T03:00:02Z", true},
		{"a week old", "2026-11-20T03:00:02Z", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var newest time.Time
			if tc.newest != "" {
				newest = at(tc.newest)
			}
			tick, missed := MissedTick(daily, newest, now)
			if missed != tc.missed {
				t.Fatalf("got missed %v, want %v", missed, tc.missed)
			}
			if missed && !tick.Equal(at("2026-11-27T03:00:00Z")) {
				t.Errorf("got tick %s, want today's 03:00", tick)
			}
		})
	}
}

func TestStaleDeadline(t *testing.T) {
	for _, tc := range []struct {
		name, spec string
		staleAfter time.Duration
		newest     string
		want       string
	}{
		{"explicit", "CRON_TZ=UTC 0 3 * * *", 26 * time.Hour, "2026-11-27T03:00:05Z", "2026-11-28T05:00:05Z"},
		{"daily: next run plus 2h", "CRON_TZ=UTC 0 3 * * *", 0, "2026-11-27T03:00:05Z", "2026-11-28T05:00:00Z"},
		{"weekdays: over the weekend", "CRON_TZ=UTC 0 3 * * 1-5", 0, "2026-11-27T03:00:05Z", "2026-11-30T05:00:00Z"},
		{"hourly: next run plus an hour", "CRON_TZ=UTC 0 * * * *", 0, "2026-11-27T03:00:05Z", "2026-11-27T05:00:00Z"},
		{"frequent: at least an hour", "@every 4s", 0, "2026-11-27T03:00:04Z", "2026-11-27T04:00:04Z"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := StaleDeadline(mustSchedule(t, tc.spec), tc.staleAfter, at(tc.newest))
			if !got.Equal(at(tc.want)) {
				t.Errorf("got %s, want %s", got.UTC(), tc.want)
			}
		})
	}
}
