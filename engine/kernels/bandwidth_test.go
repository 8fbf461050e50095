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

func TestMeasurePeakFLOPs(t *testing.T) {
	if active.fmaLoop == nil {
		assert.Zero(t, MeasurePeakFLOPs(time.Millisecond), "no assembly: no measurement")
		return
	}
	one := 0.0
	withThreads(t, 1, func() { one = MeasurePeakFLOPs(20 * time.Millisecond) })
	// A core does at least one 8-lane FMA per ns and fewer than 1e12 flops.
	assert.Greater(t, one, 1e9, "one thread")
	assert.Less(t, one, 1e12, "one thread")
	for _, im := range impls() {
		if im.fmaLoop != nil {
			im.fmaLoop(0) // zero rounds return at once
			im.fmaLoop(3)
		}
	}
}

// The bandwidth reader really reads all four streams: small integers sum
// exactly in any order.
func TestSum4(t *testing.T) {
	for _, im := range impls() {
		for _, k := range []int{16, 48, 1024} {
			a, b, c, d := make([]float32, k), make([]float32, k), make([]float32, k), make([]float32, k)
			for i := range k {
				a[i], b[i], c[i], d[i] = 1, 2, 3, float32(i%5)
			}
			want := float32(6*k) + float32(k/5*10)
			for i := k / 5 * 5; i < k; i++ {
				want += float32(i % 5)
			}
			assert.Equal(t, want, im.sum4(a, b, c, d), "%s k=%d", im.name, k)
		}
	}
}
