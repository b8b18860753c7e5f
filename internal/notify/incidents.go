package notify

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"
)

// Action is what to send after an observation.
type Action int

const (
	// ActionNone: nothing to send; the state did not change in a way people need to hear about.
	ActionNone Action = iota
	// ActionAlert: an incident opened (or its earlier alert could not be delivered).
	ActionAlert
	// ActionRecover: an incident that people were told about has cleared.
	ActionRecover
)

func (a Action) String() string {
	switch a {
	case ActionNone:
		return "none"
	case ActionAlert:
		return "alert"
	case ActionRecover:
		return "recover"
	}
	return fmt.Sprintf("Action(%d)", int(a))
}

// maxDetail bounds the failure detail kept in the state file.
const maxDetail = 2000

// Incident is one problem, from the first failing observation until the first ok one.
type Incident struct {
	Key        string    `json:"key"` // e.g. "nightly/backup_failed"
	Opened     time.Time `json:"opened"`
	LastFailed time.Time `json:"last_failed"`
	Failures   int       `json:"failures"`         // failing observations so far
	Detail     string    `json:"detail,omitempty"` // of the latest failure, e.g. the error
	// Alerted is when the alert went out; zero while it is still owed (it was never sent, or
	// its delivery failed).
	Alerted time.Time `json:"alerted,omitzero"`
	// Cleared is when the first ok observation came; non-zero only in an incident whose
	// recovery notice is still owed.
	Cleared time.Time `json:"cleared,omitzero"`
}

// Incidents decides when to speak about a stream of observations per key: one alert when a
// key starts failing, nothing while it keeps failing, one recovery notice when it is ok again.
// It does no I/O and reads no clock (every call takes now), and it serializes to JSON so that a
// restarted daemon neither repeats an alert nor forgets to send the recovery notice.
//
// Delivery is at most once: Observe assumes the notice it asks for will be sent. When sending
// fails, call Undelivered and the next observation asks again. (With several channels, call it
// only when every channel failed: one working channel has told people, and asking again would
// repeat the message there.)
//
// The zero value is ready to use; an Incidents is safe for concurrent use.
type Incidents struct {
	mu sync.Mutex
	m  map[string]*Incident // failing, or cleared with the recovery notice owed
}

// Observe records whether key is failing at now, with detail (e.g. the error text) for a
// failure, and says what to send. The Incident returned is a copy describing the incident the
// action is about (zero with ActionNone when there is none).
func (s *Incidents) Observe(now time.Time, key string, failing bool, detail string) (Action, Incident) {
	s.mu.Lock()
	defer s.mu.Unlock()
	inc := s.m[key]
	if failing {
		if inc == nil {
			if s.m == nil {
				s.m = map[string]*Incident{}
			}
			inc = &Incident{Key: key, Opened: now}
			s.m[key] = inc
		}
		inc.LastFailed = now
		inc.Failures++
		inc.Detail = truncate(detail, maxDetail)
		// Failing again before the recovery notice went out: people were never told it had
		// cleared, so it simply goes on.
		inc.Cleared = time.Time{}
		if inc.Alerted.IsZero() {
			inc.Alerted = now
			return ActionAlert, *inc
		}
		return ActionNone, *inc
	}

	if inc == nil {
		return ActionNone, Incident{}
	}
	delete(s.m, key)
	if inc.Alerted.IsZero() {
		// Over before anyone could be told: a recovery notice for an alert nobody received
		// would only confuse.
		return ActionNone, *inc
	}
	if inc.Cleared.IsZero() {
		inc.Cleared = now
	}
	return ActionRecover, *inc
}

// Undelivered records that the notice for action a about inc (as returned by Observe) could not
// be sent, so that the next observation of its key asks for it again.
func (s *Incidents) Undelivered(inc Incident, a Action) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.m[inc.Key]
	switch a {
	case ActionAlert:
		if cur != nil && cur.Opened.Equal(inc.Opened) {
			cur.Alerted = time.Time{}
		}
	case ActionRecover:
		// A newer incident on the key has already been announced; this notice is moot.
		if cur == nil {
			if s.m == nil {
				s.m = map[string]*Incident{}
			}
			c := inc
			s.m[inc.Key] = &c
		}
	}
}

// Open returns the incidents that are failing now, sorted by key: what a status page shows.
func (s *Incidents) Open() []Incident {
	s.mu.Lock()
	defer s.mu.Unlock()
	var open []Incident
	for _, k := range slices.Sorted(maps.Keys(s.m)) {
		if s.m[k].Cleared.IsZero() {
			open = append(open, *s.m[k])
		}
	}
	return open
}

// Forget drops whatever is known about key, e.g. when its policy was removed from the config.
func (s *Incidents) Forget(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, key)
}

// incidentsVersion is bumped when a field changes meaning.
const incidentsVersion = 1

type incidentsJSON struct {
	Version   int        `json:"version"`
	Incidents []Incident `json:"incidents"`
}

// MarshalJSON implements json.Marshaler: the state for the daemon's state directory.
func (s *Incidents) MarshalJSON() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := incidentsJSON{Version: incidentsVersion, Incidents: []Incident{}}
	for _, k := range slices.Sorted(maps.Keys(s.m)) {
		st.Incidents = append(st.Incidents, *s.m[k])
	}
	return json.Marshal(st)
}

// UnmarshalJSON implements json.Unmarshaler, replacing the current state.
func (s *Incidents) UnmarshalJSON(b []byte) error {
	var st incidentsJSON
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("read incident state: %w", err)
	}
	if st.Version != incidentsVersion {
		return fmt.Errorf("read incident state: version %d, want %d (written by another backupd version?); delete the file to start afresh", st.Version, incidentsVersion)
	}
	m := make(map[string]*Incident, len(st.Incidents))
	for i := range st.Incidents {
		inc := st.Incidents[i]
		if inc.Key == "" {
			return fmt.Errorf("read incident state: incident %d has no key", i)
		}
		m[inc.Key] = &inc
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m = m
	return nil
}
