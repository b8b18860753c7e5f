package backupset

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/backupd/backupd/internal/targets"
)

// protectPrefix holds one marker per user of a set: <policy>/locks/protect/<set-id>/<holder>.
func protectPrefix(policy string) string { return LocksPrefix(policy) + "protect/" }

// Protection is a marker saying that a set is in use (a restore or a drill reads it) and must
// not be pruned until it expires. Retention on every host honours it.
type Protection struct {
	Key     string    `json:"-"`
	SetID   string    `json:"set_id"`
	Holder  string    `json:"holder"` // what uses the set, e.g. "restore" or "drill"
	Host    string    `json:"host"`
	PID     int       `json:"pid"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
}

// Hold is a protection this process wrote; Renew it while the work lasts longer than its
// time to live, and Release it when done.
type Hold struct {
	t      Target
	policy string
	p      Protection
	now    func() time.Time
}

// Protect marks set id of policy as in use by holder for ttl. The marker is a small mutable
// object (never under object lock); a process that dies without releasing it stops protecting
// the set once ttl has passed. now is the injected clock (time.Now when nil).
func Protect(ctx context.Context, t Target, policy, id, holder string, ttl time.Duration, now func() time.Time) (*Hold, error) {
	if !ValidPolicyName(policy) || !ValidID(id) {
		return nil, fmt.Errorf("protect set %q of policy %q: not a valid set", id, policy)
	}
	if holder == "" || strings.ContainsAny(holder, "/\\\x00") {
		return nil, fmt.Errorf("protect set %s: holder %q must be a plain word", id, holder)
	}
	var b [4]byte
	rand.Read(b[:])
	host, _ := os.Hostname()
	if now == nil {
		now = time.Now
	}
	created := now().UTC()
	h := &Hold{t: t, policy: policy, now: now, p: Protection{
		Key:     protectPrefix(policy) + id + "/" + holder + "-" + hex.EncodeToString(b[:]) + ".json",
		SetID:   id,
		Holder:  holder,
		Host:    host,
		PID:     os.Getpid(),
		Created: created,
		Expires: created.Add(ttl),
	}}
	if err := h.write(ctx); err != nil {
		return nil, err
	}
	return h, nil
}

func (h *Hold) write(ctx context.Context) error {
	data, err := json.Marshal(h.p)
	if err != nil {
		return err
	}
	if err := targets.PutMutable(ctx, h.t, h.p.Key, data); err != nil {
		return fmt.Errorf("protect set %s: %w", h.p.SetID, err)
	}
	return nil
}

// Renew extends the protection to ttl from now.
func (h *Hold) Renew(ctx context.Context, ttl time.Duration) error {
	h.p.Expires = h.now().UTC().Add(ttl)
	return h.write(ctx)
}

// Release removes the marker.
func (h *Hold) Release(ctx context.Context) error {
	if err := h.t.Delete(ctx, h.p.Key); err != nil {
		return fmt.Errorf("release the protection of set %s: %w", h.p.SetID, err)
	}
	return nil
}

// Protections returns the protection markers of a policy's sets on one target, by set ID,
// with expired ones in expired (for the caller to delete). A marker that cannot be read
// protects its set anyway for a day after it was written: a torn read must not let a set in
// use be deleted.
func Protections(ctx context.Context, t Target, policy string, now time.Time) (active map[string][]Protection, expired []Protection, err error) {
	active = map[string][]Protection{}
	var infos []targets.ObjectInfo
	err = t.List(ctx, protectPrefix(policy), func(oi targets.ObjectInfo) error {
		infos = append(infos, oi)
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("list protection markers of policy %s: %w", policy, err)
	}
	for _, oi := range infos {
		rest := strings.TrimPrefix(oi.Key, protectPrefix(policy))
		id, _, ok := strings.Cut(rest, "/")
		if !ok || !ValidID(id) {
			continue
		}
		p, rerr := readProtection(ctx, t, oi.Key)
		if errors.Is(rerr, targets.ErrNotFound) {
			continue // released meanwhile
		}
		if rerr != nil {
			// Unreadable: assume it protects for a day after it was written.
			p = Protection{SetID: id, Holder: "a marker that could not be read (" + rerr.Error() + ")", Expires: oi.ModTime.Add(24 * time.Hour)}
		}
		p.Key, p.SetID = oi.Key, id
		if now.Before(p.Expires) {
			active[id] = append(active[id], p)
		} else {
			expired = append(expired, p)
		}
	}
	for _, ps := range active {
		sort.Slice(ps, func(i, j int) bool { return ps[i].Key < ps[j].Key })
	}
	return active, expired, nil
}

func readProtection(ctx context.Context, t Target, key string) (Protection, error) {
	var p Protection
	rc, err := t.Get(ctx, key)
	if err != nil {
		return p, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, 64<<10))
	if err != nil {
		return p, fmt.Errorf("read %s: %w", key, err)
	}
	if err := json.Unmarshal(data, &p); err != nil {
		return p, fmt.Errorf("parse %s: %w", key, err)
	}
	return p, nil
}

// Reason describes the protection for retention's report.
func (p Protection) Reason() string {
	who := p.Holder
	if p.Host != "" {
		who += " on " + p.Host
	}
	return fmt.Sprintf("in use by %s (protected until %s)", who, p.Expires.UTC().Format(time.RFC3339))
}
