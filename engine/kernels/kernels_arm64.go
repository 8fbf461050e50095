//go:build !purego

package kernels

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// archImpls returns the NEON kernels (every arm64 CPU has Advanced SIMD).
// Dot and axpy stay in Go, and so do the Q8 products on CPUs without the
// dot-product extension. Conversions are exact or single-rounded
// in Go as in assembly, so mixing keeps each output's bits fixed.
func archImpls() []*impl { return []*impl{neon} }

var neon = withDotProd(&impl{
	name: "neon",
	gemvF32: func(p0, p1, p2, p3 []float32, x []float32, out *[64]float32) {
		gemvF32NEON(&p0[0], &p1[0], &p2[0], &p3[0], &x[0], len(x), out)
	},
	gemvBF16: func(p0, p1, p2, p3 []uint16, x []float32, out *[64]float32) {
		n := len(x) * PanelRows
		_, _, _, _ = p0[n-1], p1[n-1], p2[n-1], p3[n-1]
		gemvBF16NEON(&p0[0], &p1[0], &p2[0], &p3[0], &x[0], len(x)/2, out)
	},
	// Q8: the dot-product kernels where the CPU has them (see below).
	gemvQ8:     gemvQ8Go,
	gemm16x4Q8: gemm16x4Q8Go,
	gemm16x6: func(p, x0, x1, x2, x3, x4, x5 []float32, acc *[96]float32, _ unsafe.Pointer, _ int) {
		gemm16x6NEON(&p[0], &x0[0], &x1[0], &x2[0], &x3[0], &x4[0], &x5[0], len(x0), acc)
	},
	widenPairs: widenPairsGo,
	roundBF16:  roundBF16Go,
	dot:        dot8Go,
	axpy:       axpyGo,
	sum4:       sum4Go,
})

// The assembly kernels (kernels_arm64.s); lengths as in impl, all positive.

//go:noescape
func gemvF32NEON(p0, p1, p2, p3, x *float32, k int, out *[64]float32)

// gemvBF16NEON's k counts column pairs.
//
//go:noescape
func gemvBF16NEON(p0, p1, p2, p3 *uint16, x *float32, k int, out *[64]float32)

//go:noescape
func gemm16x6NEON(p, x0, x1, x2, x3, x4, x5 *float32, k int, acc *[96]float32)

// withDotProd gives im the SDOT Q8 kernels when the CPU has the
// dot-product extension (every Apple silicon chip, Graviton 2 on).
func withDotProd(im *impl) *impl {
	if !cpu.ARM64.HasASIMDDP {
		return im
	}
	im.gemvQ8 = func(p0, p1, p2, p3 []int8, s0, s1, s2, s3 []float32, x []int8, xs []float32, out *[64]float32) {
		nb := checkGemvQ8(p0, p1, p2, p3, s0, s1, s2, s3, x, xs)
		gemvQ8NEON(&p0[0], &p1[0], &p2[0], &p3[0], &s0[0], &s1[0], &s2[0], &s3[0], &x[0], &xs[0], nb, out)
	}
	im.gemm16x4Q8 = func(p []int8, s []float32, x0, x1, x2, x3 []int8, xs0, xs1, xs2, xs3 []float32, acc *[64]float32) {
		nb := checkGemmQ8(p, s, x0, x1, x2, x3, xs0, xs1, xs2, xs3)
		gemm16x4Q8NEON(&p[0], &s[0], &x0[0], &x1[0], &x2[0], &x3[0], &xs0[0], &xs1[0], &xs2[0], &xs3[0], nb, acc)
	}
	return im
}

//go:generate go run gen_q8_arm64.go

//go:noescape
func gemvQ8NEON(p0, p1, p2, p3 *int8, s0, s1, s2, s3 *float32, x *int8, xs *float32, blocks int, out *[64]float32)

//go:noescape
func gemm16x4Q8NEON(p *int8, s *float32, x0, x1, x2, x3 *int8, xs0, xs1, xs2, xs3 *float32, blocks int, acc *[64]float32)
