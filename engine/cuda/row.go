package cuda

import (
	"os"
	"unsafe"

	"github.com/batchtrans/batchtrans/engine/cuda/driver"
)

// A step of one row (one sequence's decode) runs its products on
// gemm_bf16_row (csrc/row.cuh), which also does what the kernels around
// them would: it adds a split product's ranges in the block, adds onto
// the residual stream, normalises its input row itself, ends gate|up
// with SwiGLU and q|k|v with RoPE and the KV store. So a layer takes five
// kernels instead of ten, with the same bits (TestGemmRow,
// TestGemmRowRoPE, and TestBatchInvariance's rows alone against rows
// among others).

// EnvRow set to 0 runs a one-row step on the kernels every other step
// runs (the same bits), for measuring one against the other.
const EnvRow = "BATCHTRANS_CUDA_ROW"

// gemm_bf16_row's launch: four warps of 8 columns, each over one range of
// K in K tiles of 256 (rowTile) three deep (rowDepth); its flags
// (csrc/row.cuh's ROW_*).
const (
	rowThreads = 128
	rowCols    = 32
	rowTile    = 256
	rowDepth   = 3
	rowAcc     = 1
	rowNorm    = 2
	rowSwiGLU  = 4
	rowRoPE    = 8
)

// rowSmem is gemm_bf16_row's shared memory for a product over k: the
// warps' rings of three K tiles of 256 (8 rows of W each, padded), the
// input row and the norm's scratch: at K = 2,048 four blocks fit an
// H200 multiprocessor (gate|up's 512 blocks in one wave of 528).
func rowSmem(k int64) int { return 4*rowDepth*8*(rowTile+8)*2 + int(k)*2 + 128*8 }

// rowTakes reports whether gemm_bf16_row runs a product over k split s
// ways: its block holds 32/s columns by s ranges, each a whole number of
// its K tiles.
func rowTakes(k, s int64) bool { return (s == 1 || s == 2 || s == 4) && k%(s*rowTile) == 0 }

// maxRowK is the longest K gemm_bf16_row is loaded for without a model
// (the kernel tests).
const maxRowK = 8192

// rowMostK is the longest K of the model's products: the shared memory
// gemm_bf16_row is loaded with.
func (n *Net) rowMostK() int64 {
	if n.cfg == nil {
		return maxRowK
	}
	h, q, _, inter, _ := n.dims()
	return max(h, q, inter)
}

// rowReady reports whether this replica runs its one-row steps on
// gemm_bf16_row: a bf16 model whose products it takes, gate|up
// interleaved for its SwiGLU, and the kernel loaded (EnvRow not 0).
func (r *replica) rowReady() bool {
	if r.k.gemmRow == nil || r.net.cfg == nil || !r.net.bf16 || !r.net.guInterleaved || os.Getenv(EnvRow) == "0" {
		return false
	}
	h, q, kv, inter, vocab := r.net.dims()
	for _, p := range [...]struct{ n, k int64 }{{q + 2*kv, h}, {h, q}, {2 * inter, h}, {h, inter}, {vocab, h}} {
		if !rowTakes(p.k, r.splits(p.n, p.k)) {
			return false
		}
	}
	return r.splits(2*inter, h) == 1 && r.splits(vocab, h) == 1
}

// rowRoPE reports whether the replica's one-row q|k|v product ends with
// RoPE and the KV store (rowRoPE): its block holds the same 8 of a head's
// two halves where the product splits K in two and head_dim is a
// multiple of 16.
func (r *replica) rowRoPE() bool {
	if r.net.cfg == nil {
		return false
	}
	h, q, kv, _, _ := r.net.dims()
	return r.splits(q+2*kv, h) == 2 && r.net.cfg.HeadDim%16 == 0
}

// ropeParams is csrc/row.cuh's row_rope: rope_store's parameters for the
// one row, passed by value.
type ropeParams struct {
	pos, ptoff, pagetab, cos, sin, kc, vc driver.Ptr
	heads, kvheads, hd, page              int32
	pstride                               int64
}

// rowProduct is one product of a one-row step on gemm_bf16_row: y =
// a . w^T (n columns over k), or y += that (rowAcc), its input a, or
// RMSNorm(x) * norm (rowNorm), or act = SwiGLU of it (rowSwiGLU); q|k|v
// then RoPE and the KV store (rowRoPE, with rope).
type rowProduct struct {
	name       string
	y, act, a  driver.Ptr
	x, norm, w driver.Ptr
	n, k       int64
	flags      int
	eps        float32
	rope       ropeParams
}

// row queues p.
func (q *queue) row(p rowProduct) {
	r := q.r
	s := r.splits(p.n, p.k)
	r.rope = p.rope
	q.named(p.name, r.k.gemmRow, int(cdiv(p.n, rowCols/s)), 1, rowThreads, rowSmem(p.k),
		r.args.reset().p(p.y).p(p.act).p(p.a).p(p.x).p(p.norm).p(p.w).i(int(p.n)).i(int(p.k)).i(int(s)).i(p.flags).f(p.eps).
			by(unsafe.Pointer(&r.rope)))
}

// EnvEarly set to 0 launches a one-row step's kernels the plain way on
// Hopper (the same bits), for measuring what launching early saves.
const EnvEarly = "BATCHTRANS_CUDA_EARLY"

// loadEarly takes a one-row step's products (in place of the plain
// module's gemmRow, which one-row steps alone run) and attention
// (attEarly) from the Hopper module mod, built to be launched early
// (csrc/common.cuh's early_wait), and marks them so: each lets the kernel after it start as soon as its
// own blocks run, so a product streams its first K tiles of weights while
// the kernel before it (attention, or the product before) finishes, and
// waits for that kernel before it touches the step's values (worker
// only).
func (r *replica) loadEarly(ctx *driver.Context, mod *driver.Module) error {
	if r.k.gemmRow == nil || !ctx.HasEarlyLaunch() || os.Getenv(EnvEarly) == "0" {
		return nil
	}
	f, err := mod.Func("gemm_bf16_row")
	if err != nil {
		return err
	}
	if err := f.SetMaxSharedBytes(rowSmem(r.net.rowMostK())); err != nil {
		return err
	}
	f.SetEarly()
	r.k.gemmRow = f
	r.k.attEarly = map[int]attKernel{}
	for hd, k := range r.k.attMMA {
		e, err := findAttMMA(mod, hd, k.warps)
		if err != nil {
			return err
		}
		e.f.SetEarly()
		r.k.attEarly[hd] = e
	}
	return nil
}
