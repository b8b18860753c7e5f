package daemon

import (
	"context"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/backupset"
	"github.com/backupd/backupd/internal/dump"
	"github.com/backupd/backupd/internal/targets"
)

func dumpWith(tables map[string]int64) *dump.Result {
	r := &dump.Result{}
	db := dump.Database{Name: "shop"}
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for k := range tables {
			if !yield(k) {
				return
			}
		}
	}) {
		db.Tables = append(db.Tables, dump.Table{Name: name, Type: dump.TypeTable, Rows: tables[name]})
		r.Rows += tables[name]
		r.Bytes += tables[name] * 100
	}
	db.Tables = append(db.Tables, dump.Table{Name: "a_view", Type: dump.TypeView})
	r.Databases = []dump.Database{db}
	return r
}

func TestShrinkage(t *testing.T) {
	prev := dumpWith(map[string]int64{"orders": 10000, "customers": 2000, "settings": 5})
	for _, tc := range []struct {
		name      string
		cur       map[string]int64
		threshold float64
		want      []string // substrings, one per finding, in order
	}{
		{"steady", map[string]int64{"orders": 10100, "customers": 2000, "settings": 5}, 0.5, nil},
		{"small table emptied is not news", map[string]int64{"orders": 10000, "customers": 2000, "settings": 0}, 0.5, nil},
		{"one table shrank", map[string]int64{"orders": 10000, "customers": 900, "settings": 5}, 0.5,
			[]string{"table shop.customers: 2000 -> 900 rows (-55%)"}},
		{"just at the threshold is not past it", map[string]int64{"orders": 10000, "customers": 1000, "settings": 5}, 0.5, nil},
		{"table dropped", map[string]int64{"orders": 10000, "settings": 5}, 0.5,
			[]string{"table shop.customers: 2000 rows -> missing from the set"}},
		{"everything shrank", map[string]int64{"orders": 100, "customers": 20, "settings": 5}, 0.5,
			[]string{"rows of the whole set", "size of the whole set", "table shop.customers", "table shop.orders"}},
		{"lower threshold", map[string]int64{"orders": 6000, "customers": 2000, "settings": 5}, 0.25,
			[]string{"rows of the whole set: 12005 -> 8005 (-33%)", "size of the whole set", "table shop.orders: 10000 -> 6000 rows (-40%)"}},
		{"off", map[string]int64{"orders": 1}, 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := shrinkage(prev, dumpWith(tc.cur), tc.threshold)
			if len(got) != len(tc.want) {
				t.Fatalf("got %q, want %d findings like %q", got, len(tc.want), tc.want)
			}
			for i, w := range tc.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("finding %d: got %q, want it to contain %q", i, got[i], w)
				}
			}
		})
	}
}

// TestSetKeysSkipsOtherAreas: the daemon's listing sees the same sets as backupset.SetKeys,
// without the storage, drill and lock areas.
func TestSetKeysSkipsOtherAreas(t *testing.T) {
	dir := t.TempDir()
	tgt, err := targets.Open("d", targets.Spec{Type: "dir", Path: dir}, targets.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	now := time.Now()
	a, b := backupset.NewID(now.Add(-time.Hour)), backupset.NewID(now)
	fakeSet(t, dir, "p", a, true, now.Add(-time.Hour))
	fakeSet(t, dir, "p", b, false, now)
	for _, k := range []string{"p/blobs/ab/abcdef.pack", "p/drills/x.json", "p/locks/backup/y.json", "p2/20261127T030000Z-aaaa/manifest.json"} {
		if err := tgt.Put(ctx, k, strings.NewReader("x"), 1); err != nil {
			t.Fatal(err)
		}
	}
	want, err := backupset.SetKeys(ctx, tgt, "p")
	if err != nil {
		t.Fatal(err)
	}
	got, err := backupset.SetKeysOnly(ctx, tgt, "p")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) || len(got) != 2 {
		t.Errorf("got %+v, want %+v", got, want)
	}
}
