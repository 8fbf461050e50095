package kernels

import "time"

// MeasureBandwidth streams a buffer of size bytes (rounded down to whole
// cache lines, four streams per thread; at least 1 MiB) on the MatMul pool's
// threads for about d and returns the best read rate seen, in bytes per
// second. A decode step that reads every weight once can go no faster than
// this rate divided by the weight bytes: the bound decode speed is quoted
// against. The buffer is freed on return.
func MeasureBandwidth(size int, d time.Duration) float64 {
	size = max(size, 1<<20)
	buf := make([]float32, size/4)
	for i := range buf {
		buf[i] = 1
	}
	return bestRate(d, func() float64 {
		var bytes int
		defaultPool.run(func(id, n int) {
			if id == 0 {
				bytes = streamBytes(len(buf), n)
			}
			streamPart(buf, id, n) // through a func value: never optimised away
		})
		return float64(bytes)
	})
}

// streamPart reads thread id's share of buf (of n threads) as four
// streams at once, the way the decode kernel reads four weight panels.
func streamPart(buf []float32, id, n int) float32 {
	q := len(buf) / n / 64 * 16 // a quarter share, whole cache lines
	if q == 0 {
		return 0
	}
	lo := id * 4 * q
	return active.sum4(buf[lo:lo+q], buf[lo+q:lo+2*q], buf[lo+2*q:lo+3*q], buf[lo+3*q:lo+4*q])
}

// streamBytes is how many bytes of a buffer of n32 floats the n threads'
// streamParts read together.
func streamBytes(n32, n int) int { return n32 / n / 64 * 16 * 4 * n * 4 }

// bestRate calls run (which returns the units of work it did) repeatedly
// for about d, at least once, and returns the best units per second seen.
func bestRate(d time.Duration, run func() float64) float64 {
	best := 0.0
	start := time.Now()
	for first := true; first || time.Since(start) < d; first = false {
		t0 := time.Now()
		units := run()
		if s := time.Since(t0).Seconds(); s > 0 {
			best = max(best, units/s)
		}
	}
	return best
}

// MeasurePeakFLOPs runs independent vector fused multiply-adds on every
// thread of the MatMul pool for about d and returns the best float32 rate
// seen, in flops per second: the ceiling of any float32 matrix product on
// this machine with the active kernels (a batched decode step or a prefill
// can go no faster than this over its flops). It returns 0 where the active
// implementation has no assembly to measure it with.
func MeasurePeakFLOPs(d time.Duration) float64 {
	im := active
	if im.fmaLoop == nil {
		return 0
	}
	const iters = 1 << 20
	return bestRate(d, func() float64 {
		var parts int
		defaultPool.run(func(id, n int) {
			if id == 0 {
				parts = n
			}
			im.fmaLoop(iters)
		})
		return float64(parts) * iters * float64(im.fmaLoopFlops)
	})
}
