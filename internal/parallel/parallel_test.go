package parallel

import (
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
)

// Every element is visited once, whatever the chunk.
func TestForCoversOnce(t *testing.T) {
	for _, c := range []struct{ n, chunk int }{{0, 4}, {1, 4}, {4, 4}, {5, 4}, {1000, 7}, {1 << 16, 1 << 10}, {10, 0}} {
		seen := make([]int32, c.n)
		var calls atomic.Int32
		For(c.n, c.chunk, func(lo, hi int) {
			calls.Add(1)
			for i := lo; i < hi; i++ {
				atomic.AddInt32(&seen[i], 1)
			}
		})
		for i, v := range seen {
			assert.Equal(t, int32(1), v, "n=%d chunk=%d: element %d", c.n, c.chunk, i)
		}
		if c.n == 0 {
			assert.Zero(t, calls.Load())
		}
	}
}
