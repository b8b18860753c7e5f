package retention

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // DST cases must not depend on the machine's zoneinfo
)

// id makes a set ID of the shape backupset.NewID produces, with a suffix derived from n.
func id(t time.Time, n int) string {
	return t.UTC().Format("20060102T150405Z") + fmt.Sprintf("-%04x", n%0x10000)
}

// series returns committed sets every step, the last one at last, count sets in all, oldest first.
func series(last time.Time, step time.Duration, count int) []Set {
	sets := make([]Set, count)
	for i := range count {
		t := last.Add(-time.Duration(count-1-i) * step)
		sets[i] = Set{ID: id(t, i), Time: t, Committed: true}
	}
	return sets
}

func date(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func kept(ds []Decision) []string {
	var ids []string
	for _, d := range ds {
		if d.Keep {
			ids = append(ids, d.ID)
		}
	}
	return ids
}

// keptTimes returns the times of the kept sets, newest first, as RFC 3339 in UTC.
func keptTimes(ds []Decision) []string {
	var ts []string
	for _, d := range ds {
		if d.Keep {
			ts = append(ts, d.Time.UTC().Format(time.RFC3339))
		}
	}
	return ts
}

// perRule counts the sets each rule kept (by the first word of the reason).
func perRule(ds []Decision) map[string]int {
	n := map[string]int{}
	for _, d := range ds {
		for _, r := range d.Reasons {
			name, _, _ := strings.Cut(r, " ")
			n[strings.TrimSuffix(name, ":")]++
		}
	}
	return n
}

func TestSelectSimulatedYear(t *testing.T) {
	now := date("2026-11-27T03:30:00Z") // a Friday, ISO week 48
	last := date("2026-11-27T03:00:00Z")
	hourly := series(last, time.Hour, 400*24) // 2025-10-23T04:00Z .. 2026-11-27T03:00Z
	daily := series(last, 24*time.Hour, 400)  // 2025-10-24T03:00Z .. 2026-11-27T03:00Z

	tests := []struct {
		name    string
		sets    []Set
		policy  Policy
		perRule map[string]int
		kept    []string // times of the kept sets, newest first
	}{
		{
			name:   "hourly sets, full policy",
			sets:   hourly,
			policy: Policy{KeepLast: 3, Hourly: 24, Daily: 7, Weekly: 4, Monthly: 12, Yearly: 5},
			perRule: map[string]int{
				"newest": 1, "keep_last": 3, "hourly": 24, "daily": 7, "weekly": 4, "monthly": 12,
				// 2026 and 2025 are the only years; the oldest set is kept on top.
				"yearly": 3,
				"not":    400*24 - 43,
			},
			kept: append(hourlyRun("2026-11-27T03:00:00Z", 24),
				"2026-11-25T23:00:00Z", "2026-11-24T23:00:00Z", "2026-11-23T23:00:00Z", // daily
				"2026-11-22T23:00:00Z", "2026-11-21T23:00:00Z", // daily; 22nd is also the Sunday of W47
				"2026-11-15T23:00:00Z", "2026-11-08T23:00:00Z", // weekly W46, W45
				"2026-10-31T23:00:00Z", "2026-09-30T23:00:00Z", "2026-08-31T23:00:00Z", // monthly
				"2026-07-31T23:00:00Z", "2026-06-30T23:00:00Z", "2026-05-31T23:00:00Z",
				"2026-04-30T23:00:00Z", "2026-03-31T23:00:00Z", "2026-02-28T23:00:00Z",
				"2026-01-31T23:00:00Z", "2025-12-31T23:00:00Z", // monthly, and yearly 2025
				"2025-10-23T04:00:00Z", // yearly: the oldest set, only 2 of 5 years exist
			),
		},
		{
			name:    "hourly sets, keep_last only",
			sets:    hourly,
			policy:  Policy{KeepLast: 2},
			perRule: map[string]int{"newest": 1, "keep_last": 2, "not": 400*24 - 2},
			kept:    hourlyRun("2026-11-27T03:00:00Z", 2),
		},
		{
			name:    "hourly sets, monthly covers more months than exist",
			sets:    hourly,
			policy:  Policy{Monthly: 24},
			perRule: map[string]int{"newest": 1, "monthly": 15, "not": 400*24 - 15},
			kept: []string{
				"2026-11-27T03:00:00Z", "2026-10-31T23:00:00Z", "2026-09-30T23:00:00Z",
				"2026-08-31T23:00:00Z", "2026-07-31T23:00:00Z", "2026-06-30T23:00:00Z",
				"2026-05-31T23:00:00Z", "2026-04-30T23:00:00Z", "2026-03-31T23:00:00Z",
				"2026-02-28T23:00:00Z", "2026-01-31T23:00:00Z", "2025-12-31T23:00:00Z",
				"2025-11-30T23:00:00Z", "2025-10-31T23:00:00Z",
				"2025-10-23T04:00:00Z", // oldest: 14 of 24 months exist
			},
		},
		{
			name:    "daily sets, daily weekly monthly",
			sets:    daily,
			policy:  Policy{Daily: 7, Weekly: 4, Monthly: 6},
			perRule: map[string]int{"newest": 1, "daily": 7, "weekly": 4, "monthly": 6, "not": 400 - 14},
			kept: []string{
				"2026-11-27T03:00:00Z", "2026-11-26T03:00:00Z", "2026-11-25T03:00:00Z",
				"2026-11-24T03:00:00Z", "2026-11-23T03:00:00Z", "2026-11-22T03:00:00Z",
				"2026-11-21T03:00:00Z",                         // daily 7 (the 27th is also weekly W48 and monthly 11)
				"2026-11-15T03:00:00Z", "2026-11-08T03:00:00Z", // weekly W46, W45 (W47 is the 22nd)
				"2026-10-31T03:00:00Z", "2026-09-30T03:00:00Z", "2026-08-31T03:00:00Z",
				"2026-07-31T03:00:00Z", "2026-06-30T03:00:00Z", // monthly
			},
		},
		{
			name:    "daily sets, yearly all",
			sets:    daily,
			policy:  Policy{Yearly: -1},
			perRule: map[string]int{"newest": 1, "yearly": 2, "not": 398},
			kept:    []string{"2026-11-27T03:00:00Z", "2025-12-31T03:00:00Z"},
		},
		{
			name:    "daily sets, weekly in a zone east of UTC",
			sets:    daily[len(daily)-10:], // 2026-11-18 .. 2026-11-27, 03:00Z = 12:00 in Tokyo
			policy:  Policy{Weekly: 2, Location: mustLoad(t, "Asia/Tokyo")},
			perRule: map[string]int{"newest": 1, "weekly": 2, "not": 8},
			kept:    []string{"2026-11-27T03:00:00Z", "2026-11-22T03:00:00Z"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ds := Select(tc.sets, now, tc.policy)
			if len(ds) != len(tc.sets) {
				t.Fatalf("got %d decisions, want %d", len(ds), len(tc.sets))
			}
			if got := perRule(ds); !reflect.DeepEqual(got, tc.perRule) {
				t.Errorf("sets per rule: got %v, want %v", got, tc.perRule)
			}
			if got := keptTimes(ds); !slices.Equal(got, tc.kept) {
				t.Errorf("kept %d sets:\n%s\nwant %d:\n%s", len(got), strings.Join(got, "\n"), len(tc.kept), strings.Join(tc.kept, "\n"))
			}
			checkInvariants(t, tc.sets, now, ds)
		})
	}
}

// hourlyRun returns n hourly times ending at last, newest first.
func hourlyRun(last string, n int) []string {
	t := date(last)
	var ts []string
	for i := range n {
		ts = append(ts, t.Add(-time.Duration(i)*time.Hour).Format(time.RFC3339))
	}
	return ts
}

func mustLoad(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func TestSelectReasons(t *testing.T) {
	now := date("2026-11-27T03:30:00Z")
	sets := series(date("2026-11-27T03:00:00Z"), 24*time.Hour, 10)
	ds := Select(sets, now, Policy{KeepLast: 2, Daily: 3, Weekly: 2, Monthly: 1, Yearly: 1, Hourly: 1})
	want := map[string][]string{
		sets[9].ID: {ReasonNewest, "keep_last 1/2", "hourly 2026-11-27T03Z", "daily 2026-11-27", "weekly 2026-W48", "monthly 2026-11", "yearly 2026"},
		sets[8].ID: {"keep_last 2/2", "daily 2026-11-26"},
		sets[7].ID: {"daily 2026-11-25"},
		sets[4].ID: {"weekly 2026-W47"},
		sets[3].ID: {ReasonNotSelected},
		sets[0].ID: {ReasonNotSelected},
	}
	for _, d := range ds {
		w, ok := want[d.ID]
		if !ok {
			continue
		}
		if !slices.Equal(d.Reasons, w) {
			t.Errorf("%s: reasons %q, want %q", d.ID, d.Reasons, w)
		}
		if d.Keep != (w[0] != ReasonNotSelected) {
			t.Errorf("%s: keep %v, want %v", d.ID, d.Keep, !d.Keep)
		}
	}
}

func TestSelectEdgeCases(t *testing.T) {
	now := date("2026-11-27T03:30:00Z")
	t0 := date("2026-11-27T03:00:00Z")
	berlin := mustLoad(t, "Europe/Berlin")

	tests := []struct {
		name   string
		sets   []Set
		policy Policy
		kept   []string // IDs, newest first
		notes  map[string][]string
	}{
		{name: "empty input", sets: nil, policy: Policy{KeepLast: 3}, kept: nil},
		{
			name:   "one set, all-zero policy",
			sets:   []Set{{ID: "a", Time: t0, Committed: true}},
			policy: Policy{},
			kept:   []string{"a"},
			notes:  map[string][]string{"a": {ReasonNewest}},
		},
		{
			name: "all-zero policy keeps only the newest committed set",
			sets: []Set{
				{ID: "c", Time: t0, Committed: false},
				{ID: "b", Time: t0.Add(-time.Hour), Committed: true},
				{ID: "a", Time: t0.Add(-2 * time.Hour), Committed: true},
			},
			policy: Policy{},
			kept:   []string{"b"},
			notes: map[string][]string{
				"c": {ReasonUncommitted}, "b": {ReasonNewest}, "a": {ReasonNotSelected},
			},
		},
		{
			name:   "only uncommitted sets",
			sets:   []Set{{ID: "a", Time: t0}, {ID: "b", Time: t0.Add(-time.Hour)}},
			policy: Policy{KeepLast: 10, Daily: 10},
			kept:   nil,
			notes:  map[string][]string{"a": {ReasonUncommitted}, "b": {ReasonUncommitted}},
		},
		{
			name: "keep_last larger than the number of sets",
			sets: []Set{
				{ID: "b", Time: t0, Committed: true},
				{ID: "a", Time: t0.Add(-time.Hour), Committed: true},
			},
			policy: Policy{KeepLast: 5},
			kept:   []string{"b", "a"},
			notes: map[string][]string{
				"b": {ReasonNewest, "keep_last 1/5"}, "a": {"keep_last 2/5"},
			},
		},
		{
			name: "duplicates in the same second: the greater ID is the newer",
			sets: []Set{
				{ID: "20261127T030000Z-0001", Time: t0, Committed: true},
				{ID: "20261127T030000Z-ffff", Time: t0, Committed: true},
				{ID: "20261127T030000Z-8000", Time: t0, Committed: true},
			},
			policy: Policy{Daily: 1},
			kept:   []string{"20261127T030000Z-ffff"},
			notes: map[string][]string{
				"20261127T030000Z-0001": {ReasonNotSelected},
				"20261127T030000Z-8000": {ReasonNotSelected},
			},
		},
		{
			name: "one ID listed by two targets, committed on one",
			sets: []Set{
				{ID: "b", Time: t0, Committed: false},
				{ID: "a", Time: t0.Add(-time.Hour), Committed: true},
				{ID: "b", Time: t0, Committed: true},
			},
			policy: Policy{KeepLast: 1},
			kept:   []string{"b"},
			notes:  map[string][]string{"b": {ReasonNewest, "keep_last 1/1"}, "a": {ReasonNotSelected}},
		},
		{
			name: "uncommitted sets are never chosen by rules",
			sets: []Set{
				{ID: "c", Time: t0, Committed: false},
				{ID: "b", Time: t0.Add(-25 * time.Hour), Committed: false},
				{ID: "a", Time: t0.Add(-50 * time.Hour), Committed: true},
			},
			policy: Policy{KeepLast: 3, Daily: 3},
			kept:   []string{"a"},
			notes: map[string][]string{
				"c": {ReasonUncommitted}, "b": {ReasonUncommitted},
				"a": {ReasonNewest, "keep_last 1/3", "daily 2026-11-25"},
			},
		},
		{
			name: "a future-dated set is kept, flagged, and not counted by rules",
			sets: []Set{
				{ID: "z", Time: now.Add(2 * time.Hour), Committed: true},
				{ID: "b", Time: t0, Committed: true},
				{ID: "a", Time: t0.Add(-time.Hour), Committed: true},
			},
			policy: Policy{KeepLast: 1},
			kept:   []string{"z", "b"},
			notes: map[string][]string{
				"z": {"future-dated: 2026-11-27T05:30:00Z is after now (2026-11-27T03:30:00Z); check the clocks of the backup hosts"},
				"b": {ReasonNewest, "keep_last 1/1"},
				"a": {ReasonNotSelected},
			},
		},
		{
			// Berlin leaves summer time on 2026-10-25 at 03:00 CEST (01:00Z): the local hour 02
			// happens twice, and the local day has 25 hours.
			name:   "DST ends in Europe/Berlin: every real hour is an hourly period",
			sets:   hourlySets(date("2026-10-24T22:00:00Z"), 26), // local 10-25 00:00 CEST .. 10-25 23:00 CET
			policy: Policy{Hourly: 30, Location: berlin},
			kept:   reverse(idsOf(hourlySets(date("2026-10-24T22:00:00Z"), 26))),
			notes: map[string][]string{
				id(date("2026-10-25T00:00:00Z"), 2): {"hourly 2026-10-25T02+02:00"},
				id(date("2026-10-25T01:00:00Z"), 3): {"hourly 2026-10-25T02+01:00"},
			},
		},
		{
			name:   "DST ends in Europe/Berlin: a 25-hour day is one daily period",
			sets:   hourlySets(date("2026-10-24T20:00:00Z"), 30), // 10-24 22:00 CEST .. 10-26 02:00 CET
			policy: Policy{Daily: 5, Location: berlin},
			// newest of 10-26, 10-25 (23:00 CET), 10-24 (23:00 CEST), and the oldest set
			kept: []string{
				id(date("2026-10-26T01:00:00Z"), 29), id(date("2026-10-25T22:00:00Z"), 26),
				id(date("2026-10-24T21:00:00Z"), 1), id(date("2026-10-24T20:00:00Z"), 0),
			},
			notes: map[string][]string{
				id(date("2026-10-25T22:00:00Z"), 26): {"daily 2026-10-25"},
				id(date("2026-10-25T23:00:00Z"), 27): {ReasonNotSelected},
				id(date("2026-10-24T22:00:00Z"), 2):  {ReasonNotSelected}, // 00:00 CEST on the 25th
				id(date("2026-10-24T21:00:00Z"), 1):  {"daily 2026-10-24"},
				id(date("2026-10-24T20:00:00Z"), 0):  {"daily: oldest set (only 3 of 5 periods exist)"},
			},
		},
		{
			// Berlin starts summer time on 2026-03-29 at 02:00 CET (01:00Z): a 23-hour day.
			name:   "DST starts in Europe/Berlin: a 23-hour day is one daily period",
			sets:   hourlySets(date("2026-03-28T22:00:00Z"), 25), // 03-28 23:00 CET .. 03-30 00:00 CEST
			policy: Policy{Daily: 2, Location: berlin},
			kept:   []string{id(date("2026-03-29T22:00:00Z"), 24), id(date("2026-03-29T21:00:00Z"), 23)},
			notes: map[string][]string{
				id(date("2026-03-29T21:00:00Z"), 23): {"daily 2026-03-29"},
				id(date("2026-03-28T22:00:00Z"), 0):  {ReasonNotSelected},
			},
		},
		{
			name:   "the same sets in UTC: days split elsewhere",
			sets:   hourlySets(date("2026-03-28T22:00:00Z"), 25),
			policy: Policy{Daily: 2},
			kept:   []string{id(date("2026-03-29T22:00:00Z"), 24), id(date("2026-03-28T23:00:00Z"), 1)},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ds := Select(tc.sets, now, tc.policy)
			if got := kept(ds); !slices.Equal(got, tc.kept) {
				t.Errorf("kept %q, want %q", got, tc.kept)
			}
			for setID, want := range tc.notes {
				found := false
				for _, d := range ds {
					if d.ID == setID {
						found = true
						if !slices.Equal(d.Reasons, want) {
							t.Errorf("%s: reasons %q, want %q", setID, d.Reasons, want)
						}
					}
				}
				if !found {
					t.Errorf("%s: no decision", setID)
				}
			}
			checkInvariants(t, tc.sets, now, ds)
		})
	}
}

func hourlySets(first time.Time, n int) []Set {
	sets := make([]Set, n)
	for i := range n {
		tm := first.Add(time.Duration(i) * time.Hour)
		sets[i] = Set{ID: id(tm, i), Time: tm, Committed: true}
	}
	return sets
}

func idsOf(sets []Set) []string {
	var ids []string
	for _, s := range sets {
		ids = append(ids, s.ID)
	}
	return ids
}

func reverse(s []string) []string { slices.Reverse(s); return s }

// checkInvariants asserts what must hold for any input and policy.
func checkInvariants(t *testing.T, sets []Set, now time.Time, ds []Decision) {
	t.Helper()
	committed := map[string]bool{}
	var newest *Set
	for _, s := range sets {
		if s.Committed {
			committed[s.ID] = true
		}
	}
	for i, s := range sets {
		if committed[s.ID] && !s.Time.After(now) {
			if newest == nil || s.Time.After(newest.Time) || (s.Time.Equal(newest.Time) && s.ID > newest.ID) {
				newest = &sets[i]
			}
		}
	}
	seen := map[string]bool{}
	for i, d := range ds {
		if seen[d.ID] {
			t.Errorf("%s: decided twice", d.ID)
		}
		seen[d.ID] = true
		if len(d.Reasons) == 0 {
			t.Errorf("%s: no reason given", d.ID)
		}
		if !committed[d.ID] && (d.Keep || d.Committed || d.Reasons[0] != ReasonUncommitted) {
			t.Errorf("%s: uncommitted set decided as keep=%v committed=%v reasons=%q", d.ID, d.Keep, d.Committed, d.Reasons)
		}
		if d.Committed && d.Time.After(now) && !d.Keep {
			t.Errorf("%s: future-dated committed set not kept", d.ID)
		}
		if i > 0 && (d.Time.After(ds[i-1].Time) || d.Time.Equal(ds[i-1].Time) && d.ID > ds[i-1].ID) {
			t.Errorf("%s: decisions not ordered newest first", d.ID)
		}
	}
	if newest != nil {
		for _, d := range ds {
			if d.ID == newest.ID && !d.Keep {
				t.Errorf("newest committed set %s is not kept", d.ID)
			}
		}
	}
	for _, p := range Prunable(ds) {
		if !committed[p] {
			t.Errorf("Prunable lists uncommitted set %s", p)
		}
		if newest != nil && p == newest.ID {
			t.Errorf("Prunable lists the newest committed set %s", p)
		}
	}
}

// TestSelectInvariantsRandom runs random inputs and policies through Select: the newest
// committed set survives, uncommitted sets are never kept or pruned, and the order of the
// input does not change the answer.
func TestSelectInvariantsRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	now := date("2026-11-27T03:30:00Z")
	zones := []*time.Location{nil, mustLoad(t, "America/New_York"), mustLoad(t, "Asia/Kolkata")}
	for run := range 300 {
		n := rng.IntN(60)
		sets := make([]Set, n)
		for i := range sets {
			tm := now.Add(-time.Duration(rng.Int64N(int64(90 * 24 * time.Hour)))).Truncate(time.Second)
			if rng.IntN(30) == 0 {
				tm = now.Add(time.Duration(rng.IntN(3600)+1) * time.Second)
			}
			if rng.IntN(10) == 0 && i > 0 {
				tm = sets[i-1].Time // duplicates in the same second
			}
			sets[i] = Set{ID: id(tm, rng.IntN(0x10000)), Time: tm, Committed: rng.IntN(4) != 0}
		}
		pick := func() int { return []int{0, 0, 1, 2, 5, -1}[rng.IntN(6)] }
		p := Policy{KeepLast: pick(), Hourly: pick(), Daily: pick(), Weekly: pick(), Monthly: pick(), Yearly: pick(), Location: zones[rng.IntN(len(zones))]}

		ds := Select(sets, now, p)
		t.Run(fmt.Sprintf("run%d", run), func(t *testing.T) { checkInvariants(t, sets, now, ds) })

		shuffled := slices.Clone(sets)
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		if again := Select(shuffled, now, p); !reflect.DeepEqual(again, ds) {
			t.Fatalf("run %d: the order of the input changed the decisions (policy %v)", run, p)
		}
	}
}

func TestSelectDoesNotModifyInput(t *testing.T) {
	now := date("2026-11-27T03:30:00Z")
	sets := series(date("2026-11-27T03:00:00Z"), time.Hour, 50)
	rand.New(rand.NewPCG(3, 4)).Shuffle(len(sets), func(i, j int) { sets[i], sets[j] = sets[j], sets[i] })
	before := slices.Clone(sets)
	Select(sets, now, Policy{Daily: 2})
	if !slices.Equal(sets, before) {
		t.Error("Select reordered or changed its input")
	}
}

func TestPrunableAndKeep(t *testing.T) {
	now := date("2026-11-27T03:30:00Z")
	t0 := date("2026-11-27T03:00:00Z")
	sets := []Set{
		{ID: "e", Time: t0},
		{ID: "d", Time: t0.Add(-1 * time.Hour), Committed: true},
		{ID: "c", Time: t0.Add(-2 * time.Hour), Committed: true},
		{ID: "b", Time: t0.Add(-3 * time.Hour)},
		{ID: "a", Time: t0.Add(-4 * time.Hour), Committed: true},
	}
	ds := Select(sets, now, Policy{})
	if got, want := Prunable(ds), []string{"a", "c"}; !slices.Equal(got, want) {
		t.Errorf("Prunable: got %q, want %q", got, want)
	}
	Keep(ds, "in use by a running drill", "c", "b", "unknown")
	if got, want := Prunable(ds), []string{"a"}; !slices.Equal(got, want) {
		t.Errorf("Prunable after Protect: got %q, want %q", got, want)
	}
	for _, d := range ds {
		switch d.ID {
		case "c":
			if want := []string{"in use by a running drill"}; !d.Keep || !slices.Equal(d.Reasons, want) {
				t.Errorf("c: keep %v reasons %q, want keep with %q", d.Keep, d.Reasons, want)
			}
		case "b":
			if d.Keep {
				t.Error("b: Protect kept an uncommitted set; it is the garbage collector's")
			}
		}
	}
}

func TestStaleUncommitted(t *testing.T) {
	now := date("2026-11-27T03:30:00Z")
	sets := []Set{
		{ID: "young", Time: now.Add(-time.Hour)},
		{ID: "old2", Time: now.Add(-30 * time.Hour)},
		{ID: "committed", Time: now.Add(-50 * time.Hour), Committed: true},
		{ID: "old1", Time: now.Add(-48 * time.Hour)},
		{ID: "both", Time: now.Add(-72 * time.Hour)},
		{ID: "both", Time: now.Add(-72 * time.Hour), Committed: true}, // committed on another target
		{ID: "future", Time: now.Add(time.Hour)},
		{ID: "edge", Time: now.Add(-24 * time.Hour)}, // exactly the threshold: not older
	}
	if got, want := StaleUncommitted(sets, now, 24*time.Hour), []string{"old1", "old2"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if got := StaleUncommitted(nil, now, time.Hour); got != nil {
		t.Errorf("empty input: got %q, want nil", got)
	}
}

func TestSummary(t *testing.T) {
	now := date("2026-11-27T03:30:00Z")
	t0 := date("2026-11-27T03:00:00Z")
	sets := []Set{
		{ID: "20261127T040000Z-0b2e", Time: t0.Add(2 * time.Hour), Committed: true},
		{ID: "20261127T031500Z-77c1", Time: t0.Add(15 * time.Minute)},
		{ID: "20261127T030000Z-3f9a", Time: t0, Committed: true},
		{ID: "20261126T030000Z-1111", Time: t0.Add(-24 * time.Hour), Committed: true},
		{ID: "20261125T030000Z-2222", Time: t0.Add(-48 * time.Hour), Committed: true},
	}
	got := Summary(Select(sets, now, Policy{KeepLast: 1, Daily: 2}))
	want := `keep    20261127T040000Z-0b2e  future-dated: 2026-11-27T05:00:00Z is after now (2026-11-27T03:30:00Z); check the clocks of the backup hosts
ignore  20261127T031500Z-77c1  uncommitted (left to garbage collection)
keep    20261127T030000Z-3f9a  newest committed set; keep_last 1/1; daily 2026-11-27
keep    20261126T030000Z-1111  daily 2026-11-26
delete  20261125T030000Z-2222  not selected by any rule
3 to keep, 1 to delete, 1 uncommitted left alone, 1 dated in the future (check the clocks)
`
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	if got, want := Summary(nil), "0 to keep, 0 to delete\n"; got != want {
		t.Errorf("empty: got %q, want %q", got, want)
	}
}

func TestPolicyString(t *testing.T) {
	tests := []struct {
		p    Policy
		want string
	}{
		{Policy{}, "only the newest committed set (UTC)"},
		{Policy{KeepLast: 3, Daily: 7, Yearly: -1, Location: mustLoad(t, "Europe/Berlin")}, "keep_last 3, daily 7, yearly all (Europe/Berlin)"},
	}
	for _, tc := range tests {
		if got := tc.p.String(); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}

// TestSelectKeepsNewestProven: keep_last 1 after a series of unproven sets still keeps the
// newest set that passed verify or a drill, and only that one of the proven sets.
func TestSelectKeepsNewestProven(t *testing.T) {
	now := date("2026-12-05T12:00:00Z")
	sets := series(now.Add(-time.Hour), time.Hour, 6) // oldest first
	sets[1].Proven = true
	sets[3].Proven = true
	// The same set listed by a second target without the proof still counts as proven.
	sets = append(sets, Set{ID: sets[3].ID, Time: sets[3].Time, Committed: true})
	// A proven set in the future takes no part: it cannot pin anything.
	future := now.Add(time.Hour)
	sets = append(sets, Set{ID: id(future, 99), Time: future, Committed: true, Proven: true})

	ds := Select(sets, now, Policy{KeepLast: 1})
	got := kept(ds)
	want := []string{id(future, 99), sets[5].ID, sets[3].ID}
	if !slices.Equal(got, want) {
		t.Fatalf("kept %v, want %v", got, want)
	}
	for _, d := range ds {
		if d.ID == sets[3].ID && !slices.Contains(d.Reasons, ReasonProven) {
			t.Errorf("%s reasons %v, want %q among them", d.ID, d.Reasons, ReasonProven)
		}
	}

	// When the newest set is itself the newest proven one, nothing older is pinned.
	sets[5].Proven = true
	if got := kept(Select(sets[:6], now, Policy{KeepLast: 1})); !slices.Equal(got, []string{sets[5].ID}) {
		t.Fatalf("kept %v, want only the newest", got)
	}
}
