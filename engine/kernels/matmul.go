package kernels

import "fmt"

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
}

// scratch is per-worker memory reused across calls.
type scratch struct {
	seg   []float32 // one panel segment widened to float32
	acc   []float32 // the gemm accumulators of one x chunk
	out64 [64]float32
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
	if j.n == 1 && (j.w.DType != Q8 || j.im.gemvQ8 != nil) {
		j.gemv(p0, p1, sc)
		return
	}
	j.gemm(p0, p1, sc)
}

func (j *job) gemv(p0, p1 int, sc *scratch) {
	w, im, x := j.w, j.im, j.x[:j.w.Cols]
	K := w.Cols
	nb := q8Blocks(K)
	out := &sc.out64
	for p := p0; p < p1; p += 4 {
		var pp [4]int
		for i := range pp {
			pp[i] = min(p+i, p1-1)
		}
		switch w.DType {
		case F32:
			f := func(i int) []float32 { return w.f32[pp[i]*K*PanelRows : (pp[i]+1)*K*PanelRows] }
			im.gemvF32(f(0), f(1), f(2), f(3), x, out)
		case BF16:
			f := func(i int) []uint16 { return w.bf16[pp[i]*K*PanelRows : (pp[i]+1)*K*PanelRows] }
			im.gemvBF16(f(0), f(1), f(2), f(3), x, out)
		case Q8:
			f := func(i int) []int8 { return w.q[pp[i]*K*PanelRows : (pp[i]+1)*K*PanelRows] }
			s := func(i int) []float32 { return w.scales[pp[i]*nb*PanelRows : (pp[i]+1)*nb*PanelRows] }
			im.gemvQ8(f(0), f(1), f(2), f(3), s(0), s(1), s(2), s(3), x, out)
		}
		r0 := p * PanelRows
		r1 := min(w.Rows, min(p+4, p1)*PanelRows)
		copy(j.dst[r0:r1], out[:r1-r0])
	}
}

// kBlock is the panel segment length of the gemm: 16 rows x 256 columns of
// float32 (16 KB) stay in L1 while every activation row of a chunk passes.
const kBlock = 256

// xChunkBytes bounds the activations one chunk holds, so they stay in a
// core's L2 while the panels stream past.
const xChunkBytes = 384 << 10

// singleChunkRows is the batch size up to which the gemm does not chunk the
// activations.
const singleChunkRows = 96

func (j *job) gemm(p0, p1 int, sc *scratch) {
	w, im, n := j.w, j.im, j.n
	K, R := w.Cols, w.Rows
	nb := q8Blocks(K)
	// Chunking re-reads the weights once per chunk; for small batches the
	// weight stream dominates, so they take every row in one chunk.
	nc := max(6, xChunkBytes/(4*K)/6*6)
	if n <= singleChunkRows {
		nc = n
	}
	sc.acc = grow(sc.acc, (nc+5)/6*96)
	if w.DType != F32 {
		sc.seg = grow(sc.seg, kBlock*PanelRows)
	}
	var xs [6][]float32
	for b0 := 0; b0 < n; b0 += nc {
		b1 := min(n, b0+nc)
		groups := (b1 - b0 + 5) / 6
		acc := sc.acc[:groups*96]
		// With few activation rows, widening a segment costs as much as
		// using it: widen in registers instead.
		fused := groups <= fusedMaxGroups
		for p := p0; p < p1; p++ {
			clear(acc)
			base := p * K * PanelRows
			for k0 := 0; k0 < K; k0 += kBlock {
				kl := min(kBlock, K-k0)
				lo, hi := base+k0*PanelRows, base+(k0+kl)*PanelRows
				var seg []float32
				switch {
				case w.DType == BF16 && fused && im.gemm16x6BF16 != nil:
					for g := range groups {
						xs = j.xGroup(xs, b0+g*6, b1, k0, kl)
						im.gemm16x6BF16(w.bf16[lo:hi], xs[0], xs[1], xs[2], xs[3], xs[4], xs[5], (*[96]float32)(acc[g*96:]))
					}
					continue
				case w.DType == Q8 && fused && im.gemm16x6Q8 != nil:
					s0 := (p*nb + k0/Q8Block) * PanelRows
					for g := range groups {
						xs = j.xGroup(xs, b0+g*6, b1, k0, kl)
						im.gemm16x6Q8(w.q[lo:hi], w.scales[s0:(p+1)*nb*PanelRows], xs[0], xs[1], xs[2], xs[3], xs[4], xs[5], (*[96]float32)(acc[g*96:]))
					}
					continue
				}
				switch w.DType {
				case F32:
					seg = w.f32[lo:hi]
				case BF16:
					seg = sc.seg[:kl*PanelRows]
					im.widenBF16(seg, w.bf16[lo:hi])
				case Q8:
					seg = sc.seg[:kl*PanelRows]
					s0 := (p*nb + k0/Q8Block) * PanelRows
					im.dequantQ8(seg, w.q[lo:hi], w.scales[s0:(p+1)*nb*PanelRows])
				}
				for g := range groups {
					xs = j.xGroup(xs, b0+g*6, b1, k0, kl)
					im.gemm16x6(seg, xs[0], xs[1], xs[2], xs[3], xs[4], xs[5], (*[96]float32)(acc[g*96:]))
				}
			}
			r0 := p * PanelRows
			rows := min(PanelRows, R-r0)
			for b := b0; b < b1; b++ {
				g, jj := (b-b0)/6, (b-b0)%6
				copy(j.dst[b*R+r0:b*R+r0+rows], acc[g*96+jj*PanelRows:])
			}
		}
	}
}

// fusedMaxGroups is the number of 6-row activation groups up to which the
// gemm widens bf16 and Q8 weights in registers rather than once per segment.
const fusedMaxGroups = 2

// xGroup points xs at columns [k0, k0+kl) of activation rows b..b+5, the
// rows past b1-1 repeating row b1-1.
func (j *job) xGroup(xs [6][]float32, b, b1, k0, kl int) [6][]float32 {
	K := j.w.Cols
	for jj := range xs {
		bj := min(b+jj, b1-1)
		xs[jj] = j.x[bj*K+k0 : bj*K+k0+kl]
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
