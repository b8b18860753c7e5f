package drill

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/backupd/backupd/internal/backupset"
	"github.com/backupd/backupd/internal/targets"
)

// Reports live beside the sets on every target of the policy, so the history survives the host
// and the loss of any one target:
//
//	<policy>/drills/<drill ID>.json   the report (Report, as JSON)
//	<policy>/drills/<drill ID>.html   the same report as the mail's HTML
//
// A drill ID is <start time>-<set ID>-<random> (e.g.
// 20261130T060000Z-20261130T030000Z-3f9a-7c21; "none" instead of a set ID when the target had
// no set), so keys sort by time and two drills never share one.

// TrendLength is how many drills the report's trend shows, this one included.
const TrendLength = 10

// Milliseconds, at fixed width, so that keys sort by start time even for drills started in the
// same second (History with a limit reads only the last keys).
const idTimeLayout = "20060102T150405.000Z"

// DrillsPrefix is where a policy's drill reports are stored on each target.
func DrillsPrefix(policy string) string { return policy + "/drills/" }

func reportKey(policy, id, ext string) string { return DrillsPrefix(policy) + id + ext }

func drillID(start time.Time, setID string) string {
	if setID == "" {
		setID = "none"
	}
	return start.UTC().Format(idTimeLayout) + "-" + setID + "-" + randomHex(2)
}

// Summary is one past drill as `drill history` lists it.
type Summary struct {
	ID         string    `json:"id"`
	StartedAt  time.Time `json:"started_at"`
	Result     string    `json:"result"`
	Reasons    []string  `json:"reasons,omitempty"`
	Target     string    `json:"target"`
	SetID      string    `json:"set_id,omitempty"`
	RTOSeconds float64   `json:"rto_seconds"`
	RPOSeconds float64   `json:"rpo_seconds"`
	Bytes      int64     `json:"bytes"` // the set's plain size
	Host       string    `json:"host"`
	StoredOn   []string  `json:"stored_on"` // targets that hold the report
}

func summaryOf(r *Report) Summary {
	s := Summary{ID: r.ID, StartedAt: r.StartedAt, Result: r.Result, Reasons: r.Reasons, Target: r.Target,
		RTOSeconds: r.RTOSeconds, RPOSeconds: r.RPOSeconds, Host: r.Host}
	if r.Set != nil {
		s.SetID, s.Bytes = r.Set.ID, r.Set.PlainBytes
	}
	return s
}

func (s Summary) trendPoint() TrendPoint {
	return TrendPoint{ID: s.ID, At: s.StartedAt, Result: s.Result, Target: s.Target, SetID: s.SetID,
		RTOSeconds: s.RTOSeconds, RPOSeconds: s.RPOSeconds, Bytes: s.Bytes}
}

// History reads the drill reports of a policy from every target and merges them, oldest
// first. limit > 0 reads only the newest limit reports of each target. A target that cannot be
// read is reported in the error while the others' reports are still returned; the error is
// nil when every target answered.
func History(ctx context.Context, dests []backupset.Dest, policy string, limit int) ([]Summary, error) {
	type answer struct {
		sums []Summary
		err  error
	}
	answers := make([]answer, len(dests))
	var wg sync.WaitGroup
	for i, d := range dests {
		wg.Go(func() {
			sums, err := targetHistory(ctx, d.Target, policy, limit)
			if err != nil {
				err = fmt.Errorf("target %s: %w", d.Name, err)
			}
			answers[i] = answer{sums, err}
		})
	}
	wg.Wait()
	byID := map[string]*Summary{}
	var errs []error
	for i, a := range answers {
		if a.err != nil {
			errs = append(errs, a.err)
		}
		for _, s := range a.sums {
			if have := byID[s.ID]; have != nil {
				have.StoredOn = append(have.StoredOn, dests[i].Name)
				continue
			}
			s.StoredOn = []string{dests[i].Name}
			byID[s.ID] = &s
		}
	}
	out := make([]Summary, 0, len(byID))
	for _, s := range byID {
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].StartedAt.Equal(out[j].StartedAt) {
			return out[i].StartedAt.Before(out[j].StartedAt)
		}
		return out[i].ID < out[j].ID
	})
	if limit > 0 && len(out) > limit {
		out = out[len(out)-limit:]
	}
	return out, errors.Join(errs...)
}

func targetHistory(ctx context.Context, t backupset.Target, policy string, limit int) ([]Summary, error) {
	var keys []string
	err := t.List(ctx, DrillsPrefix(policy), func(oi targets.ObjectInfo) error {
		if strings.HasSuffix(oi.Key, ".json") {
			keys = append(keys, oi.Key)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list drill reports: %w", err)
	}
	sort.Strings(keys)
	if limit > 0 && len(keys) > limit {
		keys = keys[len(keys)-limit:]
	}
	var out []Summary
	var errs []error
	for _, k := range keys {
		r, err := readReport(ctx, t, k)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, summaryOf(r))
	}
	return out, errors.Join(errs...)
}

func readReport(ctx context.Context, t backupset.Target, key string) (*Report, error) {
	var r Report
	if err := backupset.ReadJSON(ctx, t, key, 64<<20, &r); err != nil {
		return nil, err
	}
	if r.ID == "" || r.Version > ReportVersion {
		return nil, fmt.Errorf("%s is not a drill report this backupd can read (version %d)", key, r.Version)
	}
	return &r, nil
}

// NextTarget is the rotation: the target after the one the newest drill in history read
// (history oldest first), in the policy's order; the first target when there is no history or
// the last target drilled is no longer in the policy.
func NextTarget(policyTargets []string, history []Summary) string {
	if len(policyTargets) == 0 {
		return ""
	}
	for i := len(history) - 1; i >= 0; i-- {
		for j, t := range policyTargets {
			if t == history[i].Target {
				return policyTargets[(j+1)%len(policyTargets)]
			}
		}
		break
	}
	return policyTargets[0]
}

// store writes the report (JSON and HTML) to every target; it returns the targets that hold it
// and the errors of the others.
func store(ctx context.Context, dests []backupset.Dest, r *Report, html string) ([]string, []error) {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, []error{fmt.Errorf("encode the report: %w", err)}
	}
	errs := make([]error, len(dests))
	var wg sync.WaitGroup
	for i, d := range dests {
		wg.Go(func() {
			// The HTML first: a report is listed by its JSON, which then always has its page.
			if html != "" {
				k := reportKey(r.Policy, r.ID, ".html")
				if err := d.Target.Put(ctx, k, strings.NewReader(html), int64(len(html))); err != nil {
					errs[i] = fmt.Errorf("store the drill report on target %s: %w", d.Name, err)
					return
				}
			}
			k := reportKey(r.Policy, r.ID, ".json")
			if err := d.Target.Put(ctx, k, bytes.NewReader(data), int64(len(data))); err != nil {
				errs[i] = fmt.Errorf("store the drill report on target %s: %w", d.Name, err)
			}
		})
	}
	wg.Wait()
	var ok []string
	var failed []error
	for i, err := range errs {
		if err != nil {
			failed = append(failed, err)
		} else {
			ok = append(ok, dests[i].Name)
		}
	}
	return ok, failed
}

// LastRun returns when the newest finished drill of the policy started, as the drill history on
// its targets shows (zero when there is none): the daemon's catch-up compares it with the last
// tick of the drill schedule.
func LastRun(ctx context.Context, dests []backupset.Dest, policy string) (time.Time, error) {
	hist, err := History(ctx, dests, policy, 1)
	if len(hist) == 0 {
		return time.Time{}, err
	}
	return hist[len(hist)-1].StartedAt, nil
}
