package restore

import (
	"sync"
	"sync/atomic"
	"time"
)

// Restore phases, in order, as Progress reports them.
const (
	PhasePrepare = "prepare"
	PhaseDrop    = "drop"
	PhaseSchema  = "schema"
	PhaseData    = "data"
	PhaseVerify  = "verify"
	PhasePost    = "post"
	PhaseUsers   = "users"
	PhaseDone    = "done"
)

// Progress is a snapshot of a running restore.
type Progress struct {
	Phase          string
	Bytes          int64 // plain SQL bytes loaded so far (all phases)
	TotalBytes     int64
	TablesLoaded   int // tables whose every data object is loaded
	TablesVerified int
	Tables         int // tables to load
	Elapsed        time.Duration
	// ETA is the estimated time to the end of loading, from the rate so far; zero when unknown.
	ETA time.Duration
}

// tracker counts what the workers did; Progress snapshots it.
type tracker struct {
	bytes    atomic.Int64
	loaded   atomic.Int64
	verified atomic.Int64
	total    int64
	tables   int
	start    time.Time
	now      func() time.Time

	mu    sync.Mutex
	phase string
}

func (t *tracker) setPhase(p string) {
	t.mu.Lock()
	t.phase = p
	t.mu.Unlock()
}

func (t *tracker) snapshot() Progress {
	t.mu.Lock()
	phase := t.phase
	t.mu.Unlock()
	p := Progress{
		Phase:          phase,
		Bytes:          t.bytes.Load(),
		TotalBytes:     t.total,
		TablesLoaded:   int(t.loaded.Load()),
		TablesVerified: int(t.verified.Load()),
		Tables:         t.tables,
		Elapsed:        t.now().Sub(t.start),
	}
	if p.Bytes > 0 && p.Bytes < p.TotalBytes && p.Elapsed > time.Second {
		rate := float64(p.Bytes) / p.Elapsed.Seconds()
		p.ETA = time.Duration(float64(p.TotalBytes-p.Bytes) / rate * float64(time.Second)).Round(time.Second)
	}
	return p
}

// report calls fn every interval until stop is closed, then once more; the returned channel is
// closed when it has finished.
func (t *tracker) report(fn func(Progress), interval time.Duration, stop <-chan struct{}) <-chan struct{} {
	done := make(chan struct{})
	if fn == nil {
		close(done)
		return done
	}
	go func() {
		defer close(done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				fn(t.snapshot())
			case <-stop:
				return
			}
		}
	}()
	return done
}
