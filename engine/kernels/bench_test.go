package kernels

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// Llama-3.2-1B matrix shapes (rows x cols): q/o, gate/up, down, lm head.
var llamaShapes = []struct {
	name       string
	rows, cols int
}{
	{"2048x2048", 2048, 2048},
	{"8192x2048", 8192, 2048},
	{"2048x8192", 2048, 8192},
	{"128256x2048", 128256, 2048},
}

var benchSink float32

func randMatrix(rows, cols int, dt DType, seed uint64) *Matrix {
	rng := rand.New(rand.NewPCG(seed, 1))
	data := make([]float32, rows*cols)
	for i := range data {
		data[i] = float32(rng.NormFloat64() * 0.02)
	}
	return NewF32(rows, cols, data, dt)
}

// BenchmarkMatMul reports weight bytes streamed per second (GB/s) and
// multiply-adds as GFLOP/s (2 per MAC) for each Llama-3.2-1B shape, dtype and
// batch size n. Select with e.g. -bench 'MatMul/bf16/2048x2048/n=1$'.
func BenchmarkMatMul(b *testing.B) {
	for _, dt := range allDTypes {
		for _, sh := range llamaShapes {
			var w *Matrix
			for _, n := range []int{1, 4, 16, 64, 512} {
				b.Run(fmt.Sprintf("%s/%s/n=%d", dt, sh.name, n), func(b *testing.B) {
					if w == nil {
						w = randMatrix(sh.rows, sh.cols, dt, 1)
					}
					x := make([]float32, n*sh.cols)
					for i := range x {
						x[i] = float32(i%7) * 0.1
					}
					dst := make([]float32, n*sh.rows)
					b.ResetTimer()
					for b.Loop() {
						MatMul(dst, x, n, w)
					}
					s := b.Elapsed().Seconds() / float64(b.N)
					b.ReportMetric(float64(w.Bytes())/s/1e9, "GB/s")
					b.ReportMetric(2*float64(n)*float64(sh.rows)*float64(sh.cols)/s/1e9, "GFLOP/s")
				})
			}
			w = nil
		}
	}
}

// BenchmarkBandwidth streams a 1 GB buffer on the MatMul pool's threads: the
// memory-bandwidth bound a memory-bound decode can be quoted against.
func BenchmarkBandwidth(b *testing.B) {
	buf := make([]float32, 1<<28) // 1 GiB
	for i := range buf {
		buf[i] = 1
	}
	parts := make([]float32, 64)
	b.SetBytes(int64(len(buf)) * 4)
	b.ResetTimer()
	for b.Loop() {
		defaultPool.run(func(id, n int) { parts[id] = streamPart(buf, id, n) })
	}
	s := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(float64(len(buf))*4/s/1e9, "GB/s")
	benchSink = parts[0]
}

// BenchmarkLlama1BStep runs the matmuls of one forward step of
// Llama-3.2-1B (16 layers of q, k, v, o, gate, up, down, then the lm head)
// for n tokens and reports tokens/s: the matmul-only ceiling of decode
// (n=1), batched decode (n=16, lm head for all 16) and prefill (n=512, lm
// head for the last token only). The 16 layers share one layer's weights
// (121 MB in bf16, far beyond the caches, so every layer streams from DRAM).
func BenchmarkLlama1BStep(b *testing.B) {
	for _, dt := range []DType{BF16, Q8, F32} {
		var layer []*Matrix
		var head *Matrix
		for _, n := range []int{1, 16, 512} {
			b.Run(fmt.Sprintf("%s/n=%d", dt, n), func(b *testing.B) {
				if layer == nil {
					layer = []*Matrix{
						randMatrix(2048, 2048, dt, 1), randMatrix(512, 2048, dt, 2),
						randMatrix(512, 2048, dt, 3), randMatrix(2048, 2048, dt, 4),
						randMatrix(8192, 2048, dt, 5), randMatrix(8192, 2048, dt, 6),
						randMatrix(2048, 8192, dt, 7),
					}
					head = randMatrix(128256, 2048, dt, 8)
				}
				x := make([]float32, n*8192)
				dst := make([]float32, n*128256)
				for i := range x {
					x[i] = float32(i%5) * 0.1
				}
				var bytes int64
				for _, m := range layer {
					bytes += 16 * m.Bytes()
				}
				bytes += head.Bytes()
				b.ResetTimer()
				for b.Loop() {
					for range 16 {
						for _, m := range layer {
							MatMul(dst, x, n, m)
						}
					}
					headN := n
					if n > 16 {
						headN = 1
					}
					MatMul(dst, x, headN, head)
				}
				s := b.Elapsed().Seconds() / float64(b.N)
				b.ReportMetric(float64(n)/s, "tok/s")
				b.ReportMetric(float64(bytes)/s/1e9, "GB/s")
			})
		}
		layer, head = nil, nil
	}
}

// BenchmarkPoolHandOff measures handing small pieces of work to the pool's
// threads back to back, as a decode step does between its matrix products:
// Parallel over 2 chunks a thread of about a microsecond each. Ideal is
// chunks x 1 us / threads; when the other threads are slow to pick work up
// (parked, waiting for the OS to wake them), the caller does most of it.
func BenchmarkPoolHandOff(b *testing.B) {
	var sink [256]float64
	fn := func(lo, hi int) {
		x := float64(lo)
		for range 1000 {
			x = x*0.999 + 1
		}
		sink[lo%256] += x
	}
	n := 2 * Threads()
	for b.Loop() {
		Parallel(n, minParallelItems, fn)
	}
}
