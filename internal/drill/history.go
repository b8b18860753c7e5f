package drill

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/backupd/backupd/internal/backupset"
	"github.com/backupd/backupd/internal/signing"
	"github.com/backupd/backupd/internal/targets"
)

// Reports live beside the sets on every target of the policy, so the history survives the host
// and the loss of any one target:
//
//	<policy>/drills/<drill ID>.json       the report (Report, as JSON)
//	<policy>/drills/<drill ID>.json.sig   SSH signature (signing.NamespaceDrillReport) of its exact bytes
//	<policy>/drills/<drill ID>.html       the same report as the mail's HTML, for people
//
// Only reports whose signature verifies against a trusted key exist as far as History, LastRun,
// rotation, trend and catch-up are concerned: anyone with write access to a bucket could
// otherwise steer the rotation, fake a passed drill, or hide the last one.
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
// first. Only reports signed by a key v trusts are returned; the others are skipped and logged
// once each (slog's default logger) as untrusted with the reason. limit > 0 returns only the
// newest limit trusted reports of each target. A target that cannot be read is reported in the
// error while the others' reports are still returned; the error is nil when every target
// answered.
func History(ctx context.Context, dests []backupset.Dest, policy string, limit int, v *signing.Verifier) ([]Summary, error) {
	type answer struct {
		sums []Summary
		err  error
	}
	answers := make([]answer, len(dests))
	var wg sync.WaitGroup
	for i, d := range dests {
		wg.Go(func() {
			sums, err := targetHistory(ctx, d, policy, limit, v)
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

// maxReportSize bounds the read of one report's JSON.
const maxReportSize = 64 << 20

func targetHistory(ctx context.Context, d backupset.Dest, policy string, limit int, v *signing.Verifier) ([]Summary, error) {
	t := d.Target
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
	// Newest first, until limit trusted reports: forged reports must not push real ones out.
	var out []Summary
	var errs []error
	for i := len(keys) - 1; i >= 0 && (limit <= 0 || len(out) < limit); i-- {
		k := keys[i]
		r, err := readReport(ctx, t, k, v)
		var ue *untrustedReportError
		if errors.As(err, &ue) {
			logUntrusted(d.Name, k, ue.err)
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, summaryOf(r))
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, errors.Join(errs...)
}

// untrustedReportError: a report that does not verify against a trusted key.
type untrustedReportError struct {
	key string
	err error
}

func (e *untrustedReportError) Error() string {
	return fmt.Sprintf("drill report %s is not trusted: %v", e.key, e.err)
}

func (e *untrustedReportError) Unwrap() error { return e.err }

// untrustedLogged holds the reports already logged as untrusted, so that each is logged once
// per process however often the history is read.
var untrustedLogged sync.Map

func logUntrusted(target, key string, err error) {
	if _, seen := untrustedLogged.LoadOrStore(target+"\x00"+key, true); seen {
		return
	}
	slog.Default().Warn("ignoring a drill report that is not signed by a trusted key; it may have been planted",
		"target", target, "object", key, "error", err)
}

func readLimited(ctx context.Context, t backupset.Target, key string, limit int64) ([]byte, error) {
	rc, err := t.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", key, limit)
	}
	return data, nil
}

// readReport reads a report and its signature, verifies it and only then decodes it.
func readReport(ctx context.Context, t backupset.Target, key string, v *signing.Verifier) (*Report, error) {
	data, err := readLimited(ctx, t, key, maxReportSize)
	if err != nil {
		return nil, err
	}
	sig, err := readLimited(ctx, t, key+signing.SignatureSuffix, signing.MaxSignatureSize)
	switch {
	case errors.Is(err, targets.ErrNotFound):
		return nil, &untrustedReportError{key, signing.ErrUnsigned}
	case err != nil:
		return nil, err
	}
	if v == nil {
		return nil, &untrustedReportError{key, errors.New("no signing key is trusted")}
	}
	if _, err := v.Verify(signing.NamespaceDrillReport, data, sig); err != nil {
		return nil, &untrustedReportError{key, err}
	}
	var r Report
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("parse %s: %w", key, err)
	}
	if r.ID == "" || r.Version > ReportVersion {
		return nil, fmt.Errorf("%s is not a drill report this backupd can read (version %d)", key, r.Version)
	}
	if want := reportKey(r.Policy, r.ID, ".json"); want != key {
		// A signed report copied under another name or policy.
		return nil, &untrustedReportError{key, fmt.Errorf("its signed content is report %s", want)}
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
func store(ctx context.Context, dests []backupset.Dest, r *Report, html string, signer *signing.Signer) ([]string, []error) {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, []error{fmt.Errorf("encode the report: %w", err)}
	}
	if signer == nil {
		return nil, []error{errors.New("the drill report was not stored: this host has no signing key to sign it with (signing.key_file)")}
	}
	sig, err := signer.Sign(signing.NamespaceDrillReport, data)
	if err != nil {
		return nil, []error{fmt.Errorf("sign the drill report: %w", err)}
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
			// The signature before the JSON, which then always has it.
			k := reportKey(r.Policy, r.ID, ".json")
			if err := d.Target.Put(ctx, k+signing.SignatureSuffix, bytes.NewReader(sig), int64(len(sig))); err != nil {
				errs[i] = fmt.Errorf("store the drill report's signature on target %s: %w", d.Name, err)
				return
			}
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
// tick of the drill schedule. Only reports signed by a key v trusts count.
func LastRun(ctx context.Context, dests []backupset.Dest, policy string, v *signing.Verifier) (time.Time, error) {
	hist, err := History(ctx, dests, policy, 1, v)
	if len(hist) == 0 {
		return time.Time{}, err
	}
	return hist[len(hist)-1].StartedAt, nil
}
