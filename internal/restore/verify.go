package restore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"filippo.io/age"

	"github.com/backupd/backupd/internal/backupset"
	"github.com/backupd/backupd/internal/seal"
)

// ObjectCheck is the verdict on one object's copy on one target.
type ObjectCheck struct {
	Target string
	Object backupset.Object
	Err    error
}

// VerifyResult sums up Verify.
type VerifyResult struct {
	SetID    string
	Checked  int
	Failed   int
	Bytes    int64
	Duration time.Duration
}

// Verify downloads every object of a set from each of the given targets, checks its size and
// SHA-256 against the manifest, and decrypts and decompresses it to nowhere. It needs no
// database. report is called once per object and target, from several goroutines in turn
// (calls are serialised). It also checks that the manifest lists every object the dump names
// (reported with an empty Target). Identities that cannot decrypt the set stop it at the first
// object with ErrWrongIdentity: every other object would fail the same way.
func Verify(ctx context.Context, m *backupset.Manifest, holders []backupset.Dest, ids []age.Identity, threads int, report func(ObjectCheck)) (VerifyResult, error) {
	start := time.Now()
	res := VerifyResult{SetID: m.SetID}
	if threads < 1 {
		threads = 1
	}
	var mu sync.Mutex
	if missing := missingObjects(m); len(missing) > 0 {
		for _, name := range missing {
			res.Checked++
			res.Failed++
			if report != nil {
				report(ObjectCheck{Object: backupset.Object{Name: name}, Err: fmt.Errorf("the dump lists %s but the manifest does not: the set is damaged", name)})
			}
		}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	type job struct {
		d backupset.Dest
		o backupset.Object
	}
	jobs := make(chan job)
	var wg sync.WaitGroup
	for range threads {
		wg.Go(func() {
			for j := range jobs {
				err := backupset.CheckObject(ctx, j.d.Target, m.Policy, m.SetID, j.o, ids)
				if errors.Is(err, seal.ErrWrongKey) {
					cancel(withKind(ErrWrongIdentity, fmt.Errorf("the identity given cannot decrypt set %s, which is encrypted to %s: pass --identity FILE (or set encryption.identity_file) with the matching private key",
						m.SetID, shortKeys(m.Recipients))))
					continue
				}
				if ctx.Err() != nil {
					continue
				}
				mu.Lock()
				res.Checked++
				res.Bytes += j.o.Size
				if err != nil {
					res.Failed++
				}
				if report != nil {
					report(ObjectCheck{Target: j.d.Name, Object: j.o, Err: err})
				}
				mu.Unlock()
			}
		})
	}
feed:
	for _, d := range holders {
		for _, o := range m.Objects {
			select {
			case jobs <- job{d, o}:
			case <-ctx.Done():
				break feed
			}
		}
	}
	close(jobs)
	wg.Wait()
	res.Duration = time.Since(start)
	if ctx.Err() != nil {
		return res, context.Cause(ctx)
	}
	if res.Failed > 0 {
		return res, fmt.Errorf("set %s: %d of %d object copies failed verification", m.SetID, res.Failed, res.Checked)
	}
	return res, nil
}

// missingObjects lists objects the dump describes that the manifest does not hold.
func missingObjects(m *backupset.Manifest) []string {
	res, err := dumpOf(m)
	if err != nil {
		return nil // a set without a dump has nothing to cross-check
	}
	have := make(map[string]bool, len(m.Objects))
	for _, o := range m.Objects {
		have[o.Name] = true
	}
	var out []string
	for _, d := range res.Databases {
		for _, o := range d.Objects {
			if !have[o.Key] {
				out = append(out, o.Key)
			}
		}
	}
	if res.Users != nil && !have[res.Users.Key] {
		out = append(out, res.Users.Key)
	}
	return out
}
