package cuda

import (
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/batchtrans/batchtrans/engine/cuda/driver"
	"github.com/batchtrans/batchtrans/engine/llama"
)

// The embedded PTX must be the compilation of the CUDA C beside it: a
// changed .cu or .cuh file needs csrc/gen.sh run again.
func TestPTXFresh(t *testing.T) {
	names, err := filepath.Glob("csrc/*.cu*")
	require.NoError(t, err)
	names = slices.DeleteFunc(names, func(n string) bool { return !strings.HasSuffix(n, ".cu") && !strings.HasSuffix(n, ".cuh") })
	slices.Sort(names)
	require.NotEmpty(t, names)
	h := sha256.New()
	for _, n := range names {
		b, err := os.ReadFile(n)
		require.NoError(t, err)
		h.Write(b)
	}
	assert.Equal(t, hex.EncodeToString(h.Sum(nil)), ptxDigest(), "kernels.ptx is stale: run engine/cuda/csrc/gen.sh (needs nvcc) and commit kernels.ptx")
	assert.Contains(t, string(kernelsPTX[:400]), ".target sm_80", "the PTX must target compute_80, the oldest architecture the kernels support")
	assert.Equal(t, ptxDigest(), digestOf(hopperPTX), "kernels_sm90a.ptx is stale: run engine/cuda/csrc/gen.sh and commit it")
	assert.Contains(t, string(hopperPTX[:600]), ".version 8.0\n.target sm_90a", "the Hopper module must be PTX ISA 8.0 for sm_90a")
}

func TestPoolPages(t *testing.T) {
	const page = 2 << 20
	cases := []struct {
		name        string
		free, limit int64
		want        int64
	}{
		{"all but the margin", 10<<30 + kvMargin, 0, 10 << 30 / page},
		{"capped", 10<<30 + kvMargin, 1 << 30, 1 << 30 / page},
		{"cap above what is free", 3<<30 + kvMargin, 8 << 30, 3 << 30 / page},
		{"less than the margin", kvMargin / 2, 0, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, poolPages(tc.free, tc.limit, page))
		})
	}
}

func TestSameGPUs(t *testing.T) {
	h200 := gpu("NVIDIA H200", 9, 0)
	require.NoError(t, sameGPUs(gpus(h200, h200)))
	err := sameGPUs(gpus(h200, gpu("NVIDIA A100-SXM4-80GB", 8, 0)))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "0: NVIDIA H200 (9.0), 1: NVIDIA A100-SXM4-80GB (8.0)")
	assert.Contains(t, err.Error(), "CUDA_VISIBLE_DEVICES")
}

func TestToBF16MatchesCPU(t *testing.T) {
	src := []float32{0, -0, 1, 1.00390625, 1.005859375, 3.4e38, -1e-40, float32(1) / 3}
	dst := make([]uint16, len(src))
	toBF16(dst, src)
	assert.Equal(t, []uint16{0, 0, 0x3f80, 0x3f80, 0x3f81, 0x7f80, 0x8001, 0x3eab}, dst)
}

// TestGraphPolicy: a shape is recorded the second time it comes and
// replayed after; a failed shape stays direct; the set stops recording at
// maxGraphs; off means always direct.
func TestGraphPolicy(t *testing.T) {
	g := newGraphSet(false)
	g.on = true
	a, b := shape{rows: 1, outs: 1, ones: 1}, shape{rows: 512, outs: 512, ones: 512}
	assert.Equal(t, launchDirect, g.next(a))
	assert.Equal(t, record, g.next(a))
	g.rec[a] = 1
	assert.Equal(t, replay, g.next(a))
	assert.Equal(t, launchDirect, g.next(b))
	g.failed[b] = true
	assert.Equal(t, launchDirect, g.next(b))
	assert.Equal(t, launchDirect, g.next(b))
	for i := range maxGraphs {
		g.rec[shape{rows: 1000 + i}] = 1
	}
	c := shape{rows: 7, outs: 7, tiles: 1}
	g.next(c)
	assert.Equal(t, launchDirect, g.next(c), "full set records no more")
	off := newGraphSet(true)
	off.next(a)
	assert.Equal(t, launchDirect, off.next(a), "profiling turns recording off")
}

// The split rule: Llama 3.2 1B's products, and shapes that shrink the
// split to keep every range a whole number of the kernels' K tiles.
func TestSplitK(t *testing.T) {
	cases := []struct {
		name string
		n, k int64
		want int64
	}{
		{"qkv", 3072, 2048, 2},
		{"o", 2048, 2048, 2},
		{"gate|up", 16384, 2048, 1},
		{"down", 2048, 8192, 4},
		{"lm_head", 128256, 2048, 1},
		{"narrow N capped at maxSplits", 17, 8192, 4},
		{"short K", 2048, 1000, 1},
		{"K halves the split", 2048, 4352, 2},
		{"three ranges", 1024, 3072, 3},
		{"two halve to one", 1000, 3000, 1},
		{"K a multiple of 8, not of the tile", 64, 200, 1},
		{"K not a multiple of 8", 2048, 8200, 1},
		{"K shorter than a tile", 96, 48, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, splitK(tc.n, tc.k))
		})
	}
}

// TestKVBytesFollowDType: the KV cache's sizes follow its element (bf16
// with bf16 weights, float32 with f32), for Llama-3.2-1B's shape.
func TestKVBytesFollowDType(t *testing.T) {
	cfg := &llama.Config{Layers: 16, KVHeads: 8, HeadDim: 64}
	cases := []struct {
		name     string
		bf16     bool
		position int // 2 (K, V) x 16 layers x 8 KV heads x 64 dimensions x element
	}{
		{"bf16", true, 2 * 16 * 8 * 64 * 2},
		{"f32", false, 2 * 16 * 8 * 64 * 4},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := &Net{cfg: cfg, bf16: tc.bf16, reps: []*replica{{}, {}}}
			assert.Equal(t, tc.position, n.KVBytes(1))
			assert.Equal(t, 100*tc.position, n.KVBytes(100))
			assert.Equal(t, int64(pageSize*tc.position), n.pageBytes())
			// A 33-position prefix holds two pages on each of the two replicas.
			assert.Equal(t, 2*2*pageSize*tc.position, (&Prefix{net: n, n: 33}).Bytes())
		})
	}
}

// Every split the rule makes is one the kernels can run: at most
// maxSplits ranges, each a whole number of splitTile (so of every
// kernel's K tile, and a multiple of 8 for 16-byte copies).
func TestSplitKRangesAreWholeTiles(t *testing.T) {
	for n := int64(1); n <= 20000; n += 37 {
		for k := int64(1); k <= 9000; k += 13 {
			s := splitK(n, k)
			require.True(t, s >= 1 && s <= maxSplits, "n %d k %d: %d splits", n, k, s)
			require.True(t, s == 1 || k%(s*splitTile) == 0, "n %d k %d: %d splits of K", n, k, s)
		}
	}
	r := &replica{net: &Net{bf16: false}}
	assert.Equal(t, int64(1), r.splits(2048, 8192), "float32 never splits")
	r.net.bf16 = true
	assert.Equal(t, int64(4), r.splits(2048, 8192))
}

// The kernel choice on an H200 (132 multiprocessors): one row on the
// streamed kernel (where K is a multiple of 8), up to 16 on the few-row one; from 128 rows the 128 x 256 tiles once their blocks (all
// splits counted) fill 4/10 of the multiprocessors; past 64 rows the 128 x
// 128 ones once theirs fill 9/10; else the 64 x 64 tiles.
func TestPickTile(t *testing.T) {
	const sms = 132
	cases := []struct {
		name    string
		m, n, s int64
		big     bool
		want    tile
	}{
		{"one row", 1, 2048, 4, true, tileStream},
		{"2 rows", 2, 128256, 1, true, tileNarrow},
		{"9 rows", 9, 2048, 4, true, tileNarrow},
		{"16 rows", 16, 128256, 1, true, tileNarrow},
		{"one row, K not a multiple of 8", 1, 2048, 4, false, tileNarrow},
		{"17 rows", 17, 2048, 4, true, tileMid},
		{"64 rows", 64, 128256, 1, true, tileMid},
		{"512 rows of down: 128 large blocks", 512, 2048, 4, true, tileBig},
		{"512 rows of down, K not a multiple of 8", 512, 2048, 4, false, tileWide},
		{"512 rows of gate|up", 512, 16384, 1, true, tileBig},
		{"512 rows of qkv unsplit: 48 large blocks", 512, 3072, 1, true, tileMid},
		{"1024 rows of qkv: 96 large blocks", 1024, 3072, 1, true, tileBig},
		{"512 rows of o in 2: 64 large blocks", 512, 2048, 2, true, tileBig},
		{"256 rows of o in 2: 32 large blocks, 64 of 128 x 128", 256, 2048, 2, true, tileMid},
		{"130 rows of down: 64 large blocks", 130, 2048, 4, true, tileBig},
		{"100 rows of down: 64 blocks of 128 x 128", 100, 2048, 4, true, tileMid},
		{"4096 rows of gate|up", 4096, 16384, 1, true, tileBig},
		{"4096 rows of o", 4096, 2048, 1, true, tileBig},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, pickTile(tc.m, tc.n, tc.s, sms, tc.big))
		})
	}
}

// The 128 x 256 kernels' shared memory: gemm_bf16_128x256 fits sm_80's
// 163 KiB a block (loaded only where the GPU allows it), and
// gemm_bf16_128x256_k32 the 99 KiB of sm_86 and sm_89, so that it loads
// on every GPU the PTX targets.
// argmax splits a row into parts for few rows only (H200: 132
// multiprocessors, vocab 128,256).
func TestArgmaxParts(t *testing.T) {
	assert.Equal(t, maxArgmaxParts, argmaxParts(1, 128256, 132))
	assert.Equal(t, maxArgmaxParts, argmaxParts(8, 128256, 132))
	assert.Equal(t, 3, argmaxParts(100, 128256, 132))
	assert.Equal(t, 1, argmaxParts(512, 128256, 132))
	assert.Equal(t, 1, argmaxParts(1, 4096, 132), "a row of one part's logits")
	assert.Equal(t, 2, argmaxParts(1, 4097, 132))
}

func TestBigTileSmem(t *testing.T) {
	assert.Equal(t, 144<<10, bigSmem)
	assert.LessOrEqual(t, bigSmem, 163<<10)
	assert.Equal(t, 96<<10, bigSmemK32)
	assert.LessOrEqual(t, bigSmemK32, 99<<10)
}

func TestAppendTiles(t *testing.T) {
	cases := []struct {
		name       string
		first, n   int
		most       int
		ones, runs []int32
	}{
		{"a decode row alone", 5, 1, 16, []int32{5}, nil},
		{"two rows", 0, 2, 16, nil, []int32{0, 2}},
		{"a full tile", 3, 16, 16, nil, []int32{3, 16}},
		{"17 rows in two near halves", 0, 17, 16, nil, []int32{0, 9, 9, 8}},
		{"47 rows", 6, 47, 16, nil, []int32{6, 16, 22, 16, 38, 15}},
		{"70 rows in five equal tiles", 0, 70, 16, nil, []int32{0, 14, 14, 14, 28, 14, 42, 14, 56, 14}},
		{"tiles of 4 (16 query heads a KV head)", 10, 5, 4, nil, []int32{10, 3, 13, 2}},
		{"a one-row leftover goes alone", 0, 3, 2, []int32{2}, []int32{0, 2}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ones, runs := appendTiles(nil, nil, tc.first, tc.n, tc.most)
			assert.Equal(t, tc.ones, ones)
			assert.Equal(t, tc.runs, runs)
		})
	}
}

// TestAppendTilesCoverSteps: over random steps, the tiles cover every row
// once, never cross a sequence, hold at most `most` rows each and as few
// tiles as can be, and take no more entries than the step has rows (what
// the metadata buffer leaves them).
func TestAppendTilesCoverSteps(t *testing.T) {
	rng := rand.New(rand.NewPCG(6, 6))
	for _, most := range []int{2, 4, 5, 16} {
		for range 200 {
			var counts []int
			rows := 0
			for range 1 + rng.IntN(20) {
				n := 1 + rng.IntN(3)
				if rng.IntN(3) == 0 {
					n = 1 + rng.IntN(200)
				}
				counts = append(counts, n)
				rows += n
			}
			var ones, runs []int32
			seqOf := make([]int, rows)
			row := 0
			for i, n := range counts {
				before := len(ones) + len(runs)/2
				ones, runs = appendTiles(ones, runs, row, n, most)
				require.Equal(t, (n+most-1)/most, len(ones)+len(runs)/2-before, "sequence of %d rows, tiles of %d", n, most)
				for j := range n {
					seqOf[row+j] = i
				}
				row += n
			}
			require.LessOrEqual(t, len(ones)+len(runs), rows)
			seen := make([]int, rows)
			for _, r := range ones {
				seen[r]++
			}
			for i := 0; i < len(runs); i += 2 {
				first, n := int(runs[i]), int(runs[i+1])
				require.True(t, n >= 2 && n <= most, "tile of %d rows, at most %d", n, most)
				for j := first; j < first+n; j++ {
					seen[j]++
					require.Equal(t, seqOf[first], seqOf[j], "tile from row %d crosses sequences", first)
				}
			}
			for r, n := range seen {
				require.Equal(t, 1, n, "row %d in %d tiles (counts %v, tiles of %d)", r, n, counts, most)
			}
		}
	}
}

func TestTileShape(t *testing.T) {
	for _, tc := range []struct{ group, rows int }{{1, 16}, {3, 16}, {4, 16}, {8, 8}, {16, 4}} {
		assert.Equal(t, tc.rows, maxTileRows(tc.group), "%d query heads a KV head", tc.group)
		assert.LessOrEqual(t, tc.rows*tc.group, attTilePairs)
	}
	// sm_80, the oldest GPU the kernels take, gives a block at most 163 KiB
	// of shared memory; Llama-3.2's head_dim of 64 fits the default 48 KiB
	// with room for two blocks a multiprocessor.
	assert.LessOrEqual(t, attTileSmem(maxHeadDim), 163<<10)
	assert.LessOrEqual(t, attTileSmem(64), 48<<10)
}

// The interleaved gate|up layout: guRow places every gate and up row
// once, gate's group of 8 before up's; the SwiGLU epilogue's output
// column for a gate column c, (c/16)*8 + c%8 (csrc/gemm.cuh), is the
// gate's own index, and its up is 8 columns on; the plain layout is gate
// then up.
func TestGuRow(t *testing.T) {
	for _, inter := range []int64{8, 64, 8192} {
		t.Run(strconv.FormatInt(inter, 10), func(t *testing.T) {
			seen := make([]bool, 2*inter)
			for i := range inter {
				g, u := guRow(i, inter, false, true), guRow(i, inter, true, true)
				require.False(t, seen[g] || seen[u], "row %d placed twice", i)
				seen[g], seen[u] = true, true
				assert.Equal(t, g+guGroup, u, "up of %d", i)
				assert.Equal(t, i, (g/16)*8+g%8, "act column of gate row %d", i)
				assert.Less(t, g%16, int64(guGroup), "gate %d in the first half of its 16", i)
				assert.Equal(t, i, guRow(i, inter, false, false))
				assert.Equal(t, inter+i, guRow(i, inter, true, false))
			}
			assert.NotContains(t, seen, false)
		})
	}
	assert.Equal(t, []int64{0, 1, 7, 16, 17}, []int64{guRow(0, 64, false, true), guRow(1, 64, false, true),
		guRow(7, 64, false, true), guRow(8, 64, false, true), guRow(9, 64, false, true)})
	assert.Equal(t, []int64{8, 15, 24}, []int64{guRow(0, 64, true, true), guRow(7, 64, true, true), guRow(8, 64, true, true)})
}

// interleaveRows's copy, as the uploader runs it for gate and then up, fills
// every byte of the fused matrix once, each row where guRow says.
func TestInterleaveRows(t *testing.T) {
	const inter, rowBytes = 32, 6
	fused := make([]int, 2*inter*rowBytes)
	for i := range fused {
		fused[i] = -1
	}
	for _, up := range []bool{false, true} {
		src := make([]int, inter*rowBytes) // byte b of row i: the row's tag, then b
		for i := range src {
			src[i] = (i/rowBytes+flag(up)*1000)*100 + i%rowBytes
		}
		c := interleaveRows(inter, rowBytes, up)
		for h := range c.height { // as cuMemcpy2D copies
			for b := range c.width {
				d := c.dst + h*c.dpitch + b
				require.Equal(t, -1, fused[d], "byte %d written twice", d)
				fused[d] = src[c.src+h*c.spitch+b]
			}
		}
	}
	for _, up := range []bool{false, true} {
		for i := range int64(inter) {
			r := guRow(i, inter, up, true)
			for b := range int64(rowBytes) {
				assert.Equal(t, (int(i)+flag(up)*1000)*100+int(b), fused[r*rowBytes+b], "row %d (up %v) byte %d", i, up, b)
			}
		}
	}
}

// The gate|up product ends in the SwiGLU epilogue on an H200 (132
// multiprocessors) where the rows are interleaved, the product does not
// split and a kernel of whole 16-column groups runs it: not up to 16 rows
// (the few-row kernels), from 17 rows; never for a split gate|up or
// float32.
func TestFuseSwiGLU(t *testing.T) {
	const sms = 132
	cases := []struct {
		name        string
		interleaved bool
		m, inter, k int64
		want        bool
	}{
		{"one row", true, 1, 8192, 2048, false},
		{"16 rows", true, 16, 8192, 2048, false},
		{"17 rows: 64 x 64", true, 17, 8192, 2048, true},
		{"100 rows", true, 100, 8192, 2048, true},
		{"512 rows: 128 x 256", true, 512, 8192, 2048, true},
		{"4096 rows", true, 4096, 8192, 2048, true},
		{"K not a multiple of 8", true, 512, 8192, 2044, true},
		{"not interleaved", false, 512, 8192, 2048, false},
		{"split gate|up", true, 512, 64, 2048, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := splitK(2*tc.inter, tc.k)
			assert.Equal(t, tc.want, fuseSwiGLU(tc.interleaved, tc.m, 2*tc.inter, tc.k, s, sms))
		})
	}
	assert.Equal(t, int64(2), splitK(128, 2048), "the split case splits")

	cfg := &llama.Config{Hidden: 2048, Intermediate: 8192, Heads: 32, KVHeads: 8, HeadDim: 64, Vocab: 128256}
	r := &replica{net: &Net{cfg: cfg, bf16: true, guInterleaved: true}, gpu: gpu("H200", 9, 0)}
	r.gpu.SMs = sms
	assert.True(t, r.fusesSwiGLU(512))
	assert.False(t, r.fusesSwiGLU(16))
	r.net.bf16 = false
	assert.False(t, r.fusesSwiGLU(512), "float32 keeps the swiglu kernel")
}

// Only the kernels of whole 16-column groups take the SwiGLU epilogue,
// for N a multiple of 16 and bf16 alone; the others are refused before
// any launch.
func TestGemmTileSwiGLURefuses(t *testing.T) {
	r := &replica{net: &Net{bf16: true}}
	for _, tl := range []tile{tileNarrow, tileStream} {
		assert.False(t, tl.swiglu(), "%s", tl)
		assert.ErrorIs(t, r.gemmTileSwiGLU(tl, 0, 0, 0, 32, 1024, 2048), errSwiGLU, "%s", tl)
	}
	for _, tl := range []tile{tileMid, tileWide, tileBig, tileBigK32} {
		assert.True(t, tl.swiglu(), "%s", tl)
		assert.ErrorIs(t, r.gemmTileSwiGLU(tl, 0, 0, 0, 32, 1032, 2048), errSwiGLU, "%s: N not a multiple of 16", tl)
	}
	r.net.bf16 = false
	assert.ErrorIs(t, r.gemmTileSwiGLU(tileMid, 0, 0, 0, 32, 1024, 2048), errSwiGLU, "float32")
}

// TestMMATiles: attention_mma's warps a unit of rows takes (16 / group
// rows each, at least one), for every group the kernels take, and the
// shared memory of a warp.
func TestMMATiles(t *testing.T) {
	cases := []struct{ rows, group, want int }{
		{1, 4, 1}, {16, 4, 4}, {5, 4, 2}, {16, 1, 1}, {17, 1, 2}, {16, 2, 2},
		{8, 8, 4}, {4, 16, 4}, {16, 3, 4}, {10, 6, 5},
	}
	for _, c := range cases {
		assert.Equal(t, c.want, mmaTiles(c.rows, c.group), "%d rows, %d query heads a KV head", c.rows, c.group)
	}
	// Every row of a tile has a warp, and no warp is left without one.
	for group := 1; group <= 16; group++ {
		per := max(1, 16/group)
		for rows := 1; rows <= maxTileRows(group); rows++ {
			n := mmaTiles(rows, group)
			assert.True(t, n*per >= rows && (n-1)*per < rows, "%d rows, group %d: %d warps of %d rows", rows, group, n, per)
		}
	}
	assert.Equal(t, 16<<10, attMMASmem(64), "two stages of 32 keys and values of head_dim 64, bf16")
}

// gemm_bf16_wg runs a product only from 16-byte aligned operands and over
// whole K tiles of 64 in each split's range; gemmTile runs the mma.sync
// 128 x 256 kernel (the same bits) otherwise.
func TestHopperTakes(t *testing.T) {
	cases := []struct {
		name string
		x, w driver.Ptr
		k, s int64
		want bool
	}{
		{"q|k|v, split in 2", 0x1000, 0x2000, 2048, 2, true},
		{"down, split in 4", 0x1000, 0x2000, 8192, 4, true},
		{"whole K", 0x1000, 0x2000, 2048, 1, true},
		{"K not whole tiles", 0x1000, 0x2000, 2056, 1, false},
		{"a split's range not whole tiles", 0x1000, 0x2000, 2048 + 128, 4, false},
		{"x off a 16-byte boundary", 0x1008, 0x2000, 2048, 1, false},
		{"w off a 16-byte boundary", 0x1000, 0x2004, 2048, 1, false},
	}
	for _, tc := range cases {
		assert.Equal(t, tc.want, hopperTakes(tc.x, tc.w, tc.k, tc.s), tc.name)
	}
}

// A prefix's whole pages are shared by the states that load it: a page
// returns to the pool only once every holder has let it go, and is never
// handed out while held.
func TestPagesShared(t *testing.T) {
	r := &replica{free: []int32{3, 2, 1, 0}, refs: make([]int32, 4)}
	prefix, err := r.take(2)
	require.NoError(t, err)
	p := prefix[0]
	a := r.share(prefix[:1])
	b := r.share(prefix[:1])
	assert.Equal(t, []int32{p}, a)
	r.release(prefix)
	assert.Len(t, r.free, 3)
	assert.NotContains(t, r.free, p, "the shared page is still held by two states")
	r.release(a)
	assert.NotContains(t, r.free, p)
	got, err := r.take(3)
	require.NoError(t, err)
	assert.NotContains(t, got, p, "a held page was handed out")
	r.release(b)
	assert.Equal(t, []int32{p}, r.free)
	_, err = r.take(2)
	assert.ErrorIs(t, err, errKVFull)
}

// fuseSplits takes Llama 3.2 1B's split products whole in one block at
// 1,024 rows and more on an H200 (132 multiprocessors), not at 512 or
// below, nor for a product that does not split.
func TestFuseSplits(t *testing.T) {
	const sms = 132
	cases := []struct {
		name    string
		m, n, k int64
		norm    bool
		want    bool
	}{
		{"o at 1,024 rows", 1024, 2048, 2048, true, true},
		{"down at 1,024 rows", 1024, 2048, 8192, true, true},
		{"q|k|v at 1,024 rows", 1024, 3072, 2048, false, true},
		{"o at 4,096 rows", 4096, 2048, 2048, true, true},
		{"o at 512 rows", 512, 2048, 2048, true, false},
		{"down at 512 rows", 512, 2048, 8192, true, false},
		{"one row", 1, 2048, 2048, true, false},
	}
	for _, tc := range cases {
		s := splitK(tc.n, tc.k)
		assert.Equal(t, tc.want, fuseSplits(tc.m, tc.n, tc.k, s, sms, tc.norm), "%s (S=%d)", tc.name, s)
	}
	assert.False(t, fuseSplits(1024, 16384, 2048, 1, sms, false), "gate|up does not split")
}

// gemm_bf16_row takes Llama 3.2 1B's five products (ranges of K 2, 2, 1,
// 4 and 1) and only ranges its block can hold, each whole K tiles of 256;
// a replica runs one-row steps on it only where it takes every product of
// the model, gate|up interleaved and whole, unless told not to.
func TestRowTakes(t *testing.T) {
	cfg := &llama.Config{Hidden: 2048, Intermediate: 8192, Heads: 32, KVHeads: 8, HeadDim: 64, Vocab: 128256}
	n := &Net{cfg: cfg, bf16: true, guInterleaved: true}
	h, q, kv, inter, vocab := n.dims()
	for _, p := range [][2]int64{{q + 2*kv, h}, {h, q}, {2 * inter, h}, {h, inter}, {vocab, h}} {
		assert.True(t, rowTakes(p[1], splitK(p[0], p[1])), "%d x %d", p[0], p[1])
	}
	assert.False(t, rowTakes(3072, 3), "three ranges")
	assert.False(t, rowTakes(2048+64, 1), "K not whole tiles")
	assert.False(t, rowTakes(2048+256, 2), "a range not whole tiles")
	assert.Equal(t, int64(8192), n.rowMostK())
	assert.Equal(t, int64(maxRowK), (&Net{}).rowMostK(), "no model: the kernel tests' longest K")
	assert.Equal(t, 50688+16384+1024, rowSmem(8192), "rings, the row, the norm's scratch")
	assert.LessOrEqual(t, 4*(rowSmem(2048)+128+1024), 228*1024, "four blocks of gate|up a multiprocessor")
	assert.LessOrEqual(t, rowSmem(8192), 227*1024, "an H200 block's shared memory")

	r := &replica{net: n, k: kernelSet{gemmRow: &driver.Func{}}}
	assert.True(t, r.rowReady())
	assert.True(t, r.rowRoPE(), "q|k|v in two ranges, head_dim 64")
	r.net = &Net{cfg: cfg, bf16: true}
	assert.False(t, r.rowReady(), "gate|up not interleaved")
	r.net = &Net{cfg: cfg, bf16: false, guInterleaved: true}
	assert.False(t, r.rowReady(), "float32")
	r.net = &Net{bf16: true, guInterleaved: true}
	assert.False(t, r.rowReady(), "no model")
	r.net, r.k.gemmRow = n, nil
	assert.False(t, r.rowReady(), "kernel not loaded")
	t.Setenv(EnvRow, "0")
	r.k.gemmRow = &driver.Func{}
	assert.False(t, r.rowReady(), EnvRow+"=0")
}

// poll hands over what is sent whether it comes while it polls or after
// it has blocked, and reports a closed channel.
func TestPoll(t *testing.T) {
	c := make(chan int, 1)
	c <- 7
	v, ok := poll(c, time.Millisecond)
	assert.True(t, ok)
	assert.Equal(t, 7, v, "sent before")
	go func() { time.Sleep(20 * time.Millisecond); c <- 8 }()
	v, ok = poll(c, time.Millisecond)
	assert.True(t, ok)
	assert.Equal(t, 8, v, "sent after the polling")
	go func() { time.Sleep(20 * time.Microsecond); c <- 9 }()
	v, _ = poll(c, 0)
	assert.Equal(t, 9, v, "no polling")
	close(c)
	_, ok = poll(c, time.Millisecond)
	assert.False(t, ok, "closed")
}
