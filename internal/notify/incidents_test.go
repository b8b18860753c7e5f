package notify

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// step is one event in an incident test: an observation (and what it must ask for), a failed
// delivery of the last notice, or a restart through the JSON state.
type step struct {
	key     string
	fail    bool
	want    Action
	undeliv bool // the notice asked for by the previous step could not be sent
	restart bool // persist and reload the state
}

func TestIncidents(t *testing.T) {
	const k, k2 = "nightly/backup_failed", "nightly/stale"
	obs := func(fail bool, want Action) step { return step{key: k, fail: fail, want: want} }
	tests := []struct {
		name     string
		steps    []step
		wantOpen []string // keys open at the end
	}{
		{
			name:  "ok all along: silence",
			steps: []step{obs(false, ActionNone), obs(false, ActionNone)},
		},
		{
			name: "one alert, silence while failing, one recovery",
			steps: []step{
				obs(false, ActionNone),
				obs(true, ActionAlert), obs(true, ActionNone), obs(true, ActionNone), obs(true, ActionNone),
				obs(false, ActionRecover), obs(false, ActionNone), obs(false, ActionNone),
			},
		},
		{
			name: "a second incident after recovery alerts again",
			steps: []step{
				obs(true, ActionAlert), obs(false, ActionRecover),
				obs(true, ActionAlert), obs(true, ActionNone),
			},
			wantOpen: []string{k},
		},
		{
			name: "keys are independent",
			steps: []step{
				obs(true, ActionAlert),
				{key: k2, fail: true, want: ActionAlert},
				obs(true, ActionNone),
				{key: k2, fail: false, want: ActionRecover},
				obs(true, ActionNone),
			},
			wantOpen: []string{k},
		},
		{
			name: "a restart neither repeats the alert nor forgets the recovery",
			steps: []step{
				obs(true, ActionAlert), {restart: true}, obs(true, ActionNone), {restart: true}, obs(false, ActionRecover),
				{restart: true}, obs(false, ActionNone),
			},
		},
		{
			name: "an undelivered alert is asked for again",
			steps: []step{
				obs(true, ActionAlert), {undeliv: true}, {restart: true},
				obs(true, ActionAlert), obs(true, ActionNone), obs(false, ActionRecover),
			},
		},
		{
			name: "an incident over before its alert went out ends silently",
			steps: []step{
				obs(true, ActionAlert), {undeliv: true}, obs(false, ActionNone), obs(false, ActionNone),
			},
		},
		{
			name: "an undelivered recovery is asked for again",
			steps: []step{
				obs(true, ActionAlert), obs(false, ActionRecover), {undeliv: true}, {restart: true},
				obs(false, ActionRecover), obs(false, ActionNone),
			},
		},
		{
			name: "failing again before the recovery went out continues the incident",
			steps: []step{
				obs(true, ActionAlert), obs(false, ActionRecover), {undeliv: true},
				obs(true, ActionNone), obs(true, ActionNone), obs(false, ActionRecover),
			},
		},
		{
			name: "a recovery owed is not an open incident",
			steps: []step{
				obs(true, ActionAlert), obs(false, ActionRecover), {undeliv: true},
			},
		},
		{
			name: "an undelivered recovery made moot by a new incident is dropped",
			steps: []step{
				obs(true, ActionAlert), obs(false, ActionRecover),
				// The daemon got round to reporting the failed recovery only after a new
				// failure had been seen and alerted.
				obs(true, ActionAlert), {undeliv: true, key: "recover-of-first"},
				obs(true, ActionNone), obs(false, ActionRecover),
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &Incidents{}
			now := time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)
			var last Incident
			var lastAction Action
			var firstRecover Incident
			for i, st := range tc.steps {
				now = now.Add(time.Minute)
				switch {
				case st.restart:
					b, err := json.Marshal(s)
					if err != nil {
						t.Fatal(err)
					}
					s = &Incidents{}
					if err := json.Unmarshal(b, s); err != nil {
						t.Fatalf("step %d: reload %s: %v", i, b, err)
					}
				case st.undeliv && st.key == "recover-of-first":
					s.Undelivered(firstRecover, ActionRecover)
				case st.undeliv:
					s.Undelivered(last, lastAction)
				default:
					a, inc := s.Observe(now, st.key, st.fail, fmt.Sprintf("failure at step %d", i))
					if a != st.want {
						t.Fatalf("step %d (%s failing=%v): got %v, want %v", i, st.key, st.fail, a, st.want)
					}
					if a != ActionNone && inc.Key != st.key {
						t.Errorf("step %d: incident key %q, want %q", i, inc.Key, st.key)
					}
					if a == ActionRecover && firstRecover.Key == "" {
						firstRecover = inc
					}
					last, lastAction = inc, a
				}
			}
			var open []string
			for _, inc := range s.Open() {
				open = append(open, inc.Key)
			}
			if strings.Join(open, ",") != strings.Join(tc.wantOpen, ",") {
				t.Errorf("open at the end: got %q, want %q", open, tc.wantOpen)
			}
		})
	}
}

func TestIncidentRecord(t *testing.T) {
	s := &Incidents{}
	t0 := time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)
	s.Observe(t0, "p/backup_failed", true, "first error")
	s.Observe(t0.Add(time.Hour), "p/backup_failed", true, "second error")
	_, inc := s.Observe(t0.Add(2*time.Hour), "p/backup_failed", true, strings.Repeat("x", 5000))
	if inc.Failures != 3 || !inc.Opened.Equal(t0) || !inc.LastFailed.Equal(t0.Add(2*time.Hour)) || !inc.Alerted.Equal(t0) {
		t.Errorf("incident: got %+v", inc)
	}
	if len(inc.Detail) > maxDetail+len("…") {
		t.Errorf("detail is %d bytes; it must be bounded", len(inc.Detail))
	}
	a, inc := s.Observe(t0.Add(3*time.Hour), "p/backup_failed", false, "")
	if a != ActionRecover || !inc.Cleared.Equal(t0.Add(3*time.Hour)) || inc.Failures != 3 {
		t.Errorf("recovery: got %v %+v", a, inc)
	}
	if got := s.Open(); len(got) != 0 {
		t.Errorf("open after recovery: %+v", got)
	}
}

func TestIncidentsJSON(t *testing.T) {
	s := &Incidents{}
	t0 := time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)
	s.Observe(t0, "b/stale", true, "no backup for 26h")
	s.Observe(t0, "a/backup_failed", true, "dump: connection refused")
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"version":1,"incidents":[` +
		`{"key":"a/backup_failed","opened":"2026-11-27T03:00:00Z","last_failed":"2026-11-27T03:00:00Z","failures":1,"detail":"dump: connection refused","alerted":"2026-11-27T03:00:00Z"},` +
		`{"key":"b/stale","opened":"2026-11-27T03:00:00Z","last_failed":"2026-11-27T03:00:00Z","failures":1,"detail":"no backup for 26h","alerted":"2026-11-27T03:00:00Z"}]}`
	if string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}
	b, _ = json.Marshal(&Incidents{})
	if got, want := string(b), `{"version":1,"incidents":[]}`; got != want {
		t.Errorf("empty: got %s, want %s", got, want)
	}

	for _, bad := range []string{`{"version":2,"incidents":[]}`, `{"version":1,"incidents":[{"opened":"2026-11-27T03:00:00Z"}]}`, `[`} {
		if err := json.Unmarshal([]byte(bad), &Incidents{}); err == nil {
			t.Errorf("%s: loaded without error", bad)
		}
	}
}

func TestIncidentsForget(t *testing.T) {
	s := &Incidents{}
	now := time.Now()
	s.Observe(now, "gone/backup_failed", true, "x")
	s.Forget("gone/backup_failed")
	if a, _ := s.Observe(now, "gone/backup_failed", false, ""); a != ActionNone {
		t.Errorf("after Forget, an ok observation asked for %v", a)
	}
}

func TestIncidentsConcurrent(t *testing.T) {
	s := &Incidents{}
	now := time.Now()
	var alerts sync.Map
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				key := fmt.Sprintf("p%d/backup_failed", i%4)
				if a, _ := s.Observe(now, key, true, ""); a == ActionAlert {
					if _, dup := alerts.LoadOrStore(key, g); dup {
						t.Errorf("%s alerted twice", key)
					}
				}
				if i%50 == 0 {
					if _, err := json.Marshal(s); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
	wg.Wait()
	if n := len(s.Open()); n != 4 {
		t.Errorf("open incidents: got %d, want 4", n)
	}
}
