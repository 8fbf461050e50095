//go:build !purego

package kernels

import "unsafe"

// archImpls returns the NEON kernels (every arm64 CPU has Advanced SIMD).
// The Q8 decode kernel, dot and axpy stay in Go; Q8 batches go through the
// NEON gemm on dequantized panels. Conversions are exact or single-rounded
// in Go as in assembly, so mixing keeps each output's bits fixed.
func archImpls() []*impl { return []*impl{neon} }

var neon = &impl{
	name: "neon",
	gemvF32: func(p0, p1, p2, p3 []float32, x []float32, out *[64]float32) {
		gemvF32NEON(&p0[0], &p1[0], &p2[0], &p3[0], &x[0], len(x), out)
	},
	gemvBF16: func(p0, p1, p2, p3 []uint16, x []float32, out *[64]float32) {
		gemvBF16NEON(&p0[0], &p1[0], &p2[0], &p3[0], &x[0], len(x), out)
	},
	gemvQ8:     gemvQ8Go,
	gemm16x4Q8: gemm16x4Q8Go,
	gemm16x6: func(p, x0, x1, x2, x3, x4, x5 []float32, acc *[96]float32, _ unsafe.Pointer, _ int) {
		gemm16x6NEON(&p[0], &x0[0], &x1[0], &x2[0], &x3[0], &x4[0], &x5[0], len(x0), acc)
	},
	widenBF16: widenBF16Go,
	dot:       dot8Go,
	axpy:      axpyGo,
	sum4:      sum4Go,
}

// The assembly kernels (kernels_arm64.s); lengths as in impl, all positive.

//go:noescape
func gemvF32NEON(p0, p1, p2, p3, x *float32, k int, out *[64]float32)

//go:noescape
func gemvBF16NEON(p0, p1, p2, p3 *uint16, x *float32, k int, out *[64]float32)

//go:noescape
func gemm16x6NEON(p, x0, x1, x2, x3, x4, x5 *float32, k int, acc *[96]float32)
