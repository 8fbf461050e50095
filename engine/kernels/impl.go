package kernels

import (
	"fmt"
	"strings"
	"unsafe"
)

// impl is one implementation of the inner kernels. Every slice argument of a
// float kernel has the same length k8, a positive multiple of 8. Each
// returns, per output, the dot product over those k8 values reduced in the
// package's fixed order (see doc.go); the caller adds the Cols%8 tail. The
// Q8 kernels take whole zero-padded panels instead.
type impl struct {
	name string

	// gemvF32 computes, for four packed panels p0..p3 over k columns,
	// out[16i+j] = sum_k panel_i[k][j] * x[k], each sum in order of k.
	gemvF32 func(p0, p1, p2, p3 []float32, x []float32, out *[64]float32)
	// gemvBF16 is the BF16 product (bf16.go) of four pair-packed panels
	// and one row of rounded activations in the swapped float32 form
	// (bf16Acts.f): out[16i+j] for panel i, row j. It is nil, and so is
	// widenPairs, where the implementation has gemvBF16DP.
	gemvBF16 func(p0, p1, p2, p3 []uint16, x []float32, out *[64]float32)
	// widenPairs widens a pair-packed panel segment into pair-step order
	// (widenPairsGo); the float32 gemm kernels then run over it.
	widenPairs func(dst []float32, src []uint16)
	// gemvBF16DP, gemm16x12BF16DP and gemm16x4BF16DP are the BF16
	// products on a pair-product unit (VDPBF16PS), over rounded bf16
	// activations (bf16Acts.h): gemvBF16DP as gemvBF16; the gemm kernels
	// continue acc[16j+i] over one pair-packed panel segment of len(p)/16
	// columns for twelve rows (row j at x[j*stride:]) or four, prefetching
	// as gemm16x6 does; gemm16x16BF16DP is gemm16x12BF16DP for sixteen
	// rows; gemm32x8BF16DP runs two panels' segments p0 and p1 (of equal
	// length, p1 after p0 in the same storage) over eight rows, into
	// acc0 and acc1 (nil: one panel at a time). nil where there is no
	// such unit.
	gemvBF16DP      func(p0, p1, p2, p3 []uint16, x []uint16, out *[64]float32)
	gemm16x12BF16DP func(p []uint16, x []uint16, stride int, acc *[192]float32, pf unsafe.Pointer, pfStride int)
	gemm16x16BF16DP func(p []uint16, x []uint16, stride int, acc *[256]float32, pf unsafe.Pointer, pfStride int)
	gemm32x8BF16DP  func(p0, p1 []uint16, x []uint16, stride int, acc0, acc1 *[128]float32, pf unsafe.Pointer, pfStride int)
	gemm16x4BF16DP  func(p []uint16, x0, x1, x2, x3 []uint16, acc *[64]float32, pf unsafe.Pointer, pfStride int)
	// roundBF16 writes dst[k] = roundActBF16(src[k]) (for gemvBF16DP's
	// activations).
	roundBF16 func(dst []uint16, src []float32)
	// gemvQ8 and gemm16x4Q8 are the integer products of q8.go over whole
	// Q8 panels (q8Cols columns, scales s of all blocks) and quantized
	// activation rows with their block scales: gemvQ8 sets out[16i+j] for
	// panel i and one row x, gemm16x4Q8 sets acc[16j+i] for one panel and
	// rows x0..x3. Both give exactly the bits of the generic ones.
	gemvQ8     func(p0, p1, p2, p3 []int8, s0, s1, s2, s3 []float32, x []int8, xs []float32, out *[64]float32)
	gemm16x4Q8 func(p []int8, s []float32, x0, x1, x2, x3 []int8, xs0, xs1, xs2, xs3 []float32, acc *[64]float32)
	// gemm16x16Q8 is gemm16x4Q8 for the sixteen activation rows of a
	// starting at row (acc[16j+i], j < 16), through the scratch tiles;
	// nil means four-row calls. It takes panels of an even number of
	// blocks only (the caller falls back to gemm16x4Q8 otherwise).
	gemm16x16Q8 func(p []int8, s []float32, a *q8Acts, row, cols int, tiles *[512]int32, acc *[256]float32)
	// gemm16x6 continues acc[16j+i] += sum_k p[k][i] * x_j[k] over one
	// float32 panel segment, in order of k. While it works it may prefetch
	// pfStride bytes per k from pf on (the weights the gemm reads next; a
	// prefetch never faults, so pf may point anywhere).
	gemm16x6 func(p, x0, x1, x2, x3, x4, x5 []float32, acc *[96]float32, pf unsafe.Pointer, pfStride int)
	// gemm16x6Exact, where set, replaces gemm16x6 and gemm16x12 over
	// widened bf16 segments, whose products are exact (bf16.go).
	gemm16x6Exact func(p, x0, x1, x2, x3, x4, x5 []float32, acc *[96]float32, pf unsafe.Pointer, pfStride int)
	// gemm16x4 is gemm16x6 for four activation rows (acc[16j+i], j < 4),
	// for the last rows of a batch; nil means pad them to six.
	gemm16x4 func(p, x0, x1, x2, x3 []float32, acc *[64]float32, pf unsafe.Pointer, pfStride int)
	// gemm16x12 is gemm16x6 for twelve consecutive activation rows, row j
	// starting at x[j*stride] (acc[16j+i], j < 12: two 6-row groups side
	// by side), over a float32 panel segment of len(p)/16 columns. With
	// 32 vector registers twelve rows keep more multiply-adds in flight
	// than six. nil means two calls of the 6-row kernel.
	gemm16x12 func(p []float32, x []float32, stride int, acc *[192]float32, pf unsafe.Pointer, pfStride int)
	// siluMul is SiLUMul over equal lengths, expSub is ExpSub (nil: the
	// Go loops).
	siluMul func(dst, gate, up []float32)
	expSub  func(s []float32, m float32)
	// quantize32 is quantizeBlock for a whole block into a whole block,
	// also returning the sum of the quantized values; ok false leaves the
	// block (not finite, or a zero scale) to quantizeBlock. nil: always.
	quantize32 func(dst []int8, src []float32) (scale float32, sum int32, ok bool)
	// dot returns the dot product of a and b (len a multiple of 8).
	dot func(a, b []float32) float32
	// axpy computes y[k] += alpha * x[k] (len a multiple of 8).
	axpy func(alpha float32, x, y []float32)
	// dotRows sets out[t] = dot(q, rows[t*stride:]) for t < len(out), and
	// axpyRows does axpy(p[t], rows[t*stride:], y) for t < len(p) in
	// order, each bit for bit what the loop of single calls gives; len(q)
	// and len(y) are multiples of 8, the slices long enough, len(out) and
	// len(p) positive. nil means that loop.
	dotRows  func(q, rows []float32, stride int, out []float32)
	axpyRows func(p, rows []float32, stride int, y []float32)
	// sum4 returns the sum of a, b, c and d (equal lengths, a multiple of
	// 16) in any order, streaming the four together; it measures memory
	// bandwidth.
	sum4 func(a, b, c, d []float32) float32
	// fmaLoop runs iters rounds of independent vector fused multiply-adds,
	// fmaLoopFlops flops a round: the core's float32 peak. nil where no
	// assembly measures it.
	fmaLoop      func(iters int)
	fmaLoopFlops int
}

// generic is the plain-Go implementation, available everywhere.
var generic = &impl{
	name:       "generic",
	gemvF32:    gemvF32Go,
	gemvBF16:   gemvBF16Go,
	gemvQ8:     gemvQ8Go,
	gemm16x4Q8: gemm16x4Q8Go,
	gemm16x6: func(p, x0, x1, x2, x3, x4, x5 []float32, acc *[96]float32, _ unsafe.Pointer, _ int) {
		gemm16x6Go(p, x0, x1, x2, x3, x4, x5, acc)
	},
	gemm16x12: func(p []float32, x []float32, stride int, acc *[192]float32, _ unsafe.Pointer, _ int) {
		gemm16x12Go(p, x, stride, acc)
	},
	gemm16x6Exact: func(p, x0, x1, x2, x3, x4, x5 []float32, acc *[96]float32, _ unsafe.Pointer, _ int) {
		gemm16x6ExactGo(p, x0, x1, x2, x3, x4, x5, acc)
	},
	widenPairs: widenPairsGo,
	roundBF16:  roundBF16Go,
	dot:        dot8Go,
	axpy:       axpyGo,
	sum4:       sum4Go,
}

// active is the implementation MatMul uses, chosen once at start-up.
var active = best()

// impls lists every implementation this machine can run, best last.
func impls() []*impl {
	out := []*impl{generic}
	for _, im := range archImpls() {
		if im != nil {
			out = append(out, im)
		}
	}
	return out
}

func best() *impl {
	all := impls()
	return all[len(all)-1]
}

// Impls names the implementations this CPU can run, slowest first.
func Impls() []string {
	var out []string
	for _, im := range impls() {
		out = append(out, im.name)
	}
	return out
}

// Use switches MatMul to the implementation called name (one of Impls), for
// benchmarks that compare them side by side; it must not be called while
// matrix products run.
func Use(name string) error {
	for _, im := range impls() {
		if im.name == name {
			active = im
			return nil
		}
	}
	return fmt.Errorf("kernels: no %q implementation on this CPU (have %s)", name, strings.Join(Impls(), ", "))
}

// Impl names the kernel implementation in use: "generic", "avx2", "avx512",
// "amx", "neon".
func Impl() string { return active.name }
