package kernels

import (
	"fmt"
	"unsafe"
)

// MatMul computes dst[b*w.Rows+r] = sum_k x[b*w.Cols+k] * w[r][k] for each of
// the n rows b of x. Each output element is reduced in the same order whatever
// n is and whatever the thread count, so results do not depend on batching.
// It runs on the package's worker pool; concurrent calls are safe (a call that
// finds the pool busy runs on its own goroutine alone).
func MatMul(dst, x []float32, n int, w *Matrix) {
	if n < 0 || len(x) < n*w.Cols || len(dst) < n*w.Rows {
		panic(fmt.Sprintf("kernels: MatMul of %d rows over a %dx%d matrix with len(x)=%d len(dst)=%d",
			n, w.Rows, w.Cols, len(x), len(dst)))
	}
	if n == 0 || w.Rows == 0 {
		return
	}
	defaultPool.matmul(active, dst, x, n, w)
}

// job is one MatMul split over output rows.
type job struct {
	im  *impl
	dst []float32
	x   []float32
	n   int
	w   *Matrix
	// acts holds the quantized rows of x for a Q8 product, bacts the
	// rounded ones for a BF16 product.
	acts  *q8Acts
	bacts *bf16Acts
}

// scratch is per-worker memory reused across calls.
type scratch struct {
	seg   []float32 // one panel segment widened to float32
	acc   []float32 // the gemm accumulators of one x chunk
	out64 [64]float32
	// out256 and tiles are gemm16x16Q8's outputs and block sums.
	out256 [256]float32
	tiles  [512]int32
	acts   q8Acts   // quantized activations of a Q8 MatMul outside the pool
	bacts  bf16Acts // rounded activations of a BF16 MatMul outside the pool
}

func grow(s []float32, n int) []float32 {
	if cap(s) < n {
		return make([]float32, n)
	}
	return s[:n]
}

// part computes the output rows of panels [p0, p1).
func (j *job) part(p0, p1 int, sc *scratch) {
	if p0 >= p1 {
		return
	}
	if j.w.Cols == 0 {
		for b := range j.n {
			clear(j.dst[b*j.w.Rows+p0*PanelRows : b*j.w.Rows+min(j.w.Rows, p1*PanelRows)])
		}
		return
	}
	if j.w.DType == Q8 {
		j.q8(p0, p1, sc)
		return
	}
	if j.w.DType == BF16 {
		j.bf16(p0, p1, sc)
		return
	}
	if j.n == 1 {
		j.gemv(p0, p1, sc)
		return
	}
	j.gemmOver(p0, p1, sc, j.w.Cols, j.x, j.w.Cols)
}

func (j *job) gemv(p0, p1 int, sc *scratch) {
	w, im, x := j.w, j.im, j.x[:j.w.Cols]
	K := w.Cols
	out := &sc.out64
	for p := p0; p < p1; p += 4 {
		f := func(i int) []float32 {
			q := min(p+i, p1-1)
			return w.f32[q*K*PanelRows : (q+1)*K*PanelRows]
		}
		im.gemvF32(f(0), f(1), f(2), f(3), x, out)
		r0 := p * PanelRows
		r1 := min(w.Rows, min(p+4, p1)*PanelRows)
		copy(j.dst[r0:r1], out[:r1-r0])
	}
}

// kBlock is the panel segment length of the gemm: 16 rows x 256 columns of
// float32 (16 KB) stay in L1 while every activation row of a chunk passes.
const kBlock = 256

// maxChunkRows bounds the activation rows of one gemm chunk (a multiple of
// 12). The weights are read once per chunk; a chunk's k-slice (at most 192
// rows x kBlock columns, 192 KB) stays in L2 while the panels pass.
const maxChunkRows = 192

// accBytes bounds the accumulators of one panel block: the gemm walks a
// block of panels k-slice by k-slice, so each slice of the activations is
// reused by every panel of the block while it is in cache, whatever K is.
// A variable so tests can make blocks of a few panels.
var accBytes = 48 << 10

// gemmWalk is the gemm's walk over panels [p0, p1) of a matrix of K
// (packed) columns for the job's n > 1 rows. The rows are cut into chunks
// of at most maxChunkRows (a multiple of align); per chunk, the panels are
// taken in blocks whose accumulators fit accBytes, and per block the
// k-slices of kBlock columns in order. tiles(p, q0, q1, k0, kl, b0, b1,
// acc, per) continues the outputs of panel p of block [q0, q1), and of
// the panels after it in the block if it likes, for rows [b0, b1) over
// columns [k0, k0+kl): panel p's accumulators at acc, row b at
// (b-b0)*PanelRows, rows rounded up to tileRows, the next panel's per
// floats on. It returns how many panels it did. Every output is still
// reduced in order of k from zero: the accumulators of a block round-trip
// through memory between slices, which changes no bits.
func (j *job) gemmWalk(p0, p1 int, sc *scratch, K, align, tileRows int, tiles func(p, q0, q1, k0, kl, b0, b1 int, acc []float32, per int) int) {
	n, R := j.n, j.w.Rows
	perRows := func(rows int) int { return (rows + tileRows - 1) / tileRows * tileRows * PanelRows }
	chunks := (n + maxChunkRows - 1) / maxChunkRows
	nc := ((n+chunks-1)/chunks + align - 1) / align * align
	pb := max(1, min(p1-p0, accBytes/(perRows(min(n, nc))*4)))
	sc.acc = grow(sc.acc, pb*perRows(min(n, nc)))
	for b0 := 0; b0 < n; b0 += nc {
		b1 := min(n, b0+nc)
		per := perRows(b1 - b0)
		for q0 := p0; q0 < p1; q0 += pb {
			q1 := min(p1, q0+pb)
			acc := sc.acc[:(q1-q0)*per]
			clear(acc)
			for k0 := 0; k0 < K; k0 += kBlock {
				kl := min(kBlock, K-k0)
				for p := q0; p < q1; {
					p += tiles(p, q0, q1, k0, kl, b0, b1, acc[(p-q0)*per:], per)
				}
			}
			for p := q0; p < q1; p++ {
				pacc := acc[(p-q0)*per:]
				r0 := p * PanelRows
				rows := min(PanelRows, R-r0)
				for b := b0; b < b1; b++ {
					copy(j.dst[b*R+r0:b*R+r0+rows], pacc[(b-b0)*PanelRows:])
				}
			}
		}
	}
}

// gemmOver computes panels [p0, p1) for n > 1 activation rows x of K
// columns each, row b at x[b*S:] (a float32 matrix's own activations, or a
// BF16 one's rounded ones over K packed columns, its segments widened into
// pair-step order), in tiles of 12, 6 or 4 rows.
func (j *job) gemmOver(p0, p1 int, sc *scratch, K int, x []float32, S int) {
	w, im := j.w, j.im
	if w.DType == BF16 {
		sc.seg = grow(sc.seg, kBlock*PanelRows)
	}
	var xs [6][]float32
	gemm6, gemm12, gemm4 := im.gemm16x6, im.gemm16x12, im.gemm16x4
	if w.DType == BF16 && im.gemm16x6Exact != nil {
		gemm6, gemm12, gemm4 = im.gemm16x6Exact, nil, nil
	}
	j.gemmWalk(p0, p1, sc, K, 6, 6, func(p, q0, q1, k0, kl, b0, b1 int, pacc []float32, _ int) int {
		lo, hi := (p*K+k0)*PanelRows, (p*K+k0+kl)*PanelRows
		// The first group's kernel prefetches the segment that comes
		// next; the others repeat its first line.
		pf, pfStride := j.nextSegment(p, k0, q0, q1, p1)
		var seg []float32
		if w.DType == BF16 {
			seg = sc.seg[:kl*PanelRows]
			im.widenPairs(seg, w.bf16[lo:hi])
		} else {
			seg = w.f32[lo:hi]
		}
		groups := (b1 - b0 + 5) / 6
		for g := 0; g < groups; g++ {
			if xx, ok := x12(gemm12 != nil, x, S, b0+g*6, b1, k0, kl); ok {
				gemm12(seg, xx, S, (*[192]float32)(pacc[g*96:]), pf, pfStride)
				pfStride = 0
				g++
				continue
			}
			xs = xGroup(xs, x, S, b0+g*6, b1, k0, kl)
			if b1-(b0+g*6) <= 4 && gemm4 != nil {
				gemm4(seg, xs[0], xs[1], xs[2], xs[3], (*[64]float32)(pacc[g*96:]), pf, pfStride)
			} else {
				gemm6(seg, xs[0], xs[1], xs[2], xs[3], xs[4], xs[5], (*[96]float32)(pacc[g*96:]), pf, pfStride)
			}
			pfStride = 0
		}
		return 1
	})
}

// nextSegment returns where the weights of the segment the gemm reads after
// panel p's segment at column k0 start, and their bytes per column; the
// walk goes panel by panel within [q0, q1), then to the next k-slice, then
// to the next block (from column 0) up to p1. After the last one it
// returns p's own segment with no stride.
func (j *job) nextSegment(p, k0, q0, q1, p1 int) (unsafe.Pointer, int) {
	K := j.w.Cols
	if j.w.DType == BF16 {
		K = bf16Cols(K)
	}
	stride := 1
	switch {
	case p+1 < q1:
		p++
	case k0+kBlock < K:
		p, k0 = q0, k0+kBlock
	case q1 < p1:
		p, k0 = q1, 0
	default:
		stride = 0
	}
	i := (p*K + k0) * PanelRows
	switch j.w.DType {
	case F32:
		return unsafe.Pointer(&j.w.f32[i]), stride * 4 * PanelRows
	default:
		return unsafe.Pointer(&j.w.bf16[i]), stride * 2 * PanelRows
	}
}

// x12 returns columns [k0, k0+kl) of rows b..b+11 of x (row b at b*S)
// for a 12-row kernel, as one slice from row b, column k0 (row j at j*S), when the implementation has one (has) and all twelve rows are
// real rows of the batch; the 12-row tile covers two 6-row groups.
func x12(has bool, x []float32, S, b, b1, k0, kl int) ([]float32, bool) {
	if !has || b+12 > b1 {
		return nil, false
	}
	return x[b*S+k0 : (b+11)*S+k0+kl], true
}

// xGroup points xs at columns [k0, k0+kl) of rows b..b+5 of x (row b at
// b*S), the rows past b1-1 repeating row b1-1.
func xGroup(xs [6][]float32, x []float32, S, b, b1, k0, kl int) [6][]float32 {
	for jj := range xs {
		bj := min(b+jj, b1-1)
		xs[jj] = x[bj*S+k0 : bj*S+k0+kl]
	}
	return xs
}

// Dot returns sum_k a[k]*b[k] over len(a) values (b at least as long), in the
// package's fixed reduction order, with the fastest kernel available.
func Dot(a, b []float32) float32 {
	b = b[:len(a)]
	k8 := len(a) &^ 7
	var s float32
	if k8 > 0 {
		s = active.dot(a[:k8], b[:k8])
	}
	return addTail(s, a[k8:], b[k8:])
}

// DotRows sets out[t] = Dot(q, rows[t*stride:t*stride+len(q)]) for every t
// < len(out): bit for bit that loop, in one call (attention's scores).
func DotRows(q, rows []float32, stride int, out []float32) {
	n, k := len(out), len(q)
	if n == 0 {
		return
	}
	if k == 0 {
		clear(out)
		return
	}
	rows = rows[:(n-1)*stride+k]
	k8 := k &^ 7
	if k8 == 0 || active.dotRows == nil {
		for t := range out {
			out[t] = Dot(q, rows[t*stride:t*stride+k])
		}
		return
	}
	active.dotRows(q[:k8], rows, stride, out)
	if k8 < k {
		for t := range out {
			out[t] = addTail(out[t], q[k8:], rows[t*stride+k8:t*stride+k])
		}
	}
}

// AxpyRows computes Axpy(p[t], rows[t*stride:t*stride+len(y)], y) for t =
// 0, 1, ... len(p)-1 in order: bit for bit that loop, in one call
// (attention's weighted sum of values).
func AxpyRows(p, rows []float32, stride int, y []float32) {
	n, k := len(p), len(y)
	if n == 0 || k == 0 {
		return
	}
	rows = rows[:(n-1)*stride+k]
	k8 := k &^ 7
	if k8 > 0 {
		if active.axpyRows != nil {
			active.axpyRows(p, rows, stride, y[:k8])
		} else {
			for t, a := range p {
				active.axpy(a, rows[t*stride:t*stride+k8], y[:k8])
			}
		}
	}
	for t, a := range p {
		axpyGo(a, rows[t*stride+k8:t*stride+k], y[k8:])
	}
}

// Axpy computes y[k] += alpha * x[k] for k < len(x) (y at least as long).
// Each element is one multiply and one add, unfused, so every path returns
// the same bits.
func Axpy(alpha float32, x, y []float32) {
	y = y[:len(x)]
	k8 := len(x) &^ 7
	if k8 > 0 {
		active.axpy(alpha, x[:k8], y[:k8])
	}
	axpyGo(alpha, x[k8:], y[k8:])
}

// addTail adds the products of the last len(w) < 8 values to s in order,
// unfused, on every path.
func addTail(s float32, w, x []float32) float32 {
	x = x[:len(w)]
	for i, v := range w {
		s += float32(v * x[i])
	}
	return s
}
