package backupset

import (
	"context"
	"fmt"

	"github.com/backupd/backupd/internal/targets"
)

// DeleteSet removes one set from a target: its manifest first, so that from the first
// deletion on the set is uncommitted and invisible to list, restore and retention, then every
// other object under its prefix. Interrupted at any point, it leaves an uncommitted set that
// garbage collection finishes later — never a committed set with objects missing. It returns
// how many objects and bytes it removed. An object under object lock retention fails it with
// targets.ErrLocked.
func DeleteSet(ctx context.Context, t Target, policy, id string) (objects int, bytes int64, err error) {
	if !ValidPolicyName(policy) || !ValidID(id) {
		return 0, 0, fmt.Errorf("delete set %q of policy %q: not a valid set", id, policy)
	}
	if err := t.Delete(ctx, ManifestKey(policy, id)); err != nil {
		return 0, 0, fmt.Errorf("delete set %s: uncommit it: %w", id, err)
	}
	var keys []targets.ObjectInfo
	err = t.List(ctx, Prefix(policy, id), func(oi targets.ObjectInfo) error {
		keys = append(keys, oi)
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("delete set %s: %w", id, err)
	}
	for _, oi := range keys {
		if err := t.Delete(ctx, oi.Key); err != nil {
			return objects, bytes, fmt.Errorf("delete set %s: %w", id, err)
		}
		objects++
		bytes += oi.Size
	}
	return objects, bytes, nil
}
