package kernels

import "math"

// Q8 matrix products run in integers. The weights are int8 in blocks of
// Q8Block columns with one float32 scale per row and block; before a
// product, each activation row is quantized the same way (quantizeBlock),
// so one block of one output is an exact int32 sum of 32 int8 products.
// Each output is then
//
//	out = sum over blocks b, in order, of float32(isum_b) * float32(ws_b * xs_b)
//
// with every multiply and add rounded to float32 on its own (no fused
// multiply-add), so every implementation gives the same bits, and the
// result does not depend on batching or threads.
//
// Layout: the columns are padded with zeros to a whole block (q8Cols), and
// within a panel the values go in groups of four columns: element (r, k) is
// at (r/16)*q8Cols*16 + (k/4)*64 + (r%16)*4 + k%4, so one 32-byte load holds
// eight rows by four columns, the operand of one byte dot-product step
// (VPMADDUBSW / VPDPBUSD / SDOT). The scales keep the panel layout:
// element (r, b) at ((r/16)*blocks + b)*16 + r%16.

// q8Cols is cols padded to a whole number of blocks.
func q8Cols(cols int) int { return q8Blocks(cols) * Q8Block }

// q8Index is where element (r, k) of a Q8 matrix with kp padded columns
// goes.
func q8Index(r, k, kp int) int {
	return (r/PanelRows)*kp*PanelRows + (k/4)*64 + (r%PanelRows)*4 + k%4
}

// quantizeBlock quantizes src (at most Q8Block values) into dst as
// round-to-even(v * (1/scale)) in float64, scale = max|v|/127 in float32,
// and returns the scale. A zero block, and one so small that its scale
// underflows, has scale 0. A block holding a NaN or an infinity cannot be
// represented: its values are zeroed and its scale is bad (0 for weights,
// so a broken weight cannot poison a row; NaN for activations, so the
// products come out NaN as they would in float32).
func quantizeBlock(dst []int8, src []float32, bad float32) float32 {
	dst = dst[:len(src)]
	// Without the sign bit, the order of finite float32 bits is the order of
	// magnitudes, and infinities and NaNs sort above every finite value.
	var amax uint32
	for _, v := range src {
		amax = max(amax, math.Float32bits(v)&0x7fffffff)
	}
	scale := math.Float32frombits(amax) / 127
	if amax >= 0x7f800000 {
		clear(dst)
		return bad
	}
	if scale == 0 {
		clear(dst)
		return 0
	}
	inv := 1 / float64(scale)
	for k, v := range src {
		// |v|*inv rounds to at most 127, except where a subnormal scale
		// rounded down.
		q := int32(math.RoundToEven(float64(v) * inv))
		dst[k] = int8(max(-127, min(127, q)))
	}
	return scale
}

// quantizeBlockSum is quantizeBlock into a whole block of dst (zeroed past
// len(src)) that also returns the sum of the quantized values.
func quantizeBlockSum(dst []int8, src []float32, bad float32) (float32, int32) {
	dst = dst[:Q8Block]
	if len(src) == Q8Block && active.quantize32 != nil {
		if scale, sum, ok := active.quantize32(dst, src); ok {
			return scale, sum
		}
	}
	scale := quantizeBlock(dst, src, bad)
	clear(dst[len(src):])
	var sum int32
	for _, v := range dst {
		sum += int32(v)
	}
	return scale, sum
}

// setQ8 fills m's Q8 storage from row-major data.
func (m *Matrix) setQ8(data []float32) {
	rows, cols := m.Rows, m.Cols
	kp, nb := q8Cols(cols), q8Blocks(cols)
	m.q = make([]int8, panelsOf(rows)*PanelRows*kp)
	m.scales = make([]float32, panelsOf(rows)*PanelRows*nb)
	byPanels(rows, cols, func(r int) {
		var blk [Q8Block]int8
		row := data[r*cols : (r+1)*cols]
		for b := range nb {
			lo, hi := b*Q8Block, min((b+1)*Q8Block, cols)
			m.scales[packIndex(r, b, nb)], _ = quantizeBlockSum(blk[:], row[lo:hi], 0)
			for k := lo; k < hi; k++ {
				m.q[q8Index(r, k, kp)] = blk[k-lo]
			}
		}
	})
}

// q8Acts is a batch of activation rows quantized for a Q8 product: row b's
// values at q[b*q8Cols:], and at s[2*b*blocks:] its block scales followed by
// its block corrections, 128 times each block's sum of quantized values
// (float32, exact: at most 128*32*127 < 2^24). A kernel that offsets the
// weights by 128 to use an unsigned-by-signed byte product (VPDPBUSD)
// subtracts the correction from each block's sum.
type q8Acts struct {
	q []int8
	s []float32
}

// row returns row b's quantized values and its block scales (the
// corrections follow them, within the slice's capacity).
func (a *q8Acts) row(b, cols int) ([]int8, []float32) {
	kp, nb := q8Cols(cols), q8Blocks(cols)
	return a.q[b*kp : (b+1)*kp], a.s[2*b*nb : (2*b+1)*nb : (2*b+2)*nb]
}

// quantize quantizes blocks [i0, i1) of x (rows of cols values, numbered
// row by row) into a, which must already hold their rows.
func (a *q8Acts) quantize(x []float32, cols, i0, i1 int) {
	kp, nb := q8Cols(cols), q8Blocks(cols)
	for i := i0; i < i1; i++ {
		b, blk := i/nb, i%nb
		lo, hi := blk*Q8Block, min((blk+1)*Q8Block, cols)
		q := a.q[b*kp+lo : b*kp+(blk+1)*Q8Block]
		scale, sum := quantizeBlockSum(q, x[b*cols+lo:b*cols+hi], float32(math.NaN()))
		a.s[2*b*nb+blk] = scale
		a.s[(2*b+1)*nb+blk] = float32(128 * sum)
	}
}

// resize makes room for n rows of cols values.
func (a *q8Acts) resize(n, cols int) {
	kp, nb := q8Cols(cols), q8Blocks(cols)
	if cap(a.q) < n*kp {
		a.q = make([]int8, n*kp)
	}
	if cap(a.s) < 2*n*nb {
		a.s = make([]float32, 2*n*nb)
	}
	a.q, a.s = a.q[:n*kp], a.s[:2*n*nb]
}

// q8ChunkBytes bounds the quantized activation rows one pass over a Q8
// panel range reuses (they stay in L2 while the panels stream).
const q8ChunkBytes = 256 << 10

// q8 computes the output rows of panels [p0, p1) of a Q8 product from the
// quantized activations j.acts.
func (j *job) q8(p0, p1 int, sc *scratch) {
	w, im, n := j.w, j.im, j.n
	R, kp, nb := w.Rows, q8Cols(w.Cols), q8Blocks(w.Cols)
	panel := func(p int) ([]int8, []float32) {
		p = min(p, p1-1)
		return w.q[p*kp*PanelRows : (p+1)*kp*PanelRows], w.scales[p*nb*PanelRows : (p+1)*nb*PanelRows]
	}
	xq := func(b int) []int8 { q, _ := j.acts.row(b, w.Cols); return q }
	xs := func(b int) []float32 { _, s := j.acts.row(b, w.Cols); return s }
	out := &sc.out64
	if n == 1 {
		for p := p0; p < p1; p += 4 {
			q0, s0 := panel(p)
			q1, s1 := panel(p + 1)
			q2, s2 := panel(p + 2)
			q3, s3 := panel(p + 3)
			im.gemvQ8(q0, q1, q2, q3, s0, s1, s2, s3, xq(0), xs(0), out)
			r0 := p * PanelRows
			r1 := min(R, min(p+4, p1)*PanelRows)
			copy(j.dst[r0:r1], out[:r1-r0])
		}
		return
	}
	wide := im.gemm16x16Q8 != nil && nb > 0 && nb%2 == 0
	chunk := max(4, q8ChunkBytes/kp&^3)
	if wide {
		chunk = max(16, q8ChunkBytes/kp&^15)
	}
	for c0 := 0; c0 < n; c0 += chunk {
		c1 := min(n, c0+chunk)
		for p := p0; p < p1; p++ {
			q, s := panel(p)
			r0 := p * PanelRows
			rows := min(PanelRows, R-r0)
			b := c0
			for ; wide && c1-b >= 16; b += 16 {
				im.gemm16x16Q8(q, s, j.acts, b, w.Cols, &sc.tiles, &sc.out256)
				for i := range 16 {
					copy(j.dst[(b+i)*R+r0:(b+i)*R+r0+rows], sc.out256[i*PanelRows:])
				}
			}
			for ; b < c1; b += 4 {
				// Rows past the batch repeat its last row.
				r := func(i int) int { return min(b+i, c1-1) }
				im.gemm16x4Q8(q, s, xq(r(0)), xq(r(1)), xq(r(2)), xq(r(3)),
					xs(r(0)), xs(r(1)), xs(r(2)), xs(r(3)), out)
				for i := range min(4, c1-b) {
					copy(j.dst[(b+i)*R+r0:(b+i)*R+r0+rows], out[i*PanelRows:])
				}
			}
		}
	}
}
