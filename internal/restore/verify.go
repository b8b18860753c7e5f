package restore

import (
	"context"
	"fmt"
	"sync"
	"time"

	"filippo.io/age"

	"github.com/backupd/backupd/internal/backupset"
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
// (calls are serialised).
func Verify(ctx context.Context, m *backupset.Manifest, holders []backupset.Dest, ids []age.Identity, threads int, report func(ObjectCheck)) (VerifyResult, error) {
	start := time.Now()
	res := VerifyResult{SetID: m.SetID}
	if threads < 1 {
		threads = 1
	}
	type job struct {
		d backupset.Dest
		o backupset.Object
	}
	jobs := make(chan job)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range threads {
		wg.Go(func() {
			for j := range jobs {
				err := backupset.CheckObject(ctx, j.d.Target, m.Policy, m.SetID, j.o, ids)
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
	if err := ctx.Err(); err != nil {
		return res, err
	}
	if res.Failed > 0 {
		return res, fmt.Errorf("set %s: %d of %d object copies failed verification", m.SetID, res.Failed, res.Checked)
	}
	return res, nil
}
