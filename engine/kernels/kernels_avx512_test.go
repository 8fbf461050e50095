//go:build amd64 && !purego

package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// implNamed returns the implementation called name, or skips the test when
// this CPU cannot run it.
func implNamed(tb testing.TB, name string) *impl {
	tb.Helper()
	for _, im := range impls() {
		if im.name == name {
			return im
		}
	}
	tb.Skipf("this CPU has no %s kernels (active: %s)", name, Impl())
	return nil
}

// TestAVX512MatchesAVX2Bitwise holds the AVX-512 kernels to the AVX2 ones
// bit for bit: both reduce every output lane in order of k with fused
// multiply-adds, so a job resumed on the other kind of x86 CPU writes the
// same bits. Batch sizes cover the 12-row tiles, their 6- and 4-row
// remainders and several row chunks; shapes cover partial panels and
// k-slices.
func TestAVX512MatchesAVX2Bitwise(t *testing.T) {
	z := implNamed(t, "avx512")
	y := implNamed(t, "avx2")
	rng := rand.New(rand.NewPCG(11, 12))
	shapes := []struct{ rows, cols int }{{7, 13}, {41, 72}, {300, 259}, {130, 512}, {21, 2100}}
	for _, dt := range allDTypes {
		for _, sh := range shapes {
			w := NewF32(sh.rows, sh.cols, randSlice(rng, sh.rows*sh.cols, 1), dt)
			for _, n := range []int{1, 2, 11, 12, 13, 16, 17, 18, 24, 30, 47, 48, 49, 60, 100, 193, 400} {
				x := randSlice(rng, n*sh.cols, 1)
				want := make([]float32, n*sh.rows)
				got := make([]float32, n*sh.rows)
				for _, threads := range []int{1, 3} {
					withThreads(t, threads, func() {
						matmulWith(y, want, x, n, w)
						matmulWith(z, got, x, n, w)
					})
					for i := range got {
						if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
							t.Fatalf("%s %dx%d n=%d threads=%d element %d: avx512 %v, avx2 %v",
								dt, sh.rows, sh.cols, n, threads, i, got[i], want[i])
						}
					}
				}
			}
		}
	}
}

// BenchmarkImpls runs the same MatMuls on every implementation this CPU
// has, side by side: Llama-3.2-1B's gate/up shape at batch sizes from 16
// sequences decoding together to a prefill. Select with e.g. -bench
// 'Impls/bf16'.
func BenchmarkImpls(b *testing.B) {
	for _, dt := range []DType{BF16, F32} {
		w := randMatrix(8192, 2048, dt, 1)
		for _, n := range []int{16, 48, 64, 512} {
			x := make([]float32, n*w.Cols)
			for i := range x {
				x[i] = float32(i%7) * 0.1
			}
			dst := make([]float32, n*w.Rows)
			for _, im := range impls()[1:] {
				b.Run(fmt.Sprintf("%s/n=%d/%s", dt, n, im.name), func(b *testing.B) {
					for b.Loop() {
						matmulWith(im, dst, x, n, w)
					}
					s := b.Elapsed().Seconds() / float64(b.N)
					b.ReportMetric(2*float64(n)*float64(w.Rows)*float64(w.Cols)/s/1e9, "GFLOP/s")
				})
			}
		}
	}
}
