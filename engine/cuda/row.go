package cuda

import (
	"os"
	"unsafe"

	"github.com/batchtrans/batchtrans/engine/cuda/driver"
)

// A step of one row (one sequence's decode) runs its products on
// gemm_bf16_row (csrc/row.cuh), which also does what the kernels around
// them would: it adds a split product's ranges in the block, adds onto
// the residual stream, normalises its input row itself, and ends gate|up
// with SwiGLU. So a layer takes six kernels instead of ten, with the same
// bits (TestGemmRow, and TestBatchInvariance's rows alone against rows
// among others).

// EnvRow set to 0 runs a one-row step on the kernels every other step
// runs (the same bits), for measuring one against the other.
const EnvRow = "BATCHTRANS_CUDA_ROW"

// gemm_bf16_row's launch: four warps of 8 columns, each over one range of
// K; its flags (csrc/row.cuh's ROW_*).
const (
	rowThreads = 128
	rowCols    = 32
	rowAcc     = 1
	rowNorm    = 2
	rowSwiGLU  = 4
	rowRoPE    = 8
)

// ropeParams is csrc/row.cuh's row_rope: rope_store's parameters for the
// one row, passed by value.
type ropeParams struct {
	pos, ptoff, pagetab, cos, sin, kc, vc driver.Ptr
	heads, kvheads, hd, page              int32
	pstride                               int64
}

// rowSmem is gemm_bf16_row's shared memory for a product over k with
// rings depth deep: the warps' rings of K tiles of 64, the input row and
// the norm's scratch.
func rowSmem(k int64, depth int) int { return 4*depth*8*(64+8)*2 + int(k)*2 + 128*8 }

// rowDeep is the most K tiles a range may have for the product to run
// on gemm_bf16_row_d16: all its weights in flight at once.
const rowDeep = 16

// rowKernel is the one-row product kernel's name and its shared memory
// for a product over k split s ways: gemm_bf16_row_d16 for ranges of at
// most rowDeep K tiles, else gemm_bf16_row; gemm_bf16_row_r (the weights
// through registers: the row and the scratch alone) where EnvRow is
// "regs"; gemm_bf16_row always where it is "8".
func rowKernel(k, s int64) (string, int) {
	switch v := os.Getenv(EnvRow); {
	case v == "regs":
		return "gemm_bf16_row_r", int(k)*2 + 128*8
	case v != "8" && k/s/64 <= rowDeep:
		return "gemm_bf16_row_d16", rowSmem(k, 16)
	}
	return "gemm_bf16_row", rowSmem(k, 8)
}

// rowTakes reports whether gemm_bf16_row runs a product over k split s
// ways: its block holds 32/s columns by s ranges, each a whole number of
// its K tiles.
func rowTakes(k, s int64) bool { return (s == 1 || s == 2 || s == 4) && k%(s*64) == 0 }

// rowMostK is the longest K of the model's products: the shared memory
// gemm_bf16_row is loaded with.
func (n *Net) rowMostK() int64 {
	h, q, _, inter, _ := n.dims()
	return max(h, q, inter)
}

// rowReady reports whether this replica runs its one-row steps on
// gemm_bf16_row: a bf16 model whose products it takes, gate|up
// interleaved for its SwiGLU, and the kernel loaded (EnvRow not 0).
func (r *replica) rowReady() bool {
	if v := os.Getenv(EnvRow); v != "1" && v != "8" && v != "regs" { // opt-in until measured on a GPU
		return false
	}
	if r.k.gemmRow == nil || !r.net.bf16 || !r.net.guInterleaved {
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
	h, q, kv, _, _ := r.net.dims()
	return r.splits(q+2*kv, h) == 2 && r.net.cfg.HeadDim%16 == 0
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
	cols := rowCols / s
	r.rope = p.rope
	name, smem := rowKernel(p.k, s)
	f := r.k.gemmRow
	if name == "gemm_bf16_row_d16" {
		f = r.k.gemmRowDeep
	}
	q.named(p.name, f, int(cdiv(p.n, cols)), 1, rowThreads, smem,
		r.args.reset().p(p.y).p(p.act).p(p.a).p(p.x).p(p.norm).p(p.w).i(int(p.n)).i(int(p.k)).i(int(s)).i(p.flags).f(p.eps).
			by(unsafe.Pointer(&r.rope)))
}

// rowKernels are the one-row product kernels to look up: the one that
// takes the model's longest K (gemmRow), and gemm_bf16_row_d16 for ranges
// of at most rowDeep K tiles (gemmRowDeep).
func (r *replica) rowKernels() []kernel {
	most := r.net.rowMostK()
	name, smem := rowKernel(most, 1)
	deep, deepSmem := rowKernel(rowDeep*64, 1)
	return []kernel{{&r.k.gemmRow, name, smem}, {&r.k.gemmRowDeep, deep, max(deepSmem, rowSmem(most, 16))}}
}

// EnvEarly set to 0 launches every kernel the plain way on Hopper (the
// same bits), for measuring what launching early saves.
const EnvEarly = "BATCHTRANS_CUDA_EARLY"

// loadEarly takes the kernels of a one-row step from the Hopper module
// mod, built to be launched early (csrc/common.cuh's early_wait), in
// place of the plain module's, and marks them so: each then starts while
// the kernel before it finishes, and gemm_bf16_row streams its first K
// tiles of weights meanwhile. They wait for the kernel before them before
// they touch the step's values, so they may follow any kernel, in any
// step (worker only).
func (r *replica) loadEarly(mod *driver.Module) error {
	ks := []kernel{{&r.k.rope, "rope_store_bf16", 0}, {&r.k.argmax, "argmax", 0}, {&r.k.argmaxMerge, "argmax_merge", 0}}
	if r.k.gemmRow != nil {
		ks = append(ks, r.rowKernels()...)
	}
	if err := findKernels(mod, ks, true); err != nil {
		return err
	}
	if r.k.attMMA == nil {
		return nil
	}
	if err := r.loadAttMMA(mod, r.gpu.SharedOptin); err != nil {
		return err
	}
	for _, k := range r.k.attMMA {
		k.f.SetEarly()
	}
	return nil
}
