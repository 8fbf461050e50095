package kernels

import (
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var allDTypes = []DType{F32, BF16, Q8}

func randSlice(rng *rand.Rand, n int, scale float64) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(rng.NormFloat64() * scale)
	}
	return s
}

// reference computes MatMul in float64 from the matrix's own row values, and
// the bound sum|w*x| per element that scales the allowed rounding error. For
// Q8 it takes the quantized values of both sides (see q8.go), for BF16 the
// activations rounded as the product rounds them (bf16.go).
func reference(x []float32, n int, w *Matrix) (want, mag []float64) {
	want = make([]float64, n*w.Rows)
	mag = make([]float64, n*w.Rows)
	if w.DType == Q8 {
		referenceQ8(x, n, w, want, mag)
		return want, mag
	}
	if w.DType == BF16 {
		xr := make([]float32, len(x))
		for i, v := range x {
			xr[i] = BF16ToF32(roundActBF16(v))
		}
		x = xr
	}
	row := make([]float32, w.Cols)
	for r := range w.Rows {
		w.Row(r, row)
		for b := range n {
			var s, m float64
			for k, v := range row {
				p := float64(v) * float64(x[b*w.Cols+k])
				s += p
				m += math.Abs(p)
			}
			want[b*w.Rows+r], mag[b*w.Rows+r] = s, m
		}
	}
	return want, mag
}

func referenceQ8(x []float32, n int, w *Matrix, want, mag []float64) {
	var a q8Acts
	a.resize(n, w.Cols)
	a.quantize(x, w.Cols, 0, n*q8Blocks(w.Cols))
	kp, nb := q8Cols(w.Cols), q8Blocks(w.Cols)
	for r := range w.Rows {
		for b := range n {
			xq, xs := a.row(b, w.Cols)
			var s, m float64
			for k := range w.Cols {
				d := float64(w.scales[packIndex(r, k/Q8Block, nb)]) * float64(xs[k/Q8Block])
				p := float64(w.q[q8Index(r, k, kp)]) * float64(xq[k]) * d
				s += p
				m += math.Abs(p)
			}
			want[b*w.Rows+r], mag[b*w.Rows+r] = s, m
		}
	}
}

// matmulWith runs MatMul on the pool with implementation im.
func matmulWith(im *impl, dst, x []float32, n int, w *Matrix) {
	defaultPool.matmul(im, dst, x, n, w)
}

// withThreads runs fn with the pool at n threads and restores the count.
func withThreads(t *testing.T, n int, fn func()) {
	t.Helper()
	old := Threads()
	SetThreads(n)
	defer SetThreads(old)
	fn()
}

func TestImplsIncludeBest(t *testing.T) {
	all := impls()
	require.NotEmpty(t, all)
	assert.Equal(t, "generic", all[0].name)
	assert.Equal(t, all[len(all)-1].name, Impl())
	t.Logf("kernel implementations: %d, active %s", len(all), Impl())
}

func TestMatMulMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	shapes := []struct{ rows, cols int }{
		{1, 1}, {1, 8}, {3, 0}, {17, 300}, {70, 520}, {2, 7}, {3, 9}, {5, 16}, {7, 17}, {4, 31}, {13, 32},
		{6, 33}, {11, 40}, {25, 63}, {12, 64}, {37, 65}, {29, 100}, {50, 257},
	}
	for _, im := range impls() {
		for _, dt := range allDTypes {
			t.Run(im.name+"/"+dt.String(), func(t *testing.T) {
				for _, sh := range shapes {
					w := NewF32(sh.rows, sh.cols, randSlice(rng, sh.rows*sh.cols, 1), dt)
					for _, n := range []int{1, 2, 3, 4, 5, 7, 8, 13, 20} {
						x := randSlice(rng, n*sh.cols, 1)
						dst := make([]float32, n*sh.rows)
						matmulWith(im, dst, x, n, w)
						want, mag := reference(x, n, w)
						for i := range dst {
							tol := 2e-6*mag[i] + 1e-30
							require.InDelta(t, want[i], float64(dst[i]), tol,
								"%dx%d n=%d element %d", sh.rows, sh.cols, n, i)
						}
					}
				}
			})
		}
	}
}

// TestBatchInvariance holds each output row bitwise equal whether it is
// computed alone, inside any batch, or with any thread count.
func TestBatchInvariance(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	shapes := []struct{ rows, cols int }{{7, 13}, {41, 72}, {300, 259}, {130, 512}, {21, 2100}}
	for _, im := range impls() {
		for _, dt := range allDTypes {
			t.Run(im.name+"/"+dt.String(), func(t *testing.T) {
				for _, sh := range shapes {
					w := NewF32(sh.rows, sh.cols, randSlice(rng, sh.rows*sh.cols, 1), dt)
					// Up to 49 rows: every tile size and its
					// remainders (the bf16 tiles take 16, 12, 8 and
					// 4 rows) are held equal to the rows alone.
					const maxN = 49
					x := randSlice(rng, maxN*sh.cols, 1)
					alone := make([]float32, maxN*sh.rows)
					withThreads(t, 1, func() {
						for b := range maxN {
							matmulWith(im, alone[b*sh.rows:(b+1)*sh.rows], x[b*sh.cols:(b+1)*sh.cols], 1, w)
						}
					})
					for _, threads := range []int{1, 2, 3} {
						withThreads(t, threads, func() {
							for _, n := range []int{1, 2, 3, 4, 5, 6, 9, 12, 16, 17, 20, 48, 49} {
								// Rows n..2n-1 of x shifted so each row sits at
								// another position in its tiles than alone.
								off := maxN - n
								dst := make([]float32, n*sh.rows)
								matmulWith(im, dst, x[off*sh.cols:], n, w)
								for b := range n {
									for r := range sh.rows {
										got, want := dst[b*sh.rows+r], alone[(off+b)*sh.rows+r]
										if math.Float32bits(got) != math.Float32bits(want) {
											t.Fatalf("%dx%d threads=%d n=%d row %d out %d: %v in batch, %v alone",
												sh.rows, sh.cols, threads, n, off+b, r, got, want)
										}
									}
								}
							}
						})
					}
				}
			})
		}
	}
}

// TestImplsAgree holds every assembly path to the generic one on the same
// inputs, at the tolerance of a reordered float32 sum.
func TestImplsAgree(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	all := impls()
	for _, dt := range allDTypes {
		w := NewF32(67, 301, randSlice(rng, 67*301, 0.5), dt)
		x := randSlice(rng, 9*301, 2)
		base := make([]float32, 9*67)
		matmulWith(generic, base, x, 9, w)
		_, mag := reference(x, 9, w)
		for _, im := range all[1:] {
			got := make([]float32, len(base))
			matmulWith(im, got, x, 9, w)
			for i := range got {
				assert.InDelta(t, base[i], got[i], 2e-6*mag[i], "%s %s element %d", im.name, dt, i)
			}
		}
	}
}

func TestQ8Quantization(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, cols := range []int{1, 31, 32, 33, 100} {
		data := randSlice(rng, 3*cols, 1)
		data[0] = 0
		m := NewF32(3, cols, data, Q8)
		require.Equal(t, Q8, m.DType)
		assert.Equal(t, int64(PanelRows*q8Cols(cols)+PanelRows*q8Blocks(cols)*4), m.Bytes())
		row := make([]float32, cols)
		for r := range 3 {
			m.Row(r, row)
			for b := range q8Blocks(cols) {
				lo, hi := b*Q8Block, min(cols, (b+1)*Q8Block)
				var amax float64
				for _, v := range data[r*cols+lo : r*cols+hi] {
					amax = math.Max(amax, math.Abs(float64(v)))
				}
				for k := lo; k < hi; k++ {
					assert.InDelta(t, data[r*cols+k], row[k], amax/254*1.0001+1e-12, "row %d col %d", r, k)
				}
			}
		}
	}
	zero := NewF32(2, 40, make([]float32, 80), Q8)
	row := make([]float32, 40)
	zero.Row(1, row)
	assert.Equal(t, make([]float32, 40), row)
}

func TestRowAllDTypes(t *testing.T) {
	data := []float32{1, -2.5, 3.25, 0, 1e-3, 65504, -7, 0.1}
	for _, dt := range allDTypes {
		m := NewF32(2, 4, data, dt)
		row := make([]float32, 4)
		m.Row(1, row)
		tol := func(v float32) float64 { return math.Abs(float64(v))*0.01 + 1e-6 }
		if dt == Q8 {
			tol = func(float32) float64 { return 65504.0 / 254 }
		}
		for k, v := range row {
			assert.InDelta(t, data[4+k], v, tol(data[4+k]), "%s col %d", dt, k)
		}
	}
	b := NewBF16(1, 3, []uint16{0x3f80, 0xc000, 0x0000})
	row := make([]float32, 3)
	b.Row(0, row)
	assert.Equal(t, []float32{1, -2, 0}, row)
}

func TestBF16Rounding(t *testing.T) {
	tests := []struct {
		name string
		in   float32
		want uint16
	}{
		{"one", 1, 0x3f80},
		{"ties to even down", math.Float32frombits(0x3f808000), 0x3f80},
		{"ties to even up", math.Float32frombits(0x3f818000), 0x3f82},
		{"above half", math.Float32frombits(0x3f808001), 0x3f81},
		{"inf", float32(math.Inf(1)), 0x7f80},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, F32ToBF16(tc.in))
		})
	}
	assert.True(t, math.IsNaN(float64(BF16ToF32(F32ToBF16(float32(math.NaN()))))))
}

func TestDotAxpy(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for _, im := range impls() {
		t.Run(im.name, func(t *testing.T) {
			withImpl(im, func() {
				for _, n := range []int{0, 1, 7, 8, 9, 64, 65, 200} {
					a, b := randSlice(rng, n, 1), randSlice(rng, n, 1)
					var want, mag float64
					for i := range a {
						want += float64(a[i]) * float64(b[i])
						mag += math.Abs(float64(a[i]) * float64(b[i]))
					}
					assert.InDelta(t, want, float64(Dot(a, b)), 2e-6*mag+1e-30, "dot n=%d", n)
					y := randSlice(rng, n, 1)
					wantY := make([]float32, n)
					for i := range y {
						wantY[i] = y[i] + float32(0.75*a[i])
					}
					Axpy(0.75, a, y)
					assert.Equal(t, wantY, y, "axpy n=%d", n)
				}
			})
		})
	}
}

func TestMatMulNoAllocs(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for _, dt := range allDTypes {
		w := NewF32(256, 512, randSlice(rng, 256*512, 1), dt)
		for _, n := range []int{1, 6, 20} {
			x := randSlice(rng, n*512, 1)
			dst := make([]float32, n*256)
			MatMul(dst, x, n, w) // warm the scratch
			allocs := testing.AllocsPerRun(20, func() { MatMul(dst, x, n, w) })
			assert.Zero(t, allocs, "%s n=%d", dt, n)
		}
	}
}

// TestMatMulConcurrent calls MatMul from several goroutines at once: callers
// that find the pool busy run alone, and every result stays bitwise the same.
func TestMatMulConcurrent(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	w := NewF32(200, 300, randSlice(rng, 200*300, 1), BF16)
	x := randSlice(rng, 5*300, 1)
	want := make([]float32, 5*200)
	MatMul(want, x, 5, w)
	var wg sync.WaitGroup
	errs := make([]bool, 8)
	for g := range errs {
		wg.Go(func() {
			dst := make([]float32, 5*200)
			for range 10 {
				MatMul(dst, x, 5, w)
				for i := range dst {
					if math.Float32bits(dst[i]) != math.Float32bits(want[i]) {
						errs[g] = true
					}
				}
			}
		})
	}
	wg.Wait()
	assert.Equal(t, make([]bool, 8), errs)
}

func TestSetThreads(t *testing.T) {
	old := Threads()
	defer SetThreads(old)
	SetThreads(3)
	assert.Equal(t, 3, Threads())
	SetThreads(0)
	assert.Positive(t, Threads())
	// More threads than the scheduler has processors: idle workers park at
	// once instead of polling, or they would hold processors the threads
	// with work need.
	SetThreads(runtime.GOMAXPROCS(0) + 3)
	assert.False(t, defaultPool.spin.Load())
	SetThreads(1)
	assert.True(t, defaultPool.spin.Load())
}

func TestMatMulBadShapes(t *testing.T) {
	w := NewF32(2, 3, make([]float32, 6), F32)
	assert.Panics(t, func() { MatMul(make([]float32, 4), make([]float32, 5), 2, w) })
	assert.Panics(t, func() { MatMul(make([]float32, 3), make([]float32, 6), 2, w) })
	assert.NotPanics(t, func() { MatMul(nil, nil, 0, w) })
}

func TestParseDType(t *testing.T) {
	for _, dt := range allDTypes {
		got, err := ParseDType(dt.String())
		require.NoError(t, err)
		assert.Equal(t, dt, got)
	}
	_, err := ParseDType("fp16")
	assert.ErrorContains(t, err, "fp16")
}

// FuzzMatMul holds every implementation to the float64 reference and to
// batch invariance on shapes drawn from the fuzzer.
func FuzzMatMul(f *testing.F) {
	f.Add(uint8(5), uint8(33), uint8(3), uint8(1), uint64(1))
	f.Add(uint8(1), uint8(7), uint8(20), uint8(2), uint64(2))
	f.Add(uint8(40), uint8(64), uint8(9), uint8(0), uint64(3))
	f.Fuzz(func(t *testing.T, rows, cols, n, dt uint8, seed uint64) {
		R, K, N := int(rows%64)+1, int(cols)+1, int(n%24)+1
		d := allDTypes[int(dt)%len(allDTypes)]
		rng := rand.New(rand.NewPCG(seed, 99))
		w := NewF32(R, K, randSlice(rng, R*K, 1), d)
		x := randSlice(rng, N*K, 1)
		want, mag := reference(x, N, w)
		for _, im := range impls() {
			dst := make([]float32, N*R)
			matmulWith(im, dst, x, N, w)
			for i := range dst {
				if math.Abs(float64(dst[i])-want[i]) > 2e-6*mag[i]+1e-30 {
					t.Fatalf("%s %s %dx%d n=%d element %d: %v, want %v", im.name, d, R, K, N, i, dst[i], want[i])
				}
			}
			last := make([]float32, R)
			matmulWith(im, last, x[(N-1)*K:], 1, w)
			for r := range R {
				if math.Float32bits(last[r]) != math.Float32bits(dst[(N-1)*R+r]) {
					t.Fatalf("%s %s %dx%d n=%d row %d differs alone", im.name, d, R, K, N, r)
				}
			}
		}
	})
}

// TestBatchInvarianceChunked covers batches large enough for the gemm to
// split the activations into chunks (n > maxChunkRows), with panel blocks
// of two panels (the last one short) walked k-slice by k-slice.
func TestBatchInvarianceChunked(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	const rows, cols, n = 4*PanelRows + 4, 2100, maxChunkRows + 7
	saved := accBytes
	accBytes = 2 * ((maxChunkRows/2+6)/6 + 1) * 96 * 4
	t.Cleanup(func() { accBytes = saved })
	x := randSlice(rng, n*cols, 1)
	for _, im := range impls() {
		for _, dt := range allDTypes {
			t.Run(im.name+"/"+dt.String(), func(t *testing.T) {
				w := NewF32(rows, cols, randSlice(rng, rows*cols, 1), dt)
				dst := make([]float32, n*rows)
				matmulWith(im, dst, x, n, w)
				alone := make([]float32, rows)
				for _, b := range []int{0, 5, 47, 48, 49, 101, 102, 103, n - 1} {
					matmulWith(im, alone, x[b*cols:(b+1)*cols], 1, w)
					for r := range rows {
						require.Equal(t, math.Float32bits(alone[r]), math.Float32bits(dst[b*rows+r]), "row %d out %d", b, r)
					}
				}
				want, mag := reference(x, n, w)
				for i := range dst {
					require.InDelta(t, want[i], float64(dst[i]), 2e-6*mag[i]+1e-30, "element %d", i)
				}
			})
		}
	}
}

// TestPoolBackToBack issues thousands of pool calls of different sizes in a
// row, at thread counts above and below the cores, so workers arriving
// late from one call meet the next one: every chunk must run exactly once,
// in the call it belongs to (a late worker must never run a chunk of a call
// that is over). MatMul results are held bitwise; Parallel ranges must
// cover [0, n) exactly once.
func TestPoolBackToBack(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	big := NewF32(640, 64, randSlice(rng, 640*64, 1), BF16)    // 40 panels: many chunks
	small := NewF32(300, 256, randSlice(rng, 300*256, 1), F32) // 19 panels
	x := randSlice(rng, 7*256, 1)
	wantBig, wantSmall := make([]float32, 7*640), make([]float32, 7*300)
	withThreads(t, 1, func() {
		MatMul(wantBig, x, 7, big)
		MatMul(wantSmall, x, 7, small)
	})
	for _, threads := range []int{2, 5, 16} {
		withThreads(t, threads, func() {
			dstBig, dstSmall := make([]float32, 7*640), make([]float32, 7*300)
			hits := make([]int32, 50000)
			for i := range 3000 {
				switch i % 3 {
				case 0:
					MatMul(dstBig, x, 7, big)
					requireBits(t, wantBig, dstBig, threads, i)
				case 1:
					MatMul(dstSmall, x, 7, small)
					requireBits(t, wantSmall, dstSmall, threads, i)
				default:
					n := 20000 + i
					clear(hits[:n])
					Parallel(n, 1, func(lo, hi int) {
						for k := lo; k < hi; k++ {
							atomic.AddInt32(&hits[k], 1)
						}
					})
					for k, h := range hits[:n] {
						if h != 1 {
							t.Fatalf("threads=%d call %d: item %d of %d ran %d times", threads, i, k, n, h)
						}
					}
				}
			}
		})
	}
}

func requireBits(t *testing.T, want, got []float32, threads, call int) {
	t.Helper()
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("threads=%d call %d: element %d is %v, want %v", threads, call, i, got[i], want[i])
		}
	}
}

// DotRows and AxpyRows give, bit for bit, what loops of Dot and Axpy give,
// for head sizes with and without a tail past a multiple of 8, any number
// of rows (the assembly takes them four at a time) and strides wider than
// a row (heads inside a KV cache row).
func TestDotRowsAxpyRowsMatchLoops(t *testing.T) {
	rng := rand.New(rand.NewPCG(41, 42))
	for _, k := range []int{1, 5, 8, 13, 32, 40, 64, 100, 128} {
		for _, n := range []int{1, 2, 3, 4, 5, 7, 8, 9, 17, 60} {
			stride := k + rng.IntN(3)*8
			q := randSlice(rng, k, 1)
			rows := randSlice(rng, (n-1)*stride+k, 1)
			p := randSlice(rng, n, 1)
			got := make([]float32, n)
			DotRows(q, rows, stride, got)
			for i := range n {
				want := Dot(q, rows[i*stride:i*stride+k])
				if math.Float32bits(got[i]) != math.Float32bits(want) {
					t.Fatalf("DotRows k=%d n=%d row %d: %v, Dot %v", k, n, i, got[i], want)
				}
			}
			y0 := randSlice(rng, k, 1)
			got = append([]float32(nil), y0...)
			AxpyRows(p, rows, stride, got)
			want := append([]float32(nil), y0...)
			for i, a := range p {
				Axpy(a, rows[i*stride:i*stride+k], want)
			}
			for j := range want {
				if math.Float32bits(got[j]) != math.Float32bits(want[j]) {
					t.Fatalf("AxpyRows k=%d n=%d element %d: %v, Axpy loop %v", k, n, j, got[j], want[j])
				}
			}
		}
	}
	DotRows(nil, nil, 0, nil)
	AxpyRows(nil, nil, 0, nil)
	out := []float32{3}
	DotRows(nil, nil, 0, out)
	assert.Zero(t, out[0], "an empty dot product is zero")
}

// A thread that finishes a call's last chunk may wake its caller late
// (preempted between the two): by then the caller may have seen the end by
// polling and be parked in a later call, which a late wake-up must not end
// while its chunks still run.
func TestLateFinisherWakesNoLaterCall(t *testing.T) {
	p := newPool(1)
	p.spin.Store(false) // park at once
	const g1, g2 = 7, 8
	p.left.Store(1) // generation g2 has a chunk still running
	returned := make(chan struct{})
	go func() {
		p.waitDone(g2)
		close(returned)
	}()
	for p.waiter.Load() == 0 {
		runtime.Gosched()
	}
	p.wakeCaller(g1) // the late finisher of the call before
	select {
	case <-returned:
		t.Fatal("a late wake-up for an earlier call ended the later call's wait")
	case <-time.After(50 * time.Millisecond):
	}
	p.left.Store(0)
	p.wakeCaller(g2) // the real finisher
	select {
	case <-returned:
	case <-time.After(10 * time.Second):
		t.Fatal("the caller was not woken by its own call's finisher")
	}
}

// TestQ8Activations holds a Q8 product to the float32 product of the
// matrix's own values within the error of quantizing the activations
// (half a step of each block's scale per value), and checks that zero
// activations give zero and a NaN activation gives NaN outputs.
func TestQ8Activations(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	const rows, cols, n = 40, 300, 5
	w := NewF32(rows, cols, randSlice(rng, rows*cols, 1), Q8)
	x := randSlice(rng, n*cols, 3)
	dst := make([]float32, n*rows)
	MatMul(dst, x, n, w)
	row := make([]float32, cols)
	for r := range rows {
		w.Row(r, row)
		for b := range n {
			xr := x[b*cols : (b+1)*cols]
			var exact, bound float64
			for k, v := range row {
				exact += float64(v) * float64(xr[k])
				var amax float64
				for _, u := range xr[k/Q8Block*Q8Block : min(cols, (k/Q8Block+1)*Q8Block)] {
					amax = math.Max(amax, math.Abs(float64(u)))
				}
				bound += math.Abs(float64(v)) * (amax/254*1.0001 + 1e-6*math.Abs(float64(xr[k])))
			}
			require.InDelta(t, exact, float64(dst[b*rows+r]), bound, "row %d out %d", b, r)
		}
	}
	zero := make([]float32, cols)
	one := make([]float32, rows)
	MatMul(one, zero, 1, w)
	assert.Equal(t, make([]float32, rows), one)
	zero[cols-1] = float32(math.NaN())
	MatMul(one, zero, 1, w)
	for r, v := range one {
		assert.True(t, math.IsNaN(float64(v)), "row %d: %v", r, v)
	}
	// Each row's block corrections are 128 times its blocks' sums.
	var a q8Acts
	a.resize(n, cols)
	a.quantize(x, cols, 0, n*q8Blocks(cols))
	for b := range n {
		q, sc := a.row(b, cols)
		corr := sc[len(sc):cap(sc)]
		for blk := range corr {
			var sum float32
			for _, v := range q[blk*Q8Block : (blk+1)*Q8Block] {
				sum += float32(v)
			}
			require.Equal(t, 128*sum, corr[blk], "row %d block %d", b, blk)
		}
	}
	// In a batch, a NaN row poisons only its own outputs.
	copy(x[2*cols:3*cols], zero)
	MatMul(dst, x, n, w)
	for b := range n {
		for r := range rows {
			assert.Equal(t, b == 2, math.IsNaN(float64(dst[b*rows+r])), "row %d out %d", b, r)
		}
	}
}

// TestQ8ImplsBitwise holds every implementation's Q8 products bit for bit
// to the generic ones: the integer block sums are exact and the float32
// steps are the same single roundings in the same order.
func TestQ8ImplsBitwise(t *testing.T) {
	rng := rand.New(rand.NewPCG(23, 24))
	// extreme holds values of one magnitude, so every quantized value is
	// +-127: the largest block sums any kernel's integer steps must hold.
	extreme := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(1 - 2*rng.IntN(2))
		}
		return v
	}
	for _, sh := range []struct {
		rows, cols int
		ext        bool
	}{{16, 32, false}, {70, 300, false}, {33, 2048, false}, {64, 8192, false}, {48, 256, true}} {
		values := func(n int, s float64) []float32 {
			if sh.ext {
				return extreme(n)
			}
			return randSlice(rng, n, s)
		}
		w := NewF32(sh.rows, sh.cols, values(sh.rows*sh.cols, 1), Q8)
		for _, n := range []int{1, 3, 4, 9, 16, 37} {
			requireImplsMatchGeneric(t, w, values(n*sh.cols, 2), n)
		}
	}
}

// requireImplsMatchGeneric runs MatMul of n rows x over w on every
// implementation and fails at the first output whose bits differ from the
// generic one's.
func requireImplsMatchGeneric(t *testing.T, w *Matrix, x []float32, n int) {
	t.Helper()
	want := make([]float32, n*w.Rows)
	matmulWith(generic, want, x, n, w)
	for _, im := range impls()[1:] {
		got := make([]float32, n*w.Rows)
		matmulWith(im, got, x, n, w)
		for i := range got {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("%s %s %dx%d n=%d element %d: %v, generic %v", im.name, w.DType, w.Rows, w.Cols, n, i, got[i], want[i])
			}
		}
	}
}

// quantizeBlockRef is quantizeBlock written plainly, in float64.
func quantizeBlockRef(src []float32, bad float32) ([]int8, float32) {
	dst := make([]int8, len(src))
	var amax float64
	for _, v := range src {
		a := math.Abs(float64(v))
		if math.IsNaN(a) || math.IsInf(a, 0) {
			return dst, bad
		}
		amax = math.Max(amax, a)
	}
	scale := float32(amax) / 127
	if scale == 0 {
		return dst, 0
	}
	for k, v := range src {
		q := math.RoundToEven(float64(v) * (1 / float64(scale)))
		dst[k] = int8(math.Max(-127, math.Min(127, q)))
	}
	return dst, scale
}

// quantizerTestBlock returns n values for the quantizer tests: one in odds
// a special value (zeros, subnormals, extremes, infinities, NaN), one in
// odds random bits, the rest normal values over twelve decades; finite
// replaces the infinities and NaNs.
func quantizerTestBlock(rng *rand.Rand, n, odds int, finite bool) []float32 {
	specials := []float32{0, float32(math.Copysign(0, -1)), 1e-45, -3e-45, 2.6e-43, 1e-38, -1e-39,
		math.MaxFloat32, -math.MaxFloat32, float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()), 0.5, -127, 254}
	src := make([]float32, n)
	for k := range src {
		switch rng.IntN(odds) {
		case 0:
			src[k] = specials[rng.IntN(len(specials))]
		case 1:
			src[k] = math.Float32frombits(rng.Uint32())
		default:
			src[k] = float32(rng.NormFloat64() * math.Pow(10, float64(rng.IntN(12)-6)))
		}
		if v := float64(src[k]); finite && (math.IsNaN(v) || math.IsInf(v, 0)) {
			src[k] = float32(k + 1)
		}
	}
	return src
}

func TestQuantizeBlockMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(31, 32))
	for i := range 20000 {
		src := quantizerTestBlock(rng, 1+rng.IntN(Q8Block), 4, i%3 == 0)
		want, ws := quantizeBlockRef(src, -1)
		got := make([]int8, Q8Block)
		for k := range got {
			got[k] = 99 // must be overwritten
		}
		gs := quantizeBlock(got, src, -1)
		require.Equal(t, math.Float32bits(ws), math.Float32bits(gs), "scale of %v", src)
		require.Equal(t, want, got[:len(src)], "values of %v", src)
	}
}

func BenchmarkQuantizeBlock(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	src := randSlice(rng, 1<<16, 1)
	dst := make([]int8, len(src))
	b.SetBytes(int64(4 * len(src)))
	for _, im := range impls() {
		b.Run(im.name, func(b *testing.B) {
			withImpl(im, func() {
				for b.Loop() {
					for i := 0; i < len(src); i += Q8Block {
						quantizeBlockSum(dst[i:], src[i:i+Q8Block], 0)
					}
				}
			})
		})
	}
}

// TestQuantize32MatchesGo holds every implementation's whole-block
// quantizer to quantizeBlock and the sum of its values, on blocks of
// ordinary, extreme and special values; a block it declines must be one
// quantizeBlock treats specially (not finite, or a zero scale).
func TestQuantize32MatchesGo(t *testing.T) {
	rng := rand.New(rand.NewPCG(33, 34))
	for _, im := range impls() {
		if im.quantize32 == nil {
			continue
		}
		taken := 0
		for i := range 20000 {
			src := quantizerTestBlock(rng, Q8Block, 8, i%2 == 0)
			want := make([]int8, Q8Block)
			ws := quantizeBlock(want, src, -1)
			var wsum int32
			for _, v := range want {
				wsum += int32(v)
			}
			got := make([]int8, Q8Block)
			gs, gsum, ok := im.quantize32(got, src)
			if !ok {
				require.True(t, ws == 0 || ws == -1, "%s declined %v (scale %v)", im.name, src, ws)
				continue
			}
			taken++
			require.Equal(t, math.Float32bits(ws), math.Float32bits(gs), "%s scale of %v", im.name, src)
			require.Equal(t, want, got, "%s values of %v", im.name, src)
			require.Equal(t, wsum, gsum, "%s sum of %v", im.name, src)
		}
		assert.Greater(t, taken, 9000, "%s took too few blocks", im.name)
	}
}

// withImpl runs fn with im as the active implementation.
func withImpl(im *impl, fn func()) {
	prev := active
	active = im
	defer func() { active = prev }()
	fn()
}
