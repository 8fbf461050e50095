package cuda

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/batchtrans/batchtrans/engine/cuda/driver"
)

// BenchmarkGemmShapes times the whole product as forward runs it (the
// split product and its reduce where the shape splits) for Llama 3.2 1B's
// five shapes, from one sequence's decode to a long prefill, replayed from
// a graph as a step's are (graphTimed). It reports the tensor rate
// (TFLOP/s), the weight matrix's bytes over the product's time
// (weightGB/s, the bound of a decode) and the device time of one product.
//
//	go test -run '^$' -bench GemmShapes ./engine/cuda/
func BenchmarkGemmShapes(b *testing.B) {
	r := testReplica(b, true)
	shapes := []struct {
		name string
		n, k int64
	}{{"qkv", 3072, 2048}, {"o", 2048, 2048}, {"gate_up", 16384, 2048}, {"down", 2048, 8192}, {"lm_head", 128256, 2048}}
	rows := []int64{1, 16, 64, 128, 256, 512, 4096}
	most := rows[len(rows)-1]
	var part int64
	for _, sh := range shapes {
		part = max(part, most*sh.n*r.splits(sh.n, sh.k))
	}
	r.part = deviceAlloc(b, r, 4*part)
	rng := rand.New(rand.NewPCG(3, 4))
	for _, sh := range shapes {
		a := upload(b, r, benchBF16(rng, most*sh.k))
		w := upload(b, r, benchBF16(rng, sh.n*sh.k))
		y := deviceAlloc(b, r, 4*most*sh.n)
		s := r.splits(sh.n, sh.k)
		for _, m := range rows {
			b.Logf("%s M=%d: %d splits of K, %s", sh.name, m, s, pickTile(m, sh.n, s, r.gpu.SMs, sh.k%8 == 0))
			b.Run(fmt.Sprintf("%s/M=%d", sh.name, m), func(b *testing.B) {
				p := product{gemm: "gemm", sum: "reduce", y: y, x: a, w: w, m: m, n: sh.n, k: sh.k}
				ms := graphTimed(b, r, 20, func() error {
					qu := queue{r: r}
					qu.product(p)
					return qu.err
				})
				sec := ms / 1e3
				b.ReportMetric(2*float64(m*sh.n*sh.k)/sec/1e12, "TFLOP/s")
				b.ReportMetric(float64(2*sh.n*sh.k)/sec/1e9, "weightGB/s")
				b.ReportMetric(ms*1e3, "µs/product")
			})
		}
	}
}

// benchBF16 returns n bf16 values in [2^-7, 2^-6): sums over K = 8192
// stay far from overflow. A random block of 64 Ki repeats (the speed does
// not depend on the values).
func benchBF16(rng *rand.Rand, n int64) []uint16 {
	const block = 1 << 16
	v := make([]uint16, n)
	for i := range min(n, block) {
		v[i] = 0x3c00 | uint16(rng.IntN(0x7f))
	}
	for i := int64(block); i < n; i += block {
		copy(v[i:], v[:block])
	}
	return v
}

// deviceAlloc allocates n bytes of r's device memory, freed with r.
func deviceAlloc(t testing.TB, r *replica, n int64) driver.Ptr {
	t.Helper()
	var d driver.Ptr
	require.NoError(t, r.w.do(func() error {
		var err error
		d, err = r.alloc(n)
		return err
	}))
	return d
}

// BenchmarkGemmSplits times each bf16 kernel at each split of K that the
// kernels allow, for Llama 3.2 1B's shapes at a few step sizes: the data
// behind splitK and pickTile. Twenty products (and their reduces) are
// recorded as one graph and replayed, so that the figures are the GPU's
// time, not the host's queueing.
//
//	go test -run '^$' -bench GemmSplits ./engine/cuda/
func BenchmarkGemmSplits(b *testing.B) {
	r := testReplica(b, true)
	shapes := []struct {
		name string
		n, k int64
	}{{"qkv", 3072, 2048}, {"o", 2048, 2048}, {"gate_up", 16384, 2048}, {"down", 2048, 8192}}
	rows := []int64{1, 4, 8, 16, 64, 128, 256, 512, 1024, 4096}
	most := rows[len(rows)-1]
	r.part = deviceAlloc(b, r, 4*most*16384*4)
	yn := deviceAlloc(b, r, 2*most*2048)
	norm := upload(b, r, make([]float32, 2048))
	rng := rand.New(rand.NewPCG(3, 4))
	const perGraph = 20
	for _, sh := range shapes {
		a := upload(b, r, benchBF16(rng, most*sh.k))
		w := upload(b, r, benchBF16(rng, sh.n*sh.k))
		y := deviceAlloc(b, r, 4*most*sh.n)
		for _, m := range rows {
			for _, s := range []int64{1, 2, 4} {
				if sh.k%(s*splitTile) != 0 {
					continue
				}
				for _, t := range []tile{tileStream, tileNarrow, tileMid, tileWide, tileBig, tileBigK32, tileHopper} {
					big := t == tileBig || t == tileBigK32 || t == tileHopper
					few := t == tileNarrow || t == tileStream
					if few && m > 64 || t == tileWide && m < 64 || big && m < 128 || !r.has(t) {
						continue
					}
					b.Run(fmt.Sprintf("%s/M=%d/S=%d/%s", sh.name, m, s, t), func(b *testing.B) {
						one := func() error {
							args := r.args.reset().p(y).p(a).p(w).i(int(m)).i(int(sh.n)).i(int(sh.k)).i(1).list()
							if s > 1 {
								args = r.args.reset().p(r.part).p(a).p(w).i(int(m)).i(int(sh.n)).i(int(sh.k)).i(0).list()
							}
							if err := r.gemmTile(t, y, a, w, m, sh.n, sh.k, s, args); err != nil || s == 1 {
								return err
							}
							var nw driver.Ptr
							if sh.n == 2048 {
								nw = norm // o and down end in the residual and the next norm
							}
							qu := queue{r: r}
							qu.reduce("reduce", y, yn, nw, m, sh.n, s, true, 1e-5)
							return qu.err
						}
						ms := graphTimed(b, r, perGraph, one)
						sec := ms / 1e3
						b.ReportMetric(2*float64(m*sh.n*sh.k)/sec/1e12, "TFLOP/s")
						b.ReportMetric(ms*1e3, "µs/product")
					})
				}
			}
		}
	}
}

// graphTimed records perGraph calls of one (each queueing launches on
// r.st) as one graph, replays it about b.N/perGraph times and returns the
// device time of one call in ms: the GPU's time, not the host's queueing.
func graphTimed(b *testing.B, r *replica, perGraph int, one func() error) float64 {
	b.Helper()
	var ms float64
	require.NoError(b, r.w.do(func() error {
		if err := r.ctx.BeginCapture(r.st); err != nil {
			return err
		}
		var ferr error
		for range perGraph {
			if ferr = one(); ferr != nil {
				break
			}
		}
		g, err := r.ctx.EndCapture(r.st)
		if ferr != nil || err != nil {
			return errors.Join(ferr, err)
		}
		defer r.ctx.DestroyGraph(g)
		ms, err = r.timed(max(1, b.N/perGraph), func() error { return r.ctx.LaunchGraph(g, r.st) })
		ms /= float64(perGraph)
		return err
	}))
	return ms
}

// BenchmarkGemmCube times each large-tile bf16 kernel alone (no split,
// Y overwritten) on an 8192 cube and on 4096 rows of gate|up (16384 x
// 2048) and of down (2048 x 8192), graph-replayed like
// BenchmarkGemmSplits: the tensor rate the kernels reach on shapes large
// enough to fill the GPU.
//
//	go test -run '^$' -bench GemmCube ./engine/cuda/
func BenchmarkGemmCube(b *testing.B) {
	r := testReplica(b, true)
	shapes := []struct {
		name    string
		m, n, k int64
	}{{"cube", 8192, 8192, 8192}, {"gate_up", 4096, 16384, 2048}, {"down", 4096, 2048, 8192}}
	rng := rand.New(rand.NewPCG(5, 6))
	const perGraph = 10
	for _, sh := range shapes {
		a := upload(b, r, benchBF16(rng, sh.m*sh.k))
		w := upload(b, r, benchBF16(rng, sh.n*sh.k))
		y := deviceAlloc(b, r, 4*sh.m*sh.n)
		for _, t := range []tile{tileWide, tileBig, tileBigK32, tileHopper} {
			if !r.has(t) {
				b.Logf("%s: not loaded (the GPU gives a block %d bytes of shared memory)", t, r.gpu.SharedOptin)
				continue
			}
			b.Run(fmt.Sprintf("%s/M=%d/N=%d/K=%d/%s", sh.name, sh.m, sh.n, sh.k, t), func(b *testing.B) {
				ms := graphTimed(b, r, perGraph, func() error {
					args := r.args.reset().p(y).p(a).p(w).i(int(sh.m)).i(int(sh.n)).i(int(sh.k)).i(0).list()
					return r.gemmTile(t, y, a, w, sh.m, sh.n, sh.k, 1, args)
				})
				sec := ms / 1e3
				b.ReportMetric(2*float64(sh.m*sh.n*sh.k)/sec/1e12, "TFLOP/s")
				b.ReportMetric(ms*1e3, "µs/product")
			})
		}
	}
}
