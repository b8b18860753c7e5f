package dump

import (
	"math"
	"testing"
)

func TestPlanChunks(t *testing.T) {
	const mib = 1 << 20
	s := keyEncodeSigned
	tests := []struct {
		name     string
		in       planInput
		want     int      // number of ranges
		wantBnds []uint64 // boundaries, when checked exactly
	}{
		{name: "empty table", in: planInput{Empty: true, Rows: 1000, AvgRowLength: 1000, ChunkBytes: mib}, want: 1},
		{name: "one row", in: planInput{Min: s(7), Max: s(7), Rows: 1, AvgRowLength: 100 * mib, ChunkBytes: mib}, want: 1},
		{name: "statistics say 0", in: planInput{Min: s(1), Max: s(1e9), ChunkBytes: mib}, want: 1},
		{name: "small table", in: planInput{Min: s(1), Max: s(1000), Rows: 1000, AvgRowLength: 100, ChunkBytes: mib}, want: 1},
		{name: "ten chunks", in: planInput{Min: s(1), Max: s(1000001), Rows: 1e6, AvgRowLength: 100, ChunkBytes: 10e6}, want: 10,
			wantBnds: []uint64{s(100001), s(200001), s(300001), s(400001), s(500001), s(600001), s(700001), s(800001), s(900001)}},
		{name: "rows 0 but data length known", in: planInput{Min: s(1), Max: s(400), DataLength: 4 * mib, ChunkBytes: mib}, want: 4,
			wantBnds: []uint64{s(101), s(201), s(301)}},
		{name: "stale row count far below the truth", in: planInput{Min: s(1), Max: s(1e6), Rows: 1, AvgRowLength: 16, DataLength: 100 * mib, ChunkBytes: 10 * mib}, want: 10},
		{name: "negative keys", in: planInput{Min: s(-1000), Max: s(1000), Rows: 2001, AvgRowLength: 1000, ChunkBytes: 500_000}, want: 5,
			wantBnds: []uint64{s(-600), s(-200), s(200), s(600)}},
		{name: "huge sparse signed range", in: planInput{Min: s(math.MinInt64), Max: s(math.MaxInt64), Rows: 1000, AvgRowLength: 1000, ChunkBytes: 250_000}, want: 4,
			wantBnds: []uint64{s(math.MinInt64 / 2), s(0), s(math.MaxInt64/2 + 1)}},
		{name: "unsigned BIGINT up to its maximum", in: planInput{Min: 0, Max: math.MaxUint64, Rows: 3e9, AvgRowLength: 100, ChunkBytes: 100e9}, want: 3,
			wantBnds: []uint64{math.MaxUint64 / 3, math.MaxUint64 / 3 * 2}},
		{name: "more chunks wanted than keys exist", in: planInput{Min: s(1), Max: s(3), Rows: 3, AvgRowLength: 100 * mib, ChunkBytes: mib}, want: 3,
			wantBnds: []uint64{s(2), s(3)}},
		{name: "two keys", in: planInput{Min: s(10), Max: s(11), Rows: 2, AvgRowLength: 100 * mib, ChunkBytes: mib}, want: 2,
			wantBnds: []uint64{s(11)}},
		{name: "absurd statistics are capped", in: planInput{Min: 0, Max: math.MaxUint64, Rows: math.MaxInt64, AvgRowLength: math.MaxInt64, DataLength: math.MaxInt64, ChunkBytes: 1}, want: maxChunksPerTable},
		{name: "no chunk size", in: planInput{Min: s(1), Max: s(1e6), Rows: 1e6, AvgRowLength: 100}, want: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := planChunks(tt.in)
			if len(got) != tt.want {
				t.Fatalf("got %d ranges, want %d: %+v", len(got), tt.want, got[:min(len(got), 5)])
			}
			// The ranges partition the key space: open at both ends, contiguous, increasing,
			// and every boundary inside (Min, Max].
			if got[0].HasLo || got[len(got)-1].HasHi {
				t.Errorf("first range %+v / last range %+v: want both ends open", got[0], got[len(got)-1])
			}
			var bnds []uint64
			for i := 0; i+1 < len(got); i++ {
				if !got[i].HasHi || !got[i+1].HasLo || got[i].Hi != got[i+1].Lo {
					t.Fatalf("ranges %d and %d are not contiguous: %+v %+v", i, i+1, got[i], got[i+1])
				}
				b := got[i].Hi
				if b <= tt.in.Min || b > tt.in.Max || (i > 0 && b <= got[i-1].Hi) {
					t.Fatalf("boundary %d = %d: want increasing and in (%d, %d]", i, b, tt.in.Min, tt.in.Max)
				}
				bnds = append(bnds, b)
			}
			if tt.wantBnds != nil {
				for i := range tt.wantBnds {
					if i >= len(bnds) || bnds[i] != tt.wantBnds[i] {
						t.Fatalf("boundaries: got %v, want %v", bnds, tt.wantBnds)
					}
				}
			}
		})
	}
}

func TestKeyRangeWhere(t *testing.T) {
	s := keyEncodeSigned
	tests := []struct {
		r        keyRange
		unsigned bool
		want     string
	}{
		{keyRange{}, false, ""},
		{keyRange{HasHi: true, Hi: s(-5)}, false, "`k` < -5"},
		{keyRange{HasLo: true, Lo: s(math.MinInt64), HasHi: true, Hi: s(0)}, false, "`k` >= -9223372036854775808 AND `k` < 0"},
		{keyRange{HasLo: true, Lo: s(math.MaxInt64)}, false, "`k` >= 9223372036854775807"},
		{keyRange{HasLo: true, Lo: math.MaxUint64}, true, "`k` >= 18446744073709551615"},
		{keyRange{HasLo: true, Lo: 0, HasHi: true, Hi: 1 << 63}, true, "`k` >= 0 AND `k` < 9223372036854775808"},
	}
	for _, tt := range tests {
		if got := tt.r.where("`k`", tt.unsigned); got != tt.want {
			t.Errorf("%+v unsigned=%v: got %q, want %q", tt.r, tt.unsigned, got, tt.want)
		}
	}
}

func TestEstimateBytes(t *testing.T) {
	tests := []struct{ rows, avg, data, want int64 }{
		{0, 0, 0, 0},
		{10, 100, 0, 1000},
		{10, 100, 5000, 5000},
		{math.MaxInt64, math.MaxInt64, 7, 7}, // overflow: fall back to data length
	}
	for _, tt := range tests {
		if got := estimateBytes(tt.rows, tt.avg, tt.data); got != tt.want {
			t.Errorf("estimateBytes(%d, %d, %d): got %d, want %d", tt.rows, tt.avg, tt.data, got, tt.want)
		}
	}
}
