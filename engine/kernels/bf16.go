package kernels

import "math"

// BF16 products (see docs/numerics.md for the reasoning).
//
// A BF16 MatMul rounds its activations to bf16 first (roundActBF16), so
// every product of a weight and an activation is exact in float32. Columns
// are taken in pairs (2m, 2m+1), in order of m, and each output adds the
// pair's products one at a time, the odd column's first:
//
//	acc = acc + w[2m+1]*x[2m+1]
//	acc = acc + w[2m]*x[2m]
//
// each a float32 add rounded to nearest even. That is the pair step of
// AVX512_BF16's VDPBF16PS as Intel documents it; since the product is
// exact, a fused multiply-add, a multiply then an add, and that
// instruction give the same bits. Its flushing of subnormal inputs and
// outputs to zero never acts here: activations and weights are held to
// magnitudes in [2^-56, 2^64) or zero (below: a signed zero; above: an
// infinity), so every product is a multiple of 2^-126 below 2^128, and so
// is every partial sum (rounding a multiple of 2^-126 keeps it one), which
// is therefore zero or a normal number. A matrix with an odd number of
// columns is padded to an even one with a zero column.
//
// Weights are packed in pairs: panel p holds, for each column pair m, 16
// rows of two bf16 values (column 2m in the low half of a 32-bit word,
// 2m+1 in the high half), the layout VDPBF16PS multiplies.

// bf16Cols is the number of packed columns of a BF16 matrix: Cols rounded
// up to a pair.
func bf16Cols(cols int) int { return (cols + 1) &^ 1 }

// bf16Index is where row-major element (r, k) of a BF16 matrix of kp packed
// columns goes.
func bf16Index(r, k, kp int) int {
	return ((r/PanelRows)*kp+k&^1)*PanelRows + (r%PanelRows)*2 + k&1
}

// The range kept by the products: below 2^-56 a value becomes a zero of its
// sign, from 2^64 on an infinity of its sign.
const (
	bf16MinExp = 127 - 56 // biased exponent of 2^-56
	bf16MaxExp = 127 + 64 // biased exponent of 2^64
)

// clampBF16 holds a bf16 value to the products' range; NaN and infinities
// stay as they are.
func clampBF16(b uint16) uint16 {
	e := b >> 7 & 0xff
	switch {
	case e < bf16MinExp:
		return b & 0x8000
	case e >= bf16MaxExp && e != 0xff:
		return b&0x8000 | 0x7f80
	}
	return b
}

// roundActBF16 is an activation as the BF16 products see it: rounded to
// bf16 (nearest even) and clamped to their range.
func roundActBF16(v float32) uint16 { return clampBF16(F32ToBF16(v)) }

// bf16Acts is a batch of activation rows rounded for a BF16 product, row b
// at [b*stride:] (kp = bf16Cols values, the pad column zero). The stride is
// kp plus a cache line, so that the rows a tile reads together do not all
// fall in the same L1 set when a row's bytes are a multiple of 4 KB. Implementations with a
// pair-product unit read h (bf16, in column order); the others read f, the
// same values as float32 with each pair swapped (column 2m+1 first), so
// that a plain float32 kernel meets them in the pair step's order.
type bf16Acts struct {
	h      []uint16
	f      []float32
	stride int
}

// bf16ActsPad is the padding of an activation row, 64 bytes of bf16.
const bf16ActsPad = 32

// resize makes room for n rows of cols values in the form im reads.
func (a *bf16Acts) resize(im *impl, n, cols int) {
	a.stride = bf16Cols(cols) + bf16ActsPad
	size := n * a.stride
	if im.gemvBF16DP != nil {
		if cap(a.h) < size {
			a.h = make([]uint16, size)
		}
		a.h = a.h[:size]
		return
	}
	if cap(a.f) < size {
		a.f = make([]float32, size)
	}
	a.f = a.f[:size]
}

// round rounds rows [b0, b1) of x (rows of cols values) into a.
func (a *bf16Acts) round(im *impl, x []float32, cols, b0, b1 int) {
	kp, st := bf16Cols(cols), a.stride
	for b := b0; b < b1; b++ {
		src := x[b*cols : (b+1)*cols]
		if im.gemvBF16DP != nil {
			dst := a.h[b*st : b*st+kp]
			im.roundBF16(dst[:cols], src)
			if kp > cols {
				dst[cols] = 0
			}
			continue
		}
		dst := a.f[b*st : b*st+kp]
		for k := 0; k+1 < cols; k += 2 {
			dst[k] = BF16ToF32(roundActBF16(src[k+1]))
			dst[k+1] = BF16ToF32(roundActBF16(src[k]))
		}
		if kp > cols {
			dst[cols-1] = 0
			dst[cols] = BF16ToF32(roundActBF16(src[cols-1]))
		}
	}
}

func roundBF16Go(dst []uint16, src []float32) {
	dst = dst[:len(src)]
	for k, v := range src {
		dst[k] = roundActBF16(v)
	}
}

// bf16PairRef is the reference of one output of a BF16 product: the pair
// steps over w and x (bf16, the same even length) from zero.
func bf16PairRef(w, x []uint16) float32 {
	var acc float32
	for m := 0; m+1 < len(w); m += 2 {
		acc += float32(BF16ToF32(w[m+1]) * BF16ToF32(x[m+1]))
		acc += float32(BF16ToF32(w[m]) * BF16ToF32(x[m]))
	}
	return acc
}

// bf16 computes the output rows of panels [p0, p1) of a BF16 product from
// the rounded activations j.bacts.
func (j *job) bf16(p0, p1 int, sc *scratch) {
	w, im, n := j.w, j.im, j.n
	kp := bf16Cols(w.Cols)
	panel := func(p int) []uint16 {
		p = min(p, p1-1)
		return w.bf16[p*kp*PanelRows : (p+1)*kp*PanelRows]
	}
	if n == 1 {
		out := &sc.out64
		for p := p0; p < p1; p += 4 {
			if im.gemvBF16DP != nil {
				im.gemvBF16DP(panel(p), panel(p+1), panel(p+2), panel(p+3), j.bacts.h[:kp], out)
			} else {
				im.gemvBF16(panel(p), panel(p+1), panel(p+2), panel(p+3), j.bacts.f[:kp], out)
			}
			r0 := p * PanelRows
			r1 := min(w.Rows, min(p+4, p1)*PanelRows)
			copy(j.dst[r0:r1], out[:r1-r0])
		}
		return
	}
	if im.gemvBF16DP != nil {
		j.gemmBF16DP(p0, p1, sc)
		return
	}
	j.gemmOver(p0, p1, sc, kp, j.bacts.f, j.bacts.stride)
}

// gemmBF16DP is gemm for an implementation with a pair-product unit: the
// same walk, over bf16 activations and unwidened weights, in tiles of two
// panels x 8 rows, or of one panel x 16, 12 or 4 rows.
func (j *job) gemmBF16DP(p0, p1 int, sc *scratch) {
	w, im := j.w, j.im
	K := bf16Cols(w.Cols)
	x, S := j.bacts.h, j.bacts.stride
	j.gemmWalk(p0, p1, sc, K, 16, 4, func(p, q0, q1, k0, kl, b0, b1 int, pacc []float32, per int) int {
		lo, hi := (p*K+k0)*PanelRows, (p*K+k0+kl)*PanelRows
		seg := w.bf16[lo:hi]
		row := func(b, i int) []uint16 { bi := min(b+i, b1-1); return x[bi*S+k0 : bi*S+k0+kl] }
		groups := (b1 - b0 + 3) / 4
		if p+1 < q1 && b1-b0 >= 8 && im.gemm32x8BF16DP != nil {
			// Two panels at once: eight rows a tile, four rows left
			// over a panel at a time.
			pf, pfStride := j.nextSegment(p+1, k0, q0, q1, p1)
			pacc1 := pacc[per:]
			seg1 := w.bf16[lo+K*PanelRows : hi+K*PanelRows]
			g := 0
			for ; b0+g*4+8 <= b1; g += 2 {
				b := b0 + g*4
				im.gemm32x8BF16DP(seg, seg1, x[b*S+k0:(b+7)*S+k0+kl], S,
					(*[128]float32)(pacc[g*64:]), (*[128]float32)(pacc1[g*64:]), pf, pfStride)
				pfStride = 0
			}
			for ; g < groups; g++ {
				b := b0 + g*4
				im.gemm16x4BF16DP(seg, row(b, 0), row(b, 1), row(b, 2), row(b, 3), (*[64]float32)(pacc[g*64:]), pf, 0)
				im.gemm16x4BF16DP(seg1, row(b, 0), row(b, 1), row(b, 2), row(b, 3), (*[64]float32)(pacc1[g*64:]), pf, 0)
			}
			return 2
		}
		pf, pfStride := j.nextSegment(p, k0, q0, q1, p1)
		for g := 0; g < groups; g++ {
			b := b0 + g*4
			if b+16 <= b1 && im.gemm16x16BF16DP != nil {
				im.gemm16x16BF16DP(seg, x[b*S+k0:(b+15)*S+k0+kl], S, (*[256]float32)(pacc[g*64:]), pf, pfStride)
				pfStride = 0
				g += 3
				continue
			}
			if b+12 <= b1 {
				im.gemm16x12BF16DP(seg, x[b*S+k0:(b+11)*S+k0+kl], S, (*[192]float32)(pacc[g*64:]), pf, pfStride)
				pfStride = 0
				g += 2
				continue
			}
			im.gemm16x4BF16DP(seg, row(b, 0), row(b, 1), row(b, 2), row(b, 3), (*[64]float32)(pacc[g*64:]), pf, pfStride)
			pfStride = 0
		}
		return 1
	})
}

// widenPairsGo widens a segment of a pair-packed panel (kl columns, kl
// even) into float32 columns in the pair step's order: for each pair, the
// 16 rows' column 2m+1, then their column 2m. A float32 kernel over these
// columns and the swapped activations of bf16Acts.f adds the products in
// the same order as the pair step.
func widenPairsGo(dst []float32, src []uint16) {
	dst = dst[:len(src)]
	for m := 0; m+2*PanelRows <= len(src); m += 2 * PanelRows {
		for i := range PanelRows {
			dst[m+i] = BF16ToF32(src[m+2*i+1])
			dst[m+PanelRows+i] = BF16ToF32(src[m+2*i])
		}
	}
}

// gemvBF16Go is the FMA-family decode kernel in plain Go: x holds the
// swapped rounded activations (bf16Acts.f).
func gemvBF16Go(p0, p1, p2, p3 []uint16, x []float32, out *[64]float32) {
	for i, p := range [4][]uint16{p0, p1, p2, p3} {
		var acc [PanelRows]float32
		for m := 0; m+1 < len(x); m += 2 {
			pair := p[m*PanelRows : (m+2)*PanelRows]
			for r := range acc {
				acc[r] += float32(BF16ToF32(pair[2*r+1]) * x[m])
				acc[r] += float32(BF16ToF32(pair[2*r]) * x[m+1])
			}
		}
		copy(out[i*PanelRows:], acc[:])
	}
}

// isNaN32 reports whether f is a NaN (for tests comparing bits, NaNs alike).
func isNaN32(f float32) bool { return math.IsNaN(float64(f)) }
