package cuda

import (
	"fmt"
	"math"
	"os"

	"github.com/batchtrans/batchtrans/engine/cuda/driver"
)

// maxHeadDim is the largest head_dim the attention kernels take
// (csrc/attention.cuh's ATT_MAX_HD).
const maxHeadDim = 128

// Launch shape of attention_tile (csrc/attention.cuh's ATT_TILE_*): its
// warps, and the most (row, query head) pairs a tile may hold.
const (
	attTileThreads = 8 * 32
	attTilePairs   = 64
)

// maxTileRows is the most rows an attention tile takes: 16, fewer where
// the KV head's query heads times 16 would pass attTilePairs.
func maxTileRows(group int) int { return min(16, attTilePairs/group) }

// attTileSmem is attention_tile's dynamic shared memory for head_dim hd:
// a chunk of 32 keys (rows padded by 4) and values, and a tile's queries,
// all float32.
func attTileSmem(hd int) int { return 4 * (32*(hd+4) + 32*hd + attTilePairs*hd) }

// appendTiles splits the n consecutive rows of one sequence in a step,
// from row first, into attention tiles of at most `most` rows: as few
// tiles as can be, of sizes that differ by one at most. A tile of one row (a
// decode) goes to ones as its row, for the one-row kernel; a longer one to
// runs as its first row and its number of rows, for attention_tile. The
// tiles change which kernel computes a row and how fast, never its bits.
func appendTiles(ones, runs []int32, first, n, most int) ([]int32, []int32) {
	k := (n + most - 1) / most
	for i := range k {
		size := n / k
		if i < n%k {
			size++
		}
		if size == 1 {
			ones = append(ones, int32(first))
		} else {
			runs = append(runs, int32(first), int32(size))
		}
		first += size
	}
	return ones, runs
}

// EnvAttentionMMA set to 0 keeps bf16 attention on the CUDA cores (the
// kernels f32 uses) where the tensor-core kernels would run: other bits,
// named in the numerics; for measuring one against the other.
const EnvAttentionMMA = "BATCHTRANS_CUDA_ATTENTION_MMA"

// mmaHeadDims are the head_dims attention_mma is compiled for.
var mmaHeadDims = []int{32, 64, 128}

// Launch shape of attention_mma (csrc/attention.cuh): the chunks of 32
// keys and values a warp has in flight, and the most warps a block.
const (
	attMMAStages   = 2
	attMMAMaxWarps = 4
)

// attMMASmem is the shared memory of one attention_mma warp for head_dim
// hd: its ring of chunks of 32 bf16 keys and values.
func attMMASmem(hd int) int { return attMMAStages * 2 * 32 * hd * 2 }

// attKernel is a tensor-core attention kernel and the warps a block it
// runs with (as many as the GPU's shared memory a block allows, up to
// attMMAMaxWarps).
type attKernel struct {
	f     *driver.Func
	warps int
}

// mmaTiles is how many m16 tiles (warps) attention_mma takes for a unit
// of rows rows: 16 / group rows a tile, one at least.
func mmaTiles(rows, group int) int {
	per := max(1, 16/group)
	return (rows + per - 1) / per
}

// attention is one attention launch's operands: the output and the q|k|v
// rows; the step's rows alone (nOnes row indices at ones) and tiles
// (nTiles (first row, rows) pairs at runs, each of at most tileRows rows);
// the rows' positions and page-table offsets; the page table; one layer's
// key and value caches with pages of page positions, pstride elements
// apart.
type attention struct {
	out, qkv, ones, runs, pos, ptoff, pt, kc, vc driver.Ptr
	nOnes, nTiles, tileRows                      int
	heads, kvheads, hd, page                     int
	pstride                                      int64
	early                                        bool // a one-row step's: launched early where the replica can
}

// attend queues attention for a's rows: on the tensor cores where the
// replica has attention_mma for the head_dim (bf16, unless EnvAttentionMMA
// is 0), else the one-row kernel for rows alone and attention_tile for
// tiles. Either way a row's bits do not depend on the tiles.
func (r *replica) attend(qu *queue, a attention) {
	scale := 1 / math.Sqrt(float64(a.hd))
	args := &r.args
	if k, ok := r.k.attMMA[a.hd]; ok {
		scale2 := float32(scale * math.Log2E)
		launch := func(units driver.Ptr, pairs, n, mts int) {
			warps := n * a.kvheads * mts
			qu.launchShared(k.f, (warps+k.warps-1)/k.warps, 1, 32*k.warps, k.warps*attMMASmem(a.hd),
				args.reset().p(a.out).p(a.qkv).p(units).i(pairs).i(n).i(mts).p(a.pos).p(a.ptoff).p(a.pt).p(a.kc).p(a.vc).
					i(a.heads).i(a.kvheads).i(a.page).l(a.pstride).f(scale2))
		}
		if e, ok := r.k.attEarly[a.hd]; ok && a.early {
			k = e
		}
		if a.nOnes > 0 {
			launch(a.ones, 0, a.nOnes, 1)
		}
		if a.nTiles > 0 {
			launch(a.runs, 1, a.nTiles, mmaTiles(a.tileRows, a.heads/a.kvheads))
		}
		return
	}
	if a.nOnes > 0 {
		qu.launch(r.k.attention, a.nOnes, a.kvheads, 32*(a.heads/a.kvheads), args.reset().p(a.out).p(a.qkv).p(a.ones).p(a.pos).
			p(a.ptoff).p(a.pt).p(a.kc).p(a.vc).i(a.heads).i(a.kvheads).i(a.hd).i(a.page).l(a.pstride).f(float32(scale)))
	}
	if a.nTiles > 0 {
		qu.launchShared(r.k.attentionTile, a.nTiles, a.kvheads, attTileThreads, attTileSmem(a.hd), args.reset().p(a.out).p(a.qkv).
			p(a.runs).p(a.pos).p(a.ptoff).p(a.pt).p(a.kc).p(a.vc).i(a.heads).i(a.kvheads).i(a.hd).i(a.page).l(a.pstride).
			f(float32(scale)))
	}
}

// loadAttMMA finds attention_mma for each head_dim it is compiled for
// (bf16 only), with as many warps a block as the GPU's shared memory
// takes, unless EnvAttentionMMA is 0.
func (r *replica) loadAttMMA(optin int) error {
	if !r.net.bf16 || os.Getenv(EnvAttentionMMA) == "0" {
		return nil
	}
	r.k.attMMA = map[int]attKernel{}
	for _, hd := range mmaHeadDims {
		w := min(attMMAMaxWarps, optin/attMMASmem(hd))
		if w < 1 {
			continue
		}
		k, err := findAttMMA(r.mod, hd, w)
		if err != nil {
			return err
		}
		r.k.attMMA[hd] = k
	}
	return nil
}

// findAttMMA looks attention_mma for head_dim hd up in mod, with the
// shared memory of warps warps a block.
func findAttMMA(mod *driver.Module, hd, warps int) (attKernel, error) {
	f, err := mod.Func(fmt.Sprintf("attention_mma%d_bf16", hd))
	if err != nil {
		return attKernel{}, err
	}
	return attKernel{f, warps}, f.SetMaxSharedBytes(warps * attMMASmem(hd))
}
