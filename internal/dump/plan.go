package dump

import (
	"math/bits"
	"strconv"
)

// Chunk planning: a table with an integer key is split into half-open key ranges of roughly
// ChunkBytes of data each. The first range has no lower bound and the last no upper bound, so a
// row is never missed when statistics are stale or MIN/MAX moved; the ranges partition the key
// space, so a row is never dumped twice. Planning is a pure function of the numbers below.

// planInput is what the planner knows about one table. Keys use the order-preserving unsigned
// encoding of keyEncode, so one code path handles signed and unsigned columns of any width.
type planInput struct {
	Empty        bool   // MIN(key) and MAX(key) were NULL: no rows in the snapshot
	Min, Max     uint64 // encoded MIN(key) and MAX(key), read inside the snapshot
	Rows         int64  // information_schema TABLE_ROWS (an estimate for InnoDB, may be 0)
	AvgRowLength int64  // information_schema AVG_ROW_LENGTH
	DataLength   int64  // information_schema DATA_LENGTH
	ChunkBytes   int64  // target size of one chunk
}

// keyRange selects key >= Lo (when HasLo) and key < Hi (when HasHi), in the encoded domain.
type keyRange struct {
	HasLo, HasHi bool
	Lo, Hi       uint64
}

// maxChunksPerTable bounds the plan for absurd statistics.
const maxChunksPerTable = 1 << 20

// planChunks splits a table into key ranges; it returns one unbounded range when the table is
// small, empty or its size unknown.
func planChunks(in planInput) []keyRange {
	whole := []keyRange{{}}
	if in.Empty || in.ChunkBytes <= 0 || in.Max <= in.Min {
		return whole
	}
	est := estimateBytes(in.Rows, in.AvgRowLength, in.DataLength)
	if est <= in.ChunkBytes {
		return whole
	}
	// Statistics may be stale, so the row estimate does not cap the count: an empty range
	// costs one index lookup and writes no object.
	n := uint64((est + in.ChunkBytes - 1) / in.ChunkBytes)
	// There are Max-Min+1 distinct keys, so at most Max-Min boundaries strictly above Min.
	if span := in.Max - in.Min; n > span {
		n = span + 1
	}
	if n > maxChunksPerTable {
		n = maxChunksPerTable
	}
	if n < 2 {
		return whole
	}
	// Boundary i is Min + floor(keys * i / n), for i in 1..n-1, where keys = Max-Min+1 is the
	// number of possible key values; computed in 128 bits so it cannot overflow even for the
	// full unsigned BIGINT range (keys = 2^64).
	keysLo, keysHi := bits.Add64(in.Max-in.Min, 1, 0)
	ranges := make([]keyRange, 0, n)
	prev, hasPrev := uint64(0), false
	for i := uint64(1); i < n; i++ {
		hi, lo := bits.Mul64(keysLo, i)
		hi += keysHi * i
		q, _ := bits.Div64(hi, lo, n)
		b := in.Min + q
		if b <= in.Min || (hasPrev && b <= prev) {
			continue
		}
		ranges = append(ranges, keyRange{HasLo: hasPrev, Lo: prev, HasHi: true, Hi: b})
		prev, hasPrev = b, true
	}
	if !hasPrev {
		return whole
	}
	return append(ranges, keyRange{HasLo: true, Lo: prev})
}

// estimateBytes guesses a table's size from statistics that may be stale or zero.
func estimateBytes(rows, avg, data int64) int64 {
	est := data
	if rows > 0 && avg > 0 {
		if hi, lo := bits.Mul64(uint64(rows), uint64(avg)); hi == 0 && lo < 1<<62 && int64(lo) > est {
			est = int64(lo)
		}
	}
	return est
}

// keyEncode maps a signed key to the unsigned domain preserving order; unsigned keys map to
// themselves.
func keyEncodeSigned(v int64) uint64 { return uint64(v) ^ (1 << 63) }

// keyLiteral renders an encoded key as an SQL integer literal.
func keyLiteral(v uint64, unsigned bool) string {
	if unsigned {
		return strconv.FormatUint(v, 10)
	}
	return strconv.FormatInt(int64(v^(1<<63)), 10)
}

// where renders the range as an SQL condition on the quoted column, "" for the whole table.
func (r keyRange) where(col string, unsigned bool) string {
	switch {
	case r.HasLo && r.HasHi:
		return col + " >= " + keyLiteral(r.Lo, unsigned) + " AND " + col + " < " + keyLiteral(r.Hi, unsigned)
	case r.HasLo:
		return col + " >= " + keyLiteral(r.Lo, unsigned)
	case r.HasHi:
		return col + " < " + keyLiteral(r.Hi, unsigned)
	}
	return ""
}
