package kernels

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestMeasureBandwidth(t *testing.T) {
	for _, threads := range []int{1, 2, 3} {
		withThreads(t, threads, func() {
			bw := MeasureBandwidth(4<<20, time.Millisecond)
			assert.Greater(t, bw, 1e6, "threads=%d: a 4 MB read takes less than 4 s", threads)
			assert.Less(t, bw, 1e13, "threads=%d: no machine reads 10 TB/s", threads)
		})
	}
	assert.Positive(t, MeasureBandwidth(0, 0), "a tiny size still streams 1 MiB")
}
