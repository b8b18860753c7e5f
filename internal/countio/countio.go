// Package countio counts the bytes that pass through a reader: for size checks against a
// manifest, progress totals, and transfer metrics.
package countio

import "io"

// Reader passes reads through from R and counts their bytes in N. Add, when not nil, also
// hears each read's count as it happens, so a long read shows progress in a shared total or
// in metrics instead of one jump at the end. Not safe for concurrent reads (nor is R).
type Reader struct {
	R   io.Reader
	N   int64
	Add func(n int64)
}

func (c *Reader) Read(p []byte) (int, error) {
	n, err := c.R.Read(p)
	c.N += int64(n)
	if c.Add != nil {
		c.Add(int64(n))
	}
	return n, err
}
