package cuda

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/batchtrans/batchtrans/engine/backend"
	"github.com/batchtrans/batchtrans/engine/cuda/driver"
	"github.com/batchtrans/batchtrans/engine/kernels"
	"github.com/batchtrans/batchtrans/engine/llama"
	"github.com/batchtrans/batchtrans/engine/llama/synth"
	"github.com/batchtrans/batchtrans/engine/safetensors"
	"github.com/batchtrans/batchtrans/engine/sample"
)

// The tests below need a CUDA GPU; elsewhere they skip, saying so. Each
// holds the GPU to the CPU backend (the reference) or to transformers.

func gpuOrSkip(t testing.TB) {
	t.Helper()
	if r := driver.Probe(); r.Err != nil {
		t.Skipf("no usable CUDA GPU (%v): the GPU tests run on a machine with an NVIDIA GPU (make test-gpu)", r.Err)
	}
}

// testReplica compiles the kernels on GPU 0 outside any model.
func testReplica(t testing.TB, bf16 bool) *replica {
	t.Helper()
	gpuOrSkip(t)
	lib, err := driver.Load()
	require.NoError(t, err)
	gs, err := lib.GPUs()
	require.NoError(t, err)
	r, err := newReplica(&Net{bf16: bf16, wgmma: true}, lib, 0, gs[0]) // gemm_bf16_wg on Hopper, for the bit comparisons
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, r.close()) })
	return r
}

// upload copies host values to a new device buffer of r.
func upload[T any](t testing.TB, r *replica, v []T) driver.Ptr {
	t.Helper()
	p, nb := bytesOf(v)
	var d driver.Ptr
	require.NoError(t, r.w.do(func() error {
		var err error
		if d, err = r.alloc(nb); err != nil {
			return err
		}
		return r.ctx.CopyIn(d, p, nb)
	}))
	return d
}

func download(t testing.TB, r *replica, d driver.Ptr, n int) []float32 {
	t.Helper()
	return downloadAs[float32](t, r, d, n)
}

// downloadAs copies n values of type T from the device.
func downloadAs[T any](t testing.TB, r *replica, d driver.Ptr, n int) []T {
	t.Helper()
	out := make([]T, n)
	p, nb := bytesOf(out)
	require.NoError(t, r.w.do(func() error { return r.ctx.CopyOut(p, d, nb) }))
	return out
}

// TestGemmMatchesReference checks the whole matrix product (the split
// product and its reduce where the shape splits, as forward runs it)
// against a float64 reference of the same (bf16-rounded) inputs, in both
// modes, and that a row's bits do not depend on the rows beside it. The
// shapes: Llama 3.2 1B's products (qkv, o, down: the one that splits) at row counts that
// pick each kernel on an H200 (the few-row kernel up to 16, the 64 x 64
// tiles up to 64 and where the 128 x 128 ones give too few blocks, the
// 128 x 128 tiles beyond); ragged tiles (M, N and K cut mid-tile, K not a
// multiple of 8), which do not split; and ragged tiles that do. In bf16
// it then runs every product kernel by name on tileShapes (checkTiles).
func TestGemmMatchesReference(t *testing.T) {
	var shapes []struct{ m, n, k int }
	for _, m := range []int{1, 16, 37, 130, 512} {
		for _, nk := range [][2]int{{2048, 8192}, {2048, 2048}, {3072, 2048}} {
			shapes = append(shapes, struct{ m, n, k int }{m, nk[0], nk[1]})
		}
	}
	shapes = append(shapes, []struct{ m, n, k int }{{300, 96, 48}, {130, 200, 8200}, {5, 17, 36}, {70, 130, 40},
		{9, 256, 4096}, {70, 500, 2048}, {200, 192, 3072}, {600, 1000, 4096}}...)
	for _, bf16 := range []bool{true, false} {
		name := map[bool]string{true: "bf16", false: "f32"}[bf16]
		t.Run(name, func(t *testing.T) {
			r := testReplica(t, bf16)
			var part int64
			for _, sh := range shapes {
				part = max(part, int64(sh.m*sh.n)*r.splits(int64(sh.n), int64(sh.k)))
			}
			r.part = upload(t, r, make([]float32, part))
			rng := rand.New(rand.NewPCG(7, 8))
			for _, sh := range shapes {
				if !bf16 && sh.k%4 != 0 {
					continue
				}
				s := r.splits(int64(sh.n), int64(sh.k))
				t.Run(fmt.Sprintf("%dx%dx%d", sh.m, sh.n, sh.k), func(t *testing.T) {
					if bf16 {
						t.Logf("%d splits of K, %s", s, pickTile(int64(sh.m), int64(sh.n), s, r.gpu.SMs, sh.k%8 == 0))
					}
					a, w := randVals(rng, sh.m*sh.k, bf16), randVals(rng, sh.n*sh.k, bf16)
					init := randVals(rng, sh.m*sh.n, false)
					dot := refProduct(a, w, sh.m, sh.n, sh.k)
					da, dw := uploadAs(t, r, a, bf16), uploadAs(t, r, w, bf16)
					for _, acc := range []bool{false, true} {
						y := upload(t, r, init)
						runProduct(t, r, y, da, dw, sh.m, sh.n, sh.k, acc)
						got := download(t, r, y, sh.m*sh.n)
						rel := relError(got, dot, init, acc)
						assert.Less(t, rel, 1e-5, "accumulate=%v: relative error %g", acc, rel)
						// Batch invariance: the last row alone gives the same bits.
						last := sh.m - 1
						y1 := upload(t, r, init[last*sh.n:(last+1)*sh.n])
						runProduct(t, r, y1, uploadAs(t, r, a[last*sh.k:], bf16), dw, 1, sh.n, sh.k, acc)
						alone := download(t, r, y1, sh.n)
						assert.Equal(t, bitsOf(got[last*sh.n:]), bitsOf(alone), "accumulate=%v: row %d differs when computed alone", acc, last)
					}
				})
			}
			if bf16 {
				t.Run("tiles", func(t *testing.T) { checkTiles(t, r, rng) })
			}
		})
	}
}

// tileShapes are the shapes on which checkTiles runs every bf16 product
// kernel, at split s (0: splitK's): Llama 3.2 1B's down, q|k|v and
// gate|up at prefill sizes with M cut mid-tile; ragged tiles (K past the
// last whole K tile, K not a multiple of 8); and a split other than
// splitK's.
var tileShapes = []struct{ m, n, k, s int }{
	{512, 2048, 8192, 0}, {4096, 3072, 2048, 0}, {257, 16384, 2048, 0},
	{300, 96, 48, 0}, {130, 200, 8200, 0}, {5, 17, 36, 0}, {70, 130, 40, 0},
	{600, 1000, 1024, 2}, {600, 1000, 1024, 0},
}

// testTiles are the bf16 product kernels checkTiles runs, the first
// (gemm_bf16_128) giving the bits the others must match.
var testTiles = []tile{tileWide, tileMid, tileNarrow, tileBig, tileBigK32, tileStream, tileHopper}

// checkTiles runs each bf16 product kernel by name (gemmTile, then the
// reduce where the shape splits) on tileShapes, in both modes: each must
// come within the float64 reference's tolerance and give gemm_bf16_128's
// bits for every element, and those bits must be the last row's computed
// alone by gemm_bf16_16. The 128 x 256 and streamed kernels must refuse
// K not a multiple of 8; gemm_bf16_128x256 is skipped on a GPU that cannot give
// it its shared memory.
func checkTiles(t *testing.T, r *replica, rng *rand.Rand) {
	var part int
	for _, sh := range tileShapes {
		part = max(part, sh.m*sh.n*max(sh.s, int(splitK(int64(sh.n), int64(sh.k)))))
	}
	r.part = deviceAlloc(t, r, 4*int64(part))
	for _, sh := range tileShapes {
		s := sh.s
		if s == 0 {
			s = int(splitK(int64(sh.n), int64(sh.k)))
		}
		require.True(t, s == 1 || sh.k%(s*splitTile) == 0, "%v: %d splits", sh, s)
		t.Run(fmt.Sprintf("%dx%dx%d/S=%d", sh.m, sh.n, sh.k, s), func(t *testing.T) {
			a, w := randVals(rng, sh.m*sh.k, true), randVals(rng, sh.n*sh.k, true)
			init := randVals(rng, sh.m*sh.n, false)
			dot := refProduct(a, w, sh.m, sh.n, sh.k)
			da, dw := uploadAs(t, r, a, true), uploadAs(t, r, w, true)
			y := deviceAlloc(t, r, 4*int64(sh.m*sh.n))
			last := sh.m - 1
			for _, acc := range []bool{false, true} {
				// The last row alone, by the few-row kernel.
				y1 := upload(t, r, init[last*sh.n:])
				runTile(t, r, tileNarrow, y1, uploadAs(t, r, a[last*sh.k:], true), dw, 1, sh.n, sh.k, s, acc)
				alone := download(t, r, y1, sh.n)
				var want []float32
				for _, tl := range testTiles {
					if !r.has(tl) {
						t.Logf("%s: not loaded (%s, compute capability %s, %d bytes of shared memory a block)", tl, r.gpu.Name, r.gpu.CC(), r.gpu.SharedOptin)
						continue
					}
					if tl.vector() && sh.k%8 != 0 {
						err := r.w.do(func() error {
							return r.gemmTile(tl, y, da, dw, int64(sh.m), int64(sh.n), int64(sh.k), int64(s), nil)
						})
						assert.ErrorIs(t, err, errVectorK, "%s", tl)
						continue
					}
					copyTo(t, r, y, init)
					runTile(t, r, tl, y, da, dw, sh.m, sh.n, sh.k, s, acc)
					got := download(t, r, y, sh.m*sh.n)
					rel := relError(got, dot, init, acc)
					assert.Less(t, rel, 1e-5, "%s accumulate=%v: relative error %g", tl, acc, rel)
					if want == nil {
						want = got
						assertSameBits(t, alone, want[last*sh.n:], "accumulate=%v: the last row alone (%s) and among %d (%s)",
							acc, tileNarrow, sh.m, tl)
						continue
					}
					assertSameBits(t, want, got, "accumulate=%v: %s and %s", acc, testTiles[0], tl)
				}
			}
		})
	}
}

// runTile runs y = a . w^T (m x n from m x k and n x k), or y += that, on
// kernel tl over s ranges of K: into r.part and the reduce when s > 1, as
// product does; it waits for the result.
func runTile(t testing.TB, r *replica, tl tile, y, a, w driver.Ptr, m, n, k, s int, acc bool) {
	t.Helper()
	require.NoError(t, r.w.do(func() error {
		ac := 0
		if acc {
			ac = 1
		}
		out := y
		if s > 1 {
			out, ac = r.part, 0
		}
		args := r.args.reset().p(out).p(a).p(w).i(m).i(n).i(k).i(ac).list()
		if err := r.gemmTile(tl, out, a, w, int64(m), int64(n), int64(k), int64(s), args); err != nil {
			return err
		}
		if s > 1 {
			qu := queue{r: r}
			qu.reduce("reduce", y, 0, 0, int64(m), int64(n), int64(s), acc, 0)
			if qu.err != nil {
				return qu.err
			}
		}
		return r.ctx.Sync(r.st)
	}))
}

// copyTo copies host values into the device buffer d.
func copyTo[T any](t testing.TB, r *replica, d driver.Ptr, v []T) {
	t.Helper()
	p, nb := bytesOf(v)
	require.NoError(t, r.w.do(func() error { return r.ctx.CopyIn(d, p, nb) }))
}

// assertSameBits reports where got's bits first differ from want's, and
// how many differ (the whole slices would make an unreadable diff).
func assertSameBits(t *testing.T, want, got []float32, msg string, args ...any) {
	t.Helper()
	require.Len(t, got, len(want))
	first, n := -1, 0
	for i := range want {
		if math.Float32bits(want[i]) != math.Float32bits(got[i]) {
			if first < 0 {
				first = i
			}
			n++
		}
	}
	if n > 0 {
		assert.Failf(t, "bits differ", "%s: %d of %d elements, the first at %d (%g, want %g)",
			fmt.Sprintf(msg, args...), n, len(want), first, got[first], want[first])
	}
}

// runProduct runs y = a . w^T (m x n from m x k and n x k), or y += that,
// as forward runs a product: the split product into r.part and its
// reduce when the shape splits; it waits for the result.
func runProduct(t testing.TB, r *replica, y, a, w driver.Ptr, m, n, k int, acc bool) {
	t.Helper()
	require.NoError(t, r.w.do(func() error {
		qu := queue{r: r}
		qu.product(product{gemm: "gemm", sum: "reduce", y: y, x: a, w: w, m: int64(m), n: int64(n), k: int64(k), acc: acc})
		if qu.err != nil {
			return qu.err
		}
		return r.ctx.Sync(r.st)
	}))
}

// relError is the relative root-mean-square error of a product got
// against the float64 reference dot, plus init where the product added to
// it (acc).
func relError(got []float32, dot []float64, init []float32, acc bool) float64 {
	var num, den float64
	for i, d := range dot {
		ref := d
		if acc {
			ref += float64(init[i])
		}
		e := float64(got[i]) - ref
		num, den = num+e*e, den+ref*ref
	}
	return math.Sqrt(num / den)
}

// refProduct returns a . w^T in float64 (m x n from m x k and n x k), its
// rows spread over the cores.
func refProduct(a, w []float32, m, n, k int) []float64 {
	out := make([]float64, m*n)
	rows := make(chan int)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for i := range rows {
				ai := a[i*k : (i+1)*k]
				for j := range n {
					wj := w[j*k : (j+1)*k]
					d := 0.0
					for x, v := range ai {
						d += float64(v) * float64(wj[x])
					}
					out[i*n+j] = d
				}
			}
		})
	}
	for i := range m {
		rows <- i
	}
	close(rows)
	wg.Wait()
	return out
}

// TestGemmReduceNormMatchesRMSNorm: the reduce that ends a split product
// adds the partials in order of the split (then onto the residual when
// asked) with the float32 roundings the host redoes here, and the norm it
// fuses gives the bits of the rmsnorm kernel run on the same rows.
func TestGemmReduceNormMatchesRMSNorm(t *testing.T) {
	cases := []struct {
		name      string
		s, m, n   int
		acc, norm bool
	}{
		{"o: residual and norm", 4, 37, 2048, true, true},
		{"qkv: sum alone", 2, 16, 3072, false, false},
		{"last down: residual alone", 4, 5, 2048, true, false},
		{"one row, three splits, ragged width", 3, 1, 1000, true, true},
		{"sum and norm, no residual", 2, 130, 520, false, true},
	}
	const eps = 1e-5
	for _, bf16 := range []bool{true, false} {
		t.Run(map[bool]string{true: "bf16", false: "f32"}[bf16], func(t *testing.T) {
			r := testReplica(t, bf16)
			e := int(r.net.elt())
			tol := map[bool]float64{true: 1e-2, false: 1e-5}[bf16] // bf16 rounds to 8 bits
			rng := rand.New(rand.NewPCG(9, 10))
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					mn := tc.m * tc.n
					part, x0, w := randVals(rng, tc.s*mn, false), randVals(rng, mn, false), randVals(rng, tc.n, false)
					r.part = upload(t, r, part)
					x, dw := upload(t, r, x0), upload(t, r, w)
					xn, xn2 := upload(t, r, make([]byte, mn*e)), upload(t, r, make([]byte, mn*e))
					var norm driver.Ptr
					if tc.norm {
						norm = dw
					}
					require.NoError(t, r.w.do(func() error {
						qu := queue{r: r}
						qu.reduce("reduce", x, xn, norm, int64(tc.m), int64(tc.n), int64(tc.s), tc.acc, eps)
						qu.launch(r.k.rmsnorm, tc.m, 1, 256, r.args.reset().p(xn2).p(x).p(dw).p(0).i(tc.n).f(eps))
						if qu.err != nil {
							return qu.err
						}
						return r.ctx.Sync(r.st)
					}))
					want := make([]float32, mn)
					for i := range want {
						v := part[i]
						for s := 1; s < tc.s; s++ {
							v += part[s*mn+i]
						}
						if tc.acc {
							v = x0[i] + v
						}
						want[i] = v
					}
					got := download(t, r, x, mn)
					require.Equal(t, bitsOf(want), bitsOf(got), "the residual stream")
					fused, alone := downloadAs[byte](t, r, xn, mn*e), downloadAs[byte](t, r, xn2, mn*e)
					if !tc.norm {
						assert.Equal(t, make([]byte, mn*e), fused, "no norm asked, yet the norm's output changed")
						return
					}
					assert.Equal(t, alone, fused, "the fused norm's bits differ from rmsnorm's")
					// And both are RMSNorm (so that equal bits mean right bits).
					for row := range tc.m {
						xr := want[row*tc.n : (row+1)*tc.n]
						ss := 0.0
						for _, v := range xr {
							ss += float64(v) * float64(v)
						}
						inv := 1 / math.Sqrt(ss/float64(tc.n)+eps)
						for i, v := range xr {
							ref := float64(v) * inv * float64(w[i])
							o := row*tc.n + i
							var g float64
							if bf16 {
								g = float64(kernels.BF16ToF32(binary.LittleEndian.Uint16(fused[2*o:])))
							} else {
								g = float64(math.Float32frombits(binary.LittleEndian.Uint32(fused[4*o:])))
							}
							if !assert.InDelta(t, ref, g, tol*math.Abs(ref)+1e-6, "row %d column %d", row, i) {
								return
							}
						}
					}
				})
			}
		})
	}
}

// randVals returns n normal values, rounded to bf16 values when bf16.
func randVals(rng *rand.Rand, n int, bf16 bool) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
		if bf16 {
			v[i] = kernels.BF16ToF32(kernels.F32ToBF16(v[i]))
		}
	}
	return v
}

// uploadAs uploads v in the device format: bf16 bits or float32.
func uploadAs(t testing.TB, r *replica, v []float32, bf16 bool) driver.Ptr {
	if !bf16 {
		return upload(t, r, v)
	}
	b := make([]uint16, len(v))
	toBF16(b, v)
	return upload(t, r, b)
}

func bitsOf(v []float32) []uint32 {
	out := make([]uint32, len(v))
	for i, x := range v {
		out[i] = math.Float32bits(x)
	}
	return out
}

// testModelDir writes a small Llama (GQA 4:1, llama3 RoPE, head_dim 32) in
// float32 safetensors.
func testModelDir(t *testing.T) string {
	dir := t.TempDir()
	require.NoError(t, synth.WriteModel(dir, synth.Spec{
		Vocab: 512, Hidden: 256, Intermediate: 512, Layers: 2, Heads: 8, KVHeads: 2, HeadDim: 32,
		MaxPositions: 4096, RMSNormEps: 1e-5, RopeTheta: 500000, Llama3Rope: true, Tied: true,
		BOS: 1, EOS: []int{2}, DType: safetensors.F32, Std: 0.2,
	}, 11))
	return dir
}

func loadGPU(t *testing.T, dir string, bf16 bool, opts Options) *Net {
	t.Helper()
	gpuOrSkip(t)
	opts.ModelDir, opts.BF16 = dir, bf16
	opts.MaxRows, opts.MaxOutputs = max(opts.MaxRows, 1024), max(opts.MaxOutputs, 600)
	n, err := Load(opts)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, n.Close()) })
	return n
}

func loadCPU(t *testing.T, dir string, dt kernels.DType) backend.Net {
	cfg, w, err := llama.Load(dir, "", dt)
	require.NoError(t, err)
	m, err := llama.NewModel(cfg, w)
	require.NoError(t, err)
	return llama.NewCPU(m)
}

// trace feeds each prompt (whole, all in one step), then decodes steps
// tokens, all sequences together; it returns every sequence's logits after
// each step and the tokens it fed. The tokens are the greedy ones, or
// feed's when feed is not nil (so that two backends whose near-tied
// argmaxes differ still see the same inputs).
func trace(t *testing.T, net backend.Net, prompts [][]int, steps int, feed [][]int) ([][][]float32, [][]int) {
	t.Helper()
	states := make([]backend.State, len(prompts))
	st := make([]backend.Step, len(prompts))
	for i, p := range prompts {
		s, err := net.NewState()
		require.NoError(t, err)
		t.Cleanup(s.Free)
		states[i] = s
		st[i] = backend.Step{State: s, Tokens: p, Out: backend.Logits}
	}
	out := make([][][]float32, len(prompts))
	fed := make([][]int, len(prompts))
	for step := range steps + 1 {
		require.NoError(t, net.Forward(st))
		for i, s := range states {
			out[i] = append(out[i], append([]float32(nil), s.Logits()...))
			tok := s.Token()
			if feed != nil && step < len(feed[i]) {
				tok = feed[i][step]
			}
			fed[i] = append(fed[i], tok)
			st[i].Tokens = []int{tok}
		}
	}
	return out, fed
}

// TestForwardMatchesCPU runs prompts longer than a KV page through both
// backends, feeding both the CPU's greedy tokens: f32 logits agree to 1e-4
// of their scale; bf16 to 5e-2 (on the GPU the activations are rounded to
// bf16 before each product and the KV cache holds bf16 keys and values;
// the CPU keeps both float32).
func TestForwardMatchesCPU(t *testing.T) {
	gpuOrSkip(t)
	dir := testModelDir(t)
	rng := rand.New(rand.NewPCG(1, 1))
	prompts := [][]int{randIDs(rng, 5, 512), randIDs(rng, 40, 512), randIDs(rng, 70, 512)}
	for _, tc := range []struct {
		name string
		bf16 bool
		dt   kernels.DType
		tol  float64
	}{{"f32", false, kernels.F32, 1e-4}, {"bf16", true, kernels.BF16, 5e-2}} {
		t.Run(tc.name, func(t *testing.T) {
			cpu, tokens := trace(t, loadCPU(t, dir, tc.dt), prompts, 6, nil)
			gpu, _ := trace(t, loadGPU(t, dir, tc.bf16, Options{}), prompts, 6, tokens)
			worst := 0.0
			for i := range prompts {
				for s := range cpu[i] {
					scale, diff := 0.0, 0.0
					for j, v := range cpu[i][s] {
						scale = math.Max(scale, math.Abs(float64(v)))
						diff = math.Max(diff, math.Abs(float64(v-gpu[i][s][j])))
					}
					worst = math.Max(worst, diff/scale)
					assert.LessOrEqual(t, diff/scale, tc.tol, "sequence %d step %d: max logit error %g of scale %g", i, s, diff, scale)
				}
			}
			t.Logf("%s: worst logit error %.3g of the scale", tc.name, worst)
		})
	}
}

func randIDs(rng *rand.Rand, n, vocab int) []int {
	ids := make([]int, n)
	for i := range ids {
		ids[i] = rng.IntN(vocab)
	}
	return ids
}

// TestBatchInvariance runs the same 64 sequences alone, seven at a time,
// 64 at a time, and 64 among 512 in flight with prefill chunks mixed into
// decode steps: every logit of every step must be bitwise the same.
func TestBatchInvariance(t *testing.T) {
	dir := testModelDir(t)
	rng := rand.New(rand.NewPCG(5, 5))
	targets := make([][]int, 64)
	for i := range targets {
		targets[i] = randIDs(rng, 1+rng.IntN(100), 512)
	}
	fillers := make([][]int, 448)
	for i := range fillers {
		fillers[i] = randIDs(rng, 1+rng.IntN(100), 512)
	}
	for _, bf16 := range []bool{true, false} {
		t.Run(map[bool]string{true: "bf16", false: "f32"}[bf16], func(t *testing.T) {
			net := loadGPU(t, dir, bf16, Options{MaxRows: 4096})
			const steps = 8
			var want [][][]float32
			for _, p := range targets {
				alone, _ := trace(t, net, [][]int{p}, steps, nil)
				want = append(want, alone[0])
			}
			for _, sc := range []struct {
				name   string
				group  int
				others [][]int
				budget int // prefill tokens a step; 0: whole prompts at once
			}{{"among 7", 7, nil, 0}, {"among 64", 64, nil, 0}, {"among 512, chunked prefill", 64, fillers, 300}} {
				got := scheduled(t, net, targets, sc.group, sc.others, sc.budget, steps)
				for i := range targets {
					for s := range want[i] {
						if !assert.Equal(t, bitsOf(want[i][s]), bitsOf(got[i][s]), "%s: sequence %d step %d", sc.name, i, s) {
							return
						}
					}
				}
			}
		})
	}
}

// scheduled runs the targets in groups of group, each group with every
// other sequence in flight too, prompts fed in chunks of at most budget
// tokens a step beside the decodes (0: whole), as the engine's scheduler
// does; it returns the targets' logits after their prompts and each of
// steps decoded tokens.
func scheduled(t *testing.T, net backend.Net, targets [][]int, group int, others [][]int, budget, steps int) [][][]float32 {
	t.Helper()
	out := make([][][]float32, len(targets))
	for g0 := 0; g0 < len(targets); g0 += group {
		type sq struct {
			s      backend.State
			prompt []int
			fed    int
			tok    int
			target int // -1: another sequence
			n      int
		}
		var seqs []*sq
		for i := g0; i < min(g0+group, len(targets)); i++ {
			seqs = append(seqs, &sq{prompt: targets[i], target: i})
		}
		for _, p := range others {
			seqs = append(seqs, &sq{prompt: p, target: -1})
		}
		for _, q := range seqs {
			s, err := net.NewState()
			require.NoError(t, err)
			q.s = s
		}
		for {
			var st []backend.Step
			var in []*sq
			left := budget
			for _, q := range seqs {
				if q.fed == len(q.prompt) && q.n <= steps {
					st = append(st, backend.Step{State: q.s, Tokens: []int{q.tok}, Out: backend.Logits})
					in = append(in, q)
				}
			}
			for _, q := range seqs {
				if q.fed < len(q.prompt) && (budget == 0 || left > 0) {
					n := len(q.prompt) - q.fed
					if budget > 0 {
						n = min(n, left)
						left -= n
					}
					out := backend.NoOutput
					if q.fed+n == len(q.prompt) {
						out = backend.Logits
					}
					st = append(st, backend.Step{State: q.s, Tokens: q.prompt[q.fed : q.fed+n], Out: out})
					in = append(in, q)
				}
			}
			if len(st) == 0 {
				break
			}
			require.NoError(t, net.Forward(st))
			for i, q := range in {
				if q.fed < len(q.prompt) {
					q.fed += len(st[i].Tokens)
					if q.fed < len(q.prompt) {
						continue
					}
				}
				q.tok = q.s.Token()
				q.n++
				if q.target >= 0 {
					out[q.target] = append(out[q.target], append([]float32(nil), q.s.Logits()...))
				}
			}
		}
		for _, q := range seqs {
			q.s.Free()
		}
	}
	return out
}

// TestPrefixCopies: a sequence started from a snapshot continues with the
// bits of one that ran the prefix itself, and freed states and prefixes
// give their pages back.
func TestPrefixCopies(t *testing.T) {
	dir := testModelDir(t)
	net := loadGPU(t, dir, true, Options{})
	rng := rand.New(rand.NewPCG(2, 2))
	prompt := randIDs(rng, 75, 512)
	all, _ := trace(t, net, [][]int{prompt}, 3, nil)
	whole := all[0]
	free := len(net.reps[0].free)

	src, err := net.NewState()
	require.NoError(t, err)
	require.NoError(t, net.Forward([]backend.Step{{State: src, Tokens: prompt[:70]}}))
	p, err := src.Snapshot(66)
	require.NoError(t, err)
	dst, err := net.NewState()
	require.NoError(t, err)
	require.NoError(t, dst.LoadPrefix(p))
	assert.Equal(t, 66, dst.Pos())
	require.NoError(t, net.Forward(nil), "an empty step runs nothing")
	st := []backend.Step{{State: dst, Tokens: prompt[66:], Out: backend.Logits}}
	for s := range 4 {
		require.NoError(t, net.Forward(st))
		assert.Equal(t, bitsOf(whole[s]), bitsOf(dst.Logits()), "step %d after the prefix", s)
		st[0].Tokens = []int{dst.Token()}
	}
	src.Free()
	dst.Free()
	p.Free()
	assert.Equal(t, free, len(net.reps[0].free), "pages leaked")
}

// TestKVFull: a step that needs more KV pages than the pool has fails
// without touching any state, and is not a device failure.
func TestKVFull(t *testing.T) {
	dir := testModelDir(t)
	// Four pages of the bf16 cache: 2 layers x (K, V) x 2 KV heads x 32
	// dimensions x 2 bytes a position.
	net := loadGPU(t, dir, true, Options{KVBytes: 4 * pageSize * int64(2*2*2*32*2)})
	a, err := net.NewState()
	require.NoError(t, err)
	defer a.Free()
	b, err := net.NewState()
	require.NoError(t, err)
	defer b.Free()
	rng := rand.New(rand.NewPCG(3, 3))
	require.NoError(t, net.Forward([]backend.Step{{State: a, Tokens: randIDs(rng, 3*pageSize, 512)}}))
	err = net.Forward([]backend.Step{{State: a, Tokens: []int{1}}, {State: b, Tokens: randIDs(rng, 2*pageSize, 512)}})
	require.Error(t, err)
	assert.ErrorIs(t, err, errKVFull)
	assert.False(t, errors.Is(err, backend.ErrDevice))
	assert.Equal(t, 3*pageSize, a.Pos())
	assert.Equal(t, 0, b.Pos())
	assert.Len(t, net.reps[0].free, 1)
}

// Reference fixtures of transformers + peft (see ../llama/testdata).
type refDoc struct {
	Cases []struct {
		PromptIDs []int     `json:"prompt_ids"`
		OutputIDs []int     `json:"output_ids"`
		Margins   []float64 `json:"margins"`
	} `json:"cases"`
	FirstStepLogits []struct {
		Case   int       `json:"case"`
		Logits []float64 `json:"logits"`
	} `json:"first_step_logits"`
	Model   string  `json:"model"`
	Adapter *string `json:"adapter"`
}

// TestParityWithTransformers: f32 on the GPU is greedy-token-exact with
// transformers + peft up to the reference's first near-tie (top-2 margin
// under 1e-3), and its first-step logits agree to 1e-4 of their scale.
func TestParityWithTransformers(t *testing.T) {
	gpuOrSkip(t)
	refs, err := filepath.Glob("../llama/testdata/ref/*.json.gz")
	require.NoError(t, err)
	// The *.bf16.json.gz references are transformers' bfloat16 runs; this
	// test holds f32 to the float32 ones.
	refs = slices.DeleteFunc(refs, func(p string) bool { return strings.HasSuffix(p, ".bf16.json.gz") })
	require.NotEmpty(t, refs)
	for _, ref := range refs {
		t.Run(filepath.Base(ref), func(t *testing.T) {
			f, err := os.Open(ref)
			require.NoError(t, err)
			defer f.Close()
			zr, err := gzip.NewReader(f)
			require.NoError(t, err)
			var doc refDoc
			require.NoError(t, json.NewDecoder(zr).Decode(&doc))
			opts := Options{ModelDir: filepath.Join("../llama/testdata", doc.Model), MaxRows: 1024, MaxOutputs: 4}
			if doc.Adapter != nil {
				opts.AdapterDir = filepath.Join("../llama/testdata", *doc.Adapter)
			}
			net, err := Load(opts)
			require.NoError(t, err)
			defer net.Close()
			compared, worst := 0, 0.0
			for i, c := range doc.Cases {
				k := len(c.OutputIDs)
				for j, m := range c.Margins {
					if m < 1e-3 {
						k = j
						break
					}
				}
				s, err := net.NewState()
				require.NoError(t, err)
				st := []backend.Step{{State: s, Tokens: c.PromptIDs, Out: backend.Logits}}
				var got []int
				for step := range k {
					require.NoError(t, net.Forward(st))
					if step == 0 {
						for _, fl := range doc.FirstStepLogits {
							if fl.Case == i {
								scale, diff := 0.0, 0.0
								for j, v := range fl.Logits {
									scale = math.Max(scale, math.Abs(v))
									diff = math.Max(diff, math.Abs(v-float64(s.Logits()[j])))
								}
								worst = math.Max(worst, diff/scale)
								assert.LessOrEqual(t, diff/scale, 1e-4, "case %d first-step logits", i)
							}
						}
						st[0].Out = backend.Argmax
					}
					got = append(got, s.Token())
					st[0].Tokens = []int{s.Token()}
				}
				s.Free()
				compared += k
				assert.Equal(t, c.OutputIDs[:k], got, "case %d greedy ids", i)
			}
			t.Logf("%d greedy steps compared; first-step logits max error %.2g of their scale", compared, worst)
		})
	}
}

// TestGraphsMatchDirect decodes the same sequences with recorded steps
// replayed and with every launch queued directly: the logits have the
// same bits, and the replay did happen.
func TestGraphsMatchDirect(t *testing.T) {
	dir := testModelDir(t)
	rng := rand.New(rand.NewPCG(9, 9))
	prompts := [][]int{randIDs(rng, 3, 512), randIDs(rng, 33, 512), randIDs(rng, 64, 512)}
	for _, bf16 := range []bool{true, false} {
		t.Run(map[bool]string{true: "bf16", false: "f32"}[bf16], func(t *testing.T) {
			// Two models on one GPU: each with a small KV pool.
			replayed := loadGPU(t, dir, bf16, Options{KVBytes: 64 << 20})
			direct := loadGPU(t, dir, bf16, Options{KVBytes: 64 << 20})
			require.True(t, replayed.reps[0].graphs.on, "graphs are off (%s set to 0, or profiling?)", EnvGraphs)
			direct.reps[0].graphs.on = false
			const steps = 12
			a, fed := trace(t, replayed, prompts, steps, nil)
			b, _ := trace(t, direct, prompts, steps, fed)
			assert.NotEmpty(t, replayed.reps[0].graphs.rec, "no step was recorded")
			for i := range prompts {
				for s := range a[i] {
					require.Equal(t, bitsOf(b[i][s]), bitsOf(a[i][s]), "prompt %d, step %d", i, s)
				}
			}
		})
	}
}

// TestAttentionTileMatchesRows: attention in tiles (attention_tile, or
// attention_mma's tiles where it runs: bf16, head_dim 64 and 128) gives
// the rows-alone bits for every row whatever the tiles, over head shapes that take each
// path of the kernels (head_dim a multiple of 8, of 4 only, of 2 only; 1
// to 16 query heads a KV head), pages of 32 and 16 positions, and
// sequences that start at 0, continue a cache or decode; and the one-row
// kernel agrees with a float64 reference.
func TestAttentionTileMatchesRows(t *testing.T) {
	shapes := []struct{ heads, kvheads, hd int }{{8, 2, 32}, {32, 8, 64}, {16, 1, 128}, {8, 8, 64}, {24, 8, 128}, {12, 4, 96}, {6, 3, 36}, {4, 2, 34}}
	// Each sequence: the positions cached before the step, its rows in it.
	seqs := []struct{ cached, rows int }{{0, 70}, {40, 23}, {100, 1}, {5, 2}, {31, 33}, {0, 1}}
	for _, bf16 := range []bool{true, false} {
		t.Run(map[bool]string{true: "bf16", false: "f32"}[bf16], func(t *testing.T) {
			r := testReplica(t, bf16)
			rng := rand.New(rand.NewPCG(9, 9))
			elt := 4
			if bf16 {
				elt = 2
			}
			for _, sh := range shapes {
				for _, page := range []int{pageSize, 16} {
					group := sh.heads / sh.kvheads
					qdim, kvdim := sh.heads*sh.hd, sh.kvheads*sh.hd
					width := qdim + 2*kvdim
					// Rows in step order; each sequence's pages scattered over the pool.
					var pos, ptoff, pagetab []int32
					var firsts []int
					npages := 0
					for _, s := range seqs {
						npages += (s.cached + s.rows + page - 1) / page
					}
					perm := rng.Perm(npages)
					for _, s := range seqs {
						firsts = append(firsts, len(pos))
						off := len(pagetab)
						for range (s.cached + s.rows + page - 1) / page {
							pagetab = append(pagetab, int32(perm[len(pagetab)]))
						}
						for j := range s.rows {
							pos, ptoff = append(pos, int32(s.cached+j)), append(ptoff, int32(off))
						}
					}
					R := len(pos)
					qkv := randVals(rng, R*width, false)
					kc, vc := randVals(rng, npages*page*kvdim, bf16), randVals(rng, npages*page*kvdim, bf16)
					dQKV, dPos, dPtoff, dPt := upload(t, r, qkv), upload(t, r, pos), upload(t, r, ptoff), upload(t, r, pagetab)
					dK, dV := uploadAs(t, r, kc, bf16), uploadAs(t, r, vc, bf16)
					outBytes := R * qdim * elt
					// run computes the step's attention (attend: rows alone, and runs
					// of (first, rows) of at most most rows) into an output that
					// starts as NaNs.
					run := func(ones, runs []int32, most int) []byte {
						nan := make([]byte, outBytes)
						for i := range nan {
							nan[i] = 0xff
						}
						out := upload(t, r, nan)
						var dOnes, dRuns driver.Ptr // uploaded here: upload runs on the worker itself
						if len(ones) > 0 {
							dOnes = upload(t, r, ones)
						}
						if len(runs) > 0 {
							dRuns = upload(t, r, runs)
						}
						require.NoError(t, r.w.do(func() error {
							qu := queue{r: r}
							r.attend(&qu, attention{out: out, qkv: dQKV, ones: dOnes, runs: dRuns, pos: dPos, ptoff: dPtoff, pt: dPt,
								kc: dK, vc: dV, nOnes: len(ones), nTiles: len(runs) / 2, tileRows: most,
								heads: sh.heads, kvheads: sh.kvheads, hd: sh.hd, page: page, pstride: int64(page * kvdim)})
							if qu.err != nil {
								return qu.err
							}
							return r.ctx.Sync(r.st)
						}))
						got := make([]byte, outBytes)
						p, nb := bytesOf(got)
						require.NoError(t, r.w.do(func() error { return r.ctx.CopyOut(p, out, nb) }))
						return got
					}
					all := make([]int32, R)
					for i := range all {
						all[i] = int32(i)
					}
					want := run(all, nil, 1)
					name := func(most int) string {
						return fmt.Sprintf("%d heads, %d KV heads, head_dim %d, pages of %d, tiles of %d", sh.heads, sh.kvheads, sh.hd, page, most)
					}
					_, mma := r.k.attMMA[sh.hd]
					checkReference(t, want, bf16, mma, qkv, kc, vc, pos, ptoff, pagetab, sh.heads, sh.kvheads, sh.hd, page, name(1))
					for _, most := range []int{2, 7, maxTileRows(group)} {
						if most*group > attTilePairs {
							continue
						}
						var ones, runs []int32
						for i, s := range seqs {
							ones, runs = appendTiles(ones, runs, firsts[i], s.rows, most)
						}
						require.NotEmpty(t, runs)
						assert.True(t, bytes.Equal(want, run(ones, runs, most)), "%s: the tiles' bits differ from the rows alone", name(most))
					}
				}
			}
		})
	}
}

// checkReference holds the attention output got (bf16 or float32 bytes)
// to a float64 computation from the same cached values; mma: from the
// queries rounded to bf16, as the tensor-core kernel takes them.
func checkReference(t *testing.T, got []byte, bf16, mma bool, qkv, kc, vc []float32, pos, ptoff, pagetab []int32, heads, kvheads, hd, page int, name string) {
	t.Helper()
	group, qdim, kvdim := heads/kvheads, heads*hd, kvheads*hd
	width := qdim + 2*kvdim
	scale := 1 / math.Sqrt(float64(hd))
	worst := 0.0
	for r := range pos {
		for h := range heads {
			npos := int(pos[r]) + 1
			at := func(t int) int {
				return int(pagetab[int(ptoff[r])+t/page])*page*kvdim + (t%page)*kvdim + (h/group)*hd
			}
			s := make([]float64, npos)
			top := math.Inf(-1)
			for t := range npos {
				for i := range hd {
					q := qkv[r*width+h*hd+i]
					if mma {
						q = kernels.BF16ToF32(kernels.F32ToBF16(q))
					}
					s[t] += float64(q) * float64(kc[at(t)+i])
				}
				s[t] *= scale
				top = math.Max(top, s[t])
			}
			sum := 0.0
			for t := range s {
				s[t] = math.Exp(s[t] - top)
				sum += s[t]
			}
			for i := range hd {
				ref := 0.0
				for t := range npos {
					ref += s[t] * float64(vc[at(t)+i])
				}
				ref /= sum
				k := r*qdim + h*hd + i
				var v float64
				if bf16 {
					v = float64(kernels.BF16ToF32(binary.LittleEndian.Uint16(got[2*k:])))
				} else {
					v = float64(math.Float32frombits(binary.LittleEndian.Uint32(got[4*k:])))
				}
				worst = math.Max(worst, math.Abs(v-ref)/(1+math.Abs(ref)))
			}
		}
	}
	tol := 1e-4 // float32 sums of a few hundred terms; a wrong head or position is off by the values' size
	if bf16 {
		tol = 4e-3 // the output rounded to bf16: 2^-9 of its size at most
	}
	if mma {
		// and the weights rounded to bf16 for the tensor cores: 2^-9 of
		// each value's share more
		tol = 8e-3
	}
	assert.LessOrEqual(t, worst, tol, "%s: worst error %g against float64", name, worst)
}

// TestPrefillSplits: a 70-token prompt prefilled in one step, in steps of
// 1, 5, 17 and 47 tokens, and token by token gives the same bits: the
// logits after its last token and after each of 8 greedy steps, and the
// tokens, in both dtypes. Each split tiles attention differently (5 tiles
// of 14 rows; one row alone, then 5, 9 + 8, 16 + 16 + 15; every row alone).
func TestPrefillSplits(t *testing.T) {
	dir := testModelDir(t)
	rng := rand.New(rand.NewPCG(4, 4))
	prompt := randIDs(rng, 70, 512)
	byToken := make([]int, len(prompt))
	for i := range byToken {
		byToken[i] = 1
	}
	splits := []struct {
		name  string
		sizes []int
	}{{"whole", []int{70}}, {"1, 5, 17, 47", []int{1, 5, 17, 47}}, {"token by token", byToken}}
	for _, bf16 := range []bool{true, false} {
		t.Run(map[bool]string{true: "bf16", false: "f32"}[bf16], func(t *testing.T) {
			net := loadGPU(t, dir, bf16, Options{})
			var want [][]float32
			var wantTokens []int
			for i, sp := range splits {
				s, err := net.NewState()
				require.NoError(t, err)
				at := 0
				for j, n := range sp.sizes {
					out := backend.NoOutput
					if j == len(sp.sizes)-1 {
						out = backend.Logits
					}
					require.NoError(t, net.Forward([]backend.Step{{State: s, Tokens: prompt[at : at+n], Out: out}}))
					at += n
				}
				require.Equal(t, len(prompt), at)
				logits := [][]float32{append([]float32(nil), s.Logits()...)}
				tokens := []int{s.Token()}
				for range 8 {
					require.NoError(t, net.Forward([]backend.Step{{State: s, Tokens: []int{s.Token()}, Out: backend.Logits}}))
					logits = append(logits, append([]float32(nil), s.Logits()...))
					tokens = append(tokens, s.Token())
				}
				s.Free()
				if i == 0 {
					want, wantTokens = logits, tokens
					continue
				}
				for k := range want {
					if !assert.Equal(t, bitsOf(want[k]), bitsOf(logits[k]), "%s: logits %d steps after the prompt differ from the whole prompt's", sp.name, k) {
						break
					}
				}
				assert.Equal(t, wantTokens, tokens, "%s: greedy tokens", sp.name)
			}
		})
	}
}

// argmax, whole or in parts merged by argmax_merge, gives sample.Greedy's
// choice: the largest logit, the lowest index among equals, NaN never (0
// when all are NaN), wherever in the row the best lies.
func TestArgmaxMatchesGreedy(t *testing.T) {
	r := testReplica(t, true)
	const vocab = 128256
	rng := rand.New(rand.NewPCG(11, 12))
	var rows [][]float32
	add := func(f func(row []float32)) {
		row := randVals(rng, vocab, false)
		f(row)
		rows = append(rows, row)
	}
	add(func([]float32) {})
	for _, at := range []int{0, 1, 4007, 4008, vocab / 2, vocab - 2, vocab - 1} {
		add(func(row []float32) { row[at] = 100 })
	}
	add(func(row []float32) { row[9000], row[70000], row[vocab-1] = 50, 50, 50 }) // ties across parts
	add(func(row []float32) { row[5], row[6] = float32(math.NaN()), 60 })
	add(func(row []float32) {
		for i := range row {
			row[i] = float32(math.NaN())
		}
	})
	add(func(row []float32) {
		for i := range row {
			row[i] = -7 // all equal: the first
		}
	})
	flat := make([]float32, 0, len(rows)*vocab)
	for _, row := range rows {
		flat = append(flat, row...)
	}
	logits := upload(t, r, flat)
	out := deviceAlloc(t, r, 4*int64(len(rows)))
	val := deviceAlloc(t, r, 4*int64(len(rows))*maxArgmaxParts)
	idx := deviceAlloc(t, r, 4*int64(len(rows))*maxArgmaxParts)
	for _, parts := range []int{1, 2, 3, 7, maxArgmaxParts} {
		require.NoError(t, r.w.do(func() error {
			qu := queue{r: r}
			qu.launch(r.k.argmax, len(rows), parts, 256, r.args.reset().p(out).p(val).p(idx).p(logits).i(vocab))
			if parts > 1 {
				qu.launch(r.k.argmaxMerge, len(rows), 1, 32, r.args.reset().p(out).p(val).p(idx).i(parts))
			}
			if qu.err != nil {
				return qu.err
			}
			return r.ctx.Sync(r.st)
		}))
		got := downloadAs[int32](t, r, out, len(rows))
		for i, row := range rows {
			assert.Equal(t, sample.Greedy(row), int(got[i]), "%d parts, row %d", parts, i)
		}
	}
}

// TestGemmSwiGLU holds the SwiGLU epilogue to the path it replaces: for
// each kernel that takes it, act from the fused product must have the
// bits of the float32 product followed by swiglu_bf16 on the interleaved
// layout, for any row count; that swiglu must give the bits of the plain
// layout's on the same values; and act must come within bf16's rounding
// of silu(gate)*up in float64 (checked on a few rows). w's rows are taken
// as interleaved gate|up (N = 2*inter); every launch is unsplit.
func TestGemmSwiGLU(t *testing.T) {
	r := testReplica(t, true)
	rng := rand.New(rand.NewPCG(11, 12))
	for _, inter := range []int{64, 1024, 8192} {
		for _, k := range []int{2048, 2044} {
			n := 2 * inter
			w := randVals(rng, n*k, true)
			dw := uploadAs(t, r, w, true)
			for _, m := range []int{1, 16, 17, 100, 600} {
				t.Run(fmt.Sprintf("%dx%dx%d", m, n, k), func(t *testing.T) {
					a := randVals(rng, m*k, true)
					da := uploadAs(t, r, a, true)
					gu := deviceAlloc(t, r, 4*int64(m*n))
					runTile(t, r, tileWide, gu, da, dw, m, n, k, 1, false)
					want := runSwiGLU(t, r, gu, m, inter, true)

					// The same values in the plain layout give the same bits.
					y := download(t, r, gu, m*n)
					plain := make([]float32, m*n)
					for row := range m {
						for i := range int64(inter) {
							for _, up := range []bool{false, true} {
								plain[row*n+int(guRow(i, int64(inter), up, false))] = y[row*n+int(guRow(i, int64(inter), up, true))]
							}
						}
					}
					copyTo(t, r, gu, plain)
					assert.Equal(t, want, runSwiGLU(t, r, gu, m, inter, false), "swiglu: interleaved and plain layouts")

					checkSwiGLURef(t, want, a, w, m, inter, k)
					act := deviceAlloc(t, r, 2*int64(m*inter))
					for _, tl := range []tile{tileMid, tileWide, tileBig, tileBigK32, tileHopper} {
						if !r.has(tl) {
							continue
						}
						if tl.vector() && k%8 != 0 {
							continue
						}
						require.NoError(t, r.w.do(func() error {
							if err := r.gemmTileSwiGLU(tl, act, da, dw, int64(m), int64(n), int64(k)); err != nil {
								return err
							}
							return r.ctx.Sync(r.st)
						}), "%s", tl)
						got := downloadAs[uint16](t, r, act, m*inter)
						if !slices.Equal(want, got) {
							i := 0
							for want[i] == got[i] {
								i++
							}
							assert.Failf(t, "bits differ", "%s: act[%d][%d] %#04x, want %#04x", tl, i/inter, i%inter, got[i], want[i])
						}
					}
				})
			}
		}
	}
}

// runSwiGLU runs swiglu_bf16 over m rows of gu (2*inter float32s each,
// interleaved or plain) and returns act's bf16 bits.
func runSwiGLU(t *testing.T, r *replica, gu driver.Ptr, m, inter int, interleaved bool) []uint16 {
	t.Helper()
	act := deviceAlloc(t, r, 2*int64(m*inter))
	require.NoError(t, r.w.do(func() error {
		qu := queue{r: r}
		qu.launch(r.k.swiglu, m, (inter+1023)/1024, 256, r.args.reset().p(act).p(gu).i(inter).i(flag(interleaved)))
		if qu.err != nil {
			return qu.err
		}
		return r.ctx.Sync(r.st)
	}))
	return downloadAs[uint16](t, r, act, m*inter)
}

// checkSwiGLURef compares act (bf16 bits, m x inter) on its first, middle
// and last rows with silu(gate)*up in float64 from a . w^T, w's rows
// interleaved: within one bf16 rounding, plus a little for the float32
// sums.
func checkSwiGLURef(t *testing.T, act []uint16, a, w []float32, m, inter, k int) {
	t.Helper()
	n := 2 * inter
	for _, row := range []int{0, m / 2, m - 1} {
		dot := refProduct(a[row*k:(row+1)*k], w, 1, n, k)
		bad := 0
		for i := range inter {
			g := dot[guRow(int64(i), int64(inter), false, true)]
			u := dot[guRow(int64(i), int64(inter), true, true)]
			ref := g / (1 + math.Exp(-g)) * u
			got := float64(kernels.BF16ToF32(act[row*inter+i]))
			if math.Abs(got-ref) > math.Abs(ref)/256+0.05 {
				if bad == 0 {
					t.Errorf("row %d act[%d] = %g, want %g (gate %g, up %g)", row, i, got, ref, g, u)
				}
				bad++
			}
		}
		assert.Zero(t, bad, "row %d: elements outside bf16 tolerance", row)
	}
}

// TestGPULoadPhases checks Load's breakdown: every phase, in the order
// they run, none negative, and together no longer than the load; a bf16
// load of float32 weights converts and uploads every matrix.
func TestGPULoadPhases(t *testing.T) {
	dir := testModelDir(t)
	start := time.Now()
	n := loadGPU(t, dir, true, Options{})
	total := time.Since(start)
	phases := n.LoadPhases()
	var names []string
	var sum time.Duration
	for _, p := range phases {
		names = append(names, p.Name)
		assert.GreaterOrEqual(t, p.D, time.Duration(0), p.Name)
		sum += p.D
		t.Logf("%-12s %v", p.Name, p.D)
	}
	assert.Equal(t, []string{PhaseDriver, PhaseModules, PhaseAlloc, PhaseReadMerge, PhaseConvert, PhaseUpload, PhaseFinish}, names)
	assert.LessOrEqual(t, sum, total)
	for _, p := range phases {
		if p.Name == PhaseModules || p.Name == PhaseConvert || p.Name == PhaseUpload {
			assert.Positive(t, p.D, p.Name)
		}
	}
}

// TestGemmSplitWhole holds gemm_bf16_wgs (every range of K summed in the
// block, then the RMSNorm kernel) to the split product and its reduce, bit
// for bit, on the split shapes of Llama 3.2 1B at the row counts where
// fuseSplits picks it, a ragged row count, and with and without adding
// onto the residual and normalising.
func TestGemmSplitWhole(t *testing.T) {
	r := testReplica(t, true)
	if r.k.gemmWGS == nil {
		t.Skipf("gemm_bf16_wgs runs on compute capability 9.0 only (this is %s, %s)", r.gpu.Name, r.gpu.CC())
	}
	shapes := []struct{ m, n, k int }{{1024, 2048, 2048}, {1024, 2048, 8192}, {1024, 3072, 2048}, {300, 2048, 8192}, {4096, 2048, 2048}}
	var part int64
	for _, sh := range shapes {
		part = max(part, int64(sh.m*sh.n)*splitK(int64(sh.n), int64(sh.k)))
	}
	r.part = deviceAlloc(t, r, 4*part)
	rng := rand.New(rand.NewPCG(11, 12))
	const eps = 1e-5
	for _, sh := range shapes {
		m, n, k := int64(sh.m), int64(sh.n), int64(sh.k)
		s := splitK(n, k)
		require.Greater(t, s, int64(1), "%v does not split", sh)
		t.Run(fmt.Sprintf("%dx%dx%d/S=%d", sh.m, sh.n, sh.k, s), func(t *testing.T) {
			t.Logf("fuseSplits picks it: %v", fuseSplits(m, n, k, s, r.gpu.SMs, true))
			da, dw := uploadAs(t, r, randVals(rng, sh.m*sh.k, true), true), uploadAs(t, r, randVals(rng, sh.n*sh.k, true), true)
			init := randVals(rng, sh.m*sh.n, false)
			norm := upload(t, r, randVals(rng, sh.n, false))
			y, yn := deviceAlloc(t, r, 4*m*n), deviceAlloc(t, r, 2*m*n)
			for _, acc := range []bool{false, true} {
				for _, withNorm := range []bool{false, true} {
					w := driver.Ptr(0)
					if withNorm {
						w = norm
					}
					run := func(whole bool) (sum, normed []float32) {
						copyTo(t, r, y, init)
						require.NoError(t, r.w.do(func() error {
							q := queue{r: r}
							if whole {
								q.gemmSplitWhole("gemm", y, da, dw, m, n, k, s, acc)
								q.normRows(product{y: y, yn: yn, norm: w, m: m, n: n, eps: eps})
							} else {
								q.gemm("gemm", r.part, da, dw, m, n, k, s, false)
								q.reduce("reduce", y, yn, w, m, n, s, acc, eps)
							}
							if q.err != nil {
								return q.err
							}
							return r.ctx.Sync(r.st)
						}))
						sum = download(t, r, y, sh.m*sh.n)
						if w != 0 {
							normed = download(t, r, yn, sh.m*sh.n/2) // bf16 pairs, compared as bits
						}
						return sum, normed
					}
					wantSum, wantNorm := run(false)
					gotSum, gotNorm := run(true)
					assert.Equal(t, bitsOf(wantSum), bitsOf(gotSum), "accumulate=%v norm=%v: the sums differ", acc, withNorm)
					assert.Equal(t, bitsOf(wantNorm), bitsOf(gotNorm), "accumulate=%v norm=%v: the normed rows differ", acc, withNorm)
				}
			}
		})
	}
}

// TestGemmRow holds gemm_bf16_row to the kernels a one-row step would
// otherwise run, bit for bit: the input row from rmsnorm (or as given),
// the streamed product (split where the shape splits) and its reduce,
// adding onto the residual or not, and gate|up's swiglu. The shapes:
// Llama 3.2 1B's five products (ranges 2, 2, 1, 4, 1), and ragged column
// counts that leave a block part empty.
func TestGemmRow(t *testing.T) {
	r := rowReplica(t)
	rng := rand.New(rand.NewPCG(13, 14))
	const eps = 1e-5
	shapes := []struct {
		n, k  int
		flags int
	}{
		{3072, 2048, rowNorm}, {2048, 2048, rowAcc}, {16384, 2048, rowNorm | rowSwiGLU}, {2048, 8192, rowAcc},
		{128256, 2048, rowNorm}, {1000, 2048, rowNorm}, {1000, 8192, rowAcc}, {8208, 2048, rowSwiGLU}, {2056, 4096, 0},
	}
	var part int64
	for _, sh := range shapes {
		part = max(part, int64(sh.n)*splitK(int64(sh.n), int64(sh.k)))
	}
	r.part = deviceAlloc(t, r, 4*part)
	for _, sh := range shapes {
		n, k := int64(sh.n), int64(sh.k)
		s := splitK(n, k)
		t.Run(fmt.Sprintf("%dx%d/S=%d/flags=%d", sh.n, sh.k, s, sh.flags), func(t *testing.T) {
			require.True(t, rowTakes(k, s))
			x := upload(t, r, randVals(rng, sh.k, false))
			norm := upload(t, r, randVals(rng, sh.k, false))
			a := uploadAs(t, r, randVals(rng, sh.k, true), true)
			dw := uploadAs(t, r, randVals(rng, sh.n*sh.k, true), true)
			init := randVals(rng, sh.n, false)
			y, xn := deviceAlloc(t, r, 4*n), deviceAlloc(t, r, 2*k)
			act := deviceAlloc(t, r, 2*n)
			swiglu := sh.flags&rowSwiGLU != 0
			run := func(fused bool) []float32 {
				copyTo(t, r, y, init)
				copyTo(t, r, act, make([]float32, sh.n/2))
				require.NoError(t, r.w.do(func() error {
					q := queue{r: r}
					if fused {
						q.row(rowProduct{name: "row", y: y, act: act, a: a, x: x, norm: norm, w: dw, n: n, k: k, flags: sh.flags, eps: eps})
					} else {
						in := a
						if sh.flags&rowNorm != 0 {
							q.launch(r.k.rmsnorm, 1, 1, 256, r.args.reset().p(xn).p(x).p(norm).p(0).i(sh.k).f(eps))
							in = xn
						}
						q.product(product{gemm: "gemm", sum: "reduce", y: y, x: in, w: dw, m: 1, n: n, k: k, acc: sh.flags&rowAcc != 0})
						if swiglu {
							inter := sh.n / 2
							q.launch(r.k.swiglu, 1, (inter+1023)/1024, 256, r.args.reset().p(act).p(y).i(inter).i(1))
						}
					}
					if q.err != nil {
						return q.err
					}
					return r.ctx.Sync(r.st)
				}))
				if swiglu {
					return download(t, r, act, sh.n/4) // bf16 pairs, compared as bits
				}
				return download(t, r, y, sh.n)
			}
			want := run(false)
			got := run(true)
			assertSameBits(t, want, got, "gemm_bf16_row against the kernels it stands in for")
		})
	}
}

// rowReplica is testReplica in bf16 where gemm_bf16_row loaded; it skips
// elsewhere.
func rowReplica(t *testing.T) *replica {
	r := testReplica(t, true)
	if r.k.gemmRow == nil {
		t.Skipf("%s gives a block %d bytes of shared memory, gemm_bf16_row needs %d", r.gpu.Name, r.gpu.SharedOptin, rowSmem(maxRowK))
	}
	return r
}

// TestGemmRowRoPE holds gemm_bf16_row's q|k|v with RoPE and the KV store
// (rowRoPE) to the product, its reduce and rope_store_bf16, bit for bit:
// the rotated q|k|v row and the keys and values in the cache's slot.
func TestGemmRowRoPE(t *testing.T) {
	r := rowReplica(t)
	rng := rand.New(rand.NewPCG(15, 16))
	const eps, heads, kvheads, hd, page, p = 1e-5, 32, 8, 64, 32, 45
	n, k := int64((heads+2*kvheads)*hd), int64(2048)
	s := splitK(n, k)
	require.Equal(t, int64(2), s)
	r.part = deviceAlloc(t, r, 4*n*s)
	x := upload(t, r, randVals(rng, int(k), false))
	norm := upload(t, r, randVals(rng, int(k), false))
	dw := uploadAs(t, r, randVals(rng, int(n*k), true), true)
	cosT, sinT := upload(t, r, randVals(rng, 64*hd/2, false)), upload(t, r, randVals(rng, 64*hd/2, false))
	meta := upload(t, r, []int32{p, 0, 2, 3}) // pos, ptoff, the page table
	kvdim := int64(kvheads * hd)
	pstride := page * kvdim
	y, xn := deviceAlloc(t, r, 4*n), deviceAlloc(t, r, 2*k)
	kc, vc := deviceAlloc(t, r, 2*4*pstride), deviceAlloc(t, r, 2*4*pstride)
	rp := ropeParams{pos: meta, ptoff: meta.Add(4), pagetab: meta.Add(8), cos: cosT, sin: sinT, kc: kc, vc: vc,
		heads: heads, kvheads: kvheads, hd: hd, page: page, pstride: pstride}
	run := func(fused bool) (qkv []float32, keys, vals []uint16) {
		copyTo(t, r, y, make([]float32, n))
		copyTo(t, r, kc, make([]float32, 4*pstride/2))
		copyTo(t, r, vc, make([]float32, 4*pstride/2))
		require.NoError(t, r.w.do(func() error {
			q := queue{r: r}
			if fused {
				q.row(rowProduct{name: "row", y: y, x: x, norm: norm, w: dw, n: n, k: k, flags: rowNorm | rowRoPE, eps: eps, rope: rp})
			} else {
				q.launch(r.k.rmsnorm, 1, 1, 256, r.args.reset().p(xn).p(x).p(norm).p(0).i(int(k)).f(eps))
				q.product(product{gemm: "gemm", sum: "reduce", y: y, x: xn, w: dw, m: 1, n: n, k: k})
				q.launch(r.k.rope, 1, 1, 128, r.args.reset().p(y).p(rp.pos).p(rp.ptoff).p(rp.pagetab).p(cosT).p(sinT).p(kc).p(vc).
					i(heads).i(kvheads).i(hd).i(page).l(pstride))
			}
			if q.err != nil {
				return q.err
			}
			return r.ctx.Sync(r.st)
		}))
		return download(t, r, y, int(n)), downloadAs[uint16](t, r, kc, int(4*pstride)), downloadAs[uint16](t, r, vc, int(4*pstride))
	}
	wq, wk, wv := run(false)
	gq, gk, gv := run(true)
	assertSameBits(t, wq, gq, "q|k|v after RoPE")
	assert.True(t, slices.Equal(wk, gk), "the keys in the cache differ")
	assert.True(t, slices.Equal(wv, gv), "the values in the cache differ")
	assert.NotEqual(t, make([]uint16, len(wk)), wk, "the reference stored no keys")
}
