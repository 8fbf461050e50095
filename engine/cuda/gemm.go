package cuda

import (
	"errors"
	"fmt"
	"unsafe"

	"github.com/batchtrans/batchtrans/engine/cuda/driver"
)

// The matrix products of a step (csrc/gemm.cuh): which kernel runs one,
// into how many ranges of K it splits, and the reduction that ends a split
// product (csrc/reduce.cuh).

// Split-K rule (see splitK).
const (
	// maxSplits caps the ranges: each costs a plane of partial sums.
	maxSplits = 4
	// minRange is the shortest range: each range's partial plane is
	// written and read once, which a range of fewer k pays for badly.
	minRange = 1024
	// splitTiles is the 128 x 256 tiles a band of 128 rows should have,
	// all ranges counted: about half an H200's multiprocessors, so that a
	// step of 512 rows fills the GPU twice over.
	splitTiles = 64
	// splitTile is what a range's length must be a multiple of: the
	// few-row kernel's K tile (GS_K), a multiple of the others' (GB_K,
	// and the 128 x 256 kernels' 64 or 32), so that every kernel runs the
	// same k steps over a range.
	splitTile = 128
)

// splitK returns how many ranges S of K the bf16 product of n columns over
// k splits into: min(maxSplits, k/minRange, max(1, splitTiles/ceil(n/256))),
// at least 1, halved while k is not a multiple of S*splitTile. So a
// product of few columns splits (its few output tiles would leave the GPU
// idle while each sums all of K), and a short K does not. It depends on
// the shape alone, never on the rows of the step, and that keeps a row's
// bits independent of the step: an element is the sum, in order of the
// range, of partials that each sum their range of k from zero in one order
// of tensor-core steps, whichever kernel runs them. Llama 3.2 1B: q|k|v 2,
// o 2, down 4, gate|up and lm_head 1. Measured on an H200
// (BenchmarkGemmSplits, 128 x 256 tiles): at 512 rows q|k|v takes 31 µs
// split in 2 against 48 whole, o 28 against 44 (64 x 64 tiles), down 52 in
// 4 against 78 in 2; at 4,096 rows (a prefill step) the splits cost 10-20%
// (o: 147 µs against 123), and decode steps outnumber prefill steps many
// times over in a job.
func splitK(n, k int64) int64 {
	s := min(maxSplits, k/minRange, max(1, splitTiles/cdiv(n, bigCols)))
	s = max(s, 1)
	for s > 1 && k%(s*splitTile) != 0 {
		s /= 2
	}
	return s
}

// splits is splitK for the replica's dtype: the float32 product is never
// split (its kernel takes no split, and keeps its bits).
func (r *replica) splits(n, k int64) int64 {
	if !r.net.bf16 {
		return 1
	}
	return splitK(n, k)
}

// Tile choice (see pickTile).
const (
	// narrowRows is the most rows the few-row product takes.
	narrowRows = 16
	// streamRows is the most rows the streamed product runs (where K is a
	// multiple of 8). BenchmarkGemmSplits, H200, one row: q|k|v split in
	// 2, 11.3 µs against 11.9 on the few-row product, o 11.2 against 11.6,
	// gate|up 33.0 against 33.6; at 4 rows gate|up took 47.5 against 36.9
	// and at 8 rows 58.7 against 37.5, so the streamed product runs one
	// row alone (one sequence's decode).
	streamRows = 1
	// wideRows is the step size from which the large-tile product pays.
	wideRows = 64
	// wideWaves10 is how many tenths of a block each multiprocessor must
	// get from the large tiles (all splits counted) for them to be chosen;
	// below that the 64 x 64 tiles spread the work wider. Measured on an
	// H200: 9/10 of a wave of large tiles beats the 64 x 64 ones.
	wideWaves10 = 9
	// bigWaves10 is the same for the 128 x 256 tiles: 4/10 of a wave of
	// them beats a wave of the smaller ones (H200: q|k|v at 512 rows,
	// 48 blocks, 47.6 µs against 52.2 on 64 x 64 tiles).
	bigWaves10 = 4
)

// Launch shapes of the few-row product (csrc/gemm.cuh's GS_*).
const (
	narrowCols    = 32
	narrowThreads = 128
	narrowSmem    = 5 * (16 + 32) * 136 * 2
)

// Launch shapes of the streamed few-row product (csrc/gemm.cuh's GT_*):
// four warps of 8 columns, each with its own ring of stages of min(16, M)
// rows of A and 8 of W, K tiles of 64 eight deep.
const (
	streamCols    = 32
	streamThreads = 128
)

// streamSmem is the streamed product's shared memory for m rows; the
// most, at 16 rows, is what load.go sets aside.
func streamSmem(m int64) int { return 4 * 8 * (int(min(m, narrowRows)) + 8) * (64 + 8) * 2 }

// Launch shapes of the large-tile product (csrc/gemm.cuh's GB2_*).
const (
	wideTile    = 128
	wideThreads = 256
	wideSmem    = 3 * (128 + 128) * 40 * 2
)

// Launch shapes of the 128 x 256 products (csrc/gemm.cuh's GW_*): K
// tiles of 64 three deep, or of 32 four deep.
const (
	bigRows    = 128
	bigCols    = 256
	bigThreads = 256
	bigSmem    = 3 * (128 + 256) * 64 * 2 // gemm_bf16_128x256: 144 KiB
	bigSmemK32 = 4 * (128 + 256) * 32 * 2 // gemm_bf16_128x256_k32: 96 KiB
)

// hopperSmem is gemm_bf16_wg's shared memory (csrc/gemm_wg.cuh's
// WG_SMEM): K tiles of 64 four deep, 192 KiB, and its barriers and
// alignment; hopperThreads its block (a producer and two consumer
// warpgroups).
const (
	hopperSmem    = 4*(128+256)*64*2 + 2048
	hopperThreads = 384
)

// hopperSplitSmem is gemm_bf16_wgs's (WGS_SMEM): 128 x 128 tiles, K tiles
// of 64 six deep, 192 KiB and the barriers; hopperSplitCols its tiles'
// columns.
const (
	hopperSplitSmem = 6*(128+128)*64*2 + 2048
	hopperSplitCols = 128
)

// EnvWGMMA set to 0 keeps the 128 x 256 products on mma.sync
// (gemm_bf16_128x256) on a GPU of compute capability 9.0, where they run
// on Hopper's wgmma (gemm_bf16_wg) by default: the same bits, for
// measuring one against the other.
const EnvWGMMA = "BATCHTRANS_CUDA_WGMMA"

// loadHopper loads the Hopper module and gemm_bf16_wg on a bf16 replica
// of a GPU of compute capability 9.0 that gives a block its shared
// memory and whose driver encodes tensor maps, unless EnvWGMMA is 0
// (worker only). A driver that cannot compile the module (older than
// R525) leaves it out: the mma.sync kernels give the same bits.
func (r *replica) loadHopper(ctx *driver.Context) error {
	if !r.net.bf16 || !r.net.wgmma || r.gpu.Major != 9 || r.gpu.Minor != 0 || r.gpu.SharedOptin < hopperSmem ||
		!ctx.HasTensorMaps() {
		return nil
	}
	mod, err := ctx.LoadModule(hopperPTX)
	if driver.IsCode(err, driver.ErrUnsupportedPTX) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("load the Hopper kernels: %w", err)
	}
	r.hmod = mod
	if r.k.gemmWG, err = mod.Func("gemm_bf16_wg"); err != nil {
		return err
	}
	if err := r.k.gemmWG.SetMaxSharedBytes(hopperSmem); err != nil {
		return err
	}
	if r.k.gemmWGS, err = mod.Func("gemm_bf16_wgs"); err != nil {
		return err
	}
	if err := r.k.gemmWGS.SetMaxSharedBytes(hopperSplitSmem); err != nil {
		return err
	}
	return r.loadEarly(ctx, mod)
}

// has reports whether kernel t is loaded on this replica.
func (r *replica) has(t tile) bool {
	switch t {
	case tileBig:
		return r.k.gemmBig != nil
	case tileStream:
		return r.k.gemmStream != nil
	case tileHopper:
		return r.k.gemmWG != nil
	}
	return true
}

// tile names a bf16 product kernel.
type tile int

const (
	tileMid    tile = iota // gemm_bf16: 64 x 64
	tileNarrow             // gemm_bf16_16: 16 x 32, up to narrowRows rows
	tileWide               // gemm_bf16_128: 128 x 128
	tileBig                // gemm_bf16_128x256: 128 x 256, K tiles of 64
	tileBigK32             // gemm_bf16_128x256_k32: 128 x 256, K tiles of 32
	tileStream             // gemm_bf16_16s: up to 16 rows, 8 columns a warp, K tiles of 64 eight deep
	tileHopper             // gemm_bf16_wg: 128 x 256 on Hopper's wgmma, K tiles of 64 four deep
)

func (t tile) String() string {
	return [...]string{tileMid: "gemm_bf16", tileNarrow: "gemm_bf16_16", tileWide: "gemm_bf16_128",
		tileBig: "gemm_bf16_128x256", tileBigK32: "gemm_bf16_128x256_k32",
		tileStream: "gemm_bf16_16s", tileHopper: "gemm_bf16_wg"}[t]
}

// vector reports whether kernel t copies rows 16 bytes at a time, and so
// takes K a multiple of 8 only.
func (t tile) vector() bool {
	return t == tileBig || t == tileBigK32 || t == tileStream || t == tileHopper
}

// swiglu reports whether kernel t takes the SwiGLU epilogue
// (csrc/gemm.cuh's GEMM_SWIGLU): each of its threads holds the n8 tiles of
// whole 16-column groups. The few-row kernels hold one n8 tile a warp.
func (t tile) swiglu() bool {
	return t == tileMid || t == tileWide || t == tileBig || t == tileBigK32 || t == tileHopper
}

// epilogueSwiGLU is the accumulate parameter that asks a product kernel
// for the SwiGLU epilogue (csrc/gemm.cuh's GEMM_SWIGLU; 0 and 1 store and
// add).
const epilogueSwiGLU = 2

// fuseSwiGLU reports whether the bf16 gate|up product of m rows (n =
// 2*inter columns over k, in s ranges of K) ends in the SwiGLU epilogue on
// sms multiprocessors: where the gate|up rows are interleaved, the product
// does not split, and pickTile picks a kernel that takes it. Otherwise the
// product writes float32 gate|up and the swiglu kernel follows. Either way
// act gets the same bits; the choice depends on the shape alone, so a
// recorded step keeps it.
func fuseSwiGLU(interleaved bool, m, n, k, s int64, sms int) bool {
	return interleaved && s == 1 && n%(2*guGroup) == 0 && pickTile(m, n, s, sms, k%8 == 0).swiglu()
}

// fusesSwiGLU is fuseSwiGLU for this replica's gate|up product of m rows.
func (r *replica) fusesSwiGLU(m int64) bool {
	h, _, _, inter, _ := r.net.dims()
	return r.net.bf16 && fuseSwiGLU(r.net.guInterleaved, m, 2*inter, h, r.splits(2*inter, h), r.gpu.SMs)
}

// pickTile chooses the bf16 kernel for m rows of n columns over s splits
// on sms multiprocessors: up to streamRows rows the streamed kernel where
// big (K a multiple of 8), else up to narrowRows the few-row one; the 128
// x 256 tiles from 128 rows once their blocks (all splits counted) fill
// 4/10 of the multiprocessors, where big; else the 128 x 128 tiles past
// 64 rows once theirs fill 9/10; else 64 x 64. Any choice gives the same bits;
// this is speed alone.
func pickTile(m, n, s int64, sms int, big bool) tile {
	fills := func(rows, cols, tenths int64) bool {
		return 10*cdiv(n, cols)*cdiv(m, rows)*s >= tenths*int64(sms)
	}
	switch {
	case m <= streamRows && big:
		return tileStream
	case m <= narrowRows:
		return tileNarrow
	case big && m >= bigRows && fills(bigRows, bigCols, bigWaves10):
		return tileBig
	case m > wideRows && fills(wideTile, wideTile, wideWaves10):
		return tileWide
	}
	return tileMid
}

func cdiv(a, b int64) int64 { return (a + b - 1) / b }

// A caller's mistakes in naming a product kernel.
var (
	// errSplitF32: the float32 kernel has no split.
	errSplitF32 = errors.New("cuda: the float32 product does not split K")
	// errVectorK: the 128 x 256 and the streamed kernels copy rows 16
	// bytes at a time, so K must be a multiple of 8 (the others also take
	// elements one by one).
	errVectorK = errors.New("cuda: the 128 x 256 and streamed products take K a multiple of 8 only")
	// errSwiGLU: the SwiGLU epilogue needs a bf16 kernel that holds whole
	// 16-column groups, no split, and N a multiple of 16.
	errSwiGLU = errors.New("cuda: this product kernel or shape does not take the SwiGLU epilogue")
	// errBigSmem: this GPU lets a block opt in to less shared memory than
	// gemm_bf16_128x256's 144 KiB or the streamed kernels' 108 KiB
	// (Ampere's and Ada's consumer GPUs).
	errBigSmem = errors.New("cuda: this GPU gives a block too little shared memory for this product kernel")
)

// gemm launches y = x . w^T (m x n from m x k and n x k), or y += that,
// over s ranges of K (worker only). With s > 1, y is s planes of m x n
// float32 partials, acc is ignored, and reduce must sum them.
func (r *replica) gemm(y, x, w driver.Ptr, m, n, k, s int64, acc bool) error {
	args := r.args.reset().p(y).p(x).p(w).i(int(m)).i(int(n)).i(int(k)).i(flag(acc)).list()
	if !r.net.bf16 {
		if s != 1 {
			return errSplitF32
		}
		return r.gemmTile(tileMid, y, x, w, m, n, k, 1, args) // gemm_f32, of the same 64 x 64 tiles
	}
	return r.gemmTile(r.loaded(pickTile(m, n, s, r.gpu.SMs, k%8 == 0)), y, x, w, m, n, k, s, args)
}

// loaded is kernel t, or its stand-in: the 128 x 256 tiles run on
// wgmma where the Hopper module loaded (EnvWGMMA; the same bits), and on a
// GPU that lets a block have too little shared memory for a kernel,
// another runs.
func (r *replica) loaded(t tile) tile {
	switch {
	case (t == tileBig || t == tileBigK32) && r.k.gemmWG != nil:
		return tileHopper
	case t == tileBig && r.k.gemmBig == nil:
		return tileBigK32
	case t == tileStream && r.k.gemmStream == nil:
		return tileNarrow
	}
	return t
}

// gemmSwiGLU launches act = SwiGLU(x . w^T), the bf16 gate|up product of
// m rows (n columns of w's interleaved gate|up rows over k) ending in the
// SwiGLU epilogue: act is m x n/2 bf16 (worker only). The caller asks only
// where fusesSwiGLU says so.
func (r *replica) gemmSwiGLU(act, x, w driver.Ptr, m, n, k int64) error {
	return r.gemmTileSwiGLU(r.loaded(pickTile(m, n, 1, r.gpu.SMs, k%8 == 0)), act, x, w, m, n, k)
}

// gemmTileSwiGLU is gemmSwiGLU on kernel t, which must take the epilogue
// (errSwiGLU otherwise).
func (r *replica) gemmTileSwiGLU(t tile, act, x, w driver.Ptr, m, n, k int64) error {
	if !r.net.bf16 || !t.swiglu() || n%(2*guGroup) != 0 {
		return errSwiGLU
	}
	args := r.args.reset().p(act).p(x).p(w).i(int(m)).i(int(n)).i(int(k)).i(epilogueSwiGLU).list()
	return r.gemmTile(t, act, x, w, m, n, k, 1, args)
}

// gemmTile launches the bf16 product on kernel t (worker only). The 128
// x 256 and streamed kernels refuse K not a multiple of 8 (errVectorK),
// and gemm_bf16_128x256 a GPU it was not loaded on (errBigSmem).
func (r *replica) gemmTile(t tile, y, x, w driver.Ptr, m, n, k, s int64, args []unsafe.Pointer) error {
	if t.vector() && k%8 != 0 {
		return errVectorK
	}
	switch t {
	case tileStream:
		if r.k.gemmStream == nil {
			return errBigSmem
		}
		return r.k.gemmStream.LaunchShared(r.st, [3]int{int(cdiv(n, streamCols)), int(cdiv(m, narrowRows)), int(s)},
			[3]int{streamThreads, 1, 1}, streamSmem(m), args)
	case tileBig, tileBigK32:
		f, smem := r.k.gemmBig, bigSmem
		if t == tileBigK32 {
			f, smem = r.k.gemmBigK32, bigSmemK32
		}
		if f == nil {
			return errBigSmem
		}
		return f.LaunchShared(r.st, [3]int{int(cdiv(n, bigCols)), int(cdiv(m, bigRows)), int(s)},
			[3]int{bigThreads, 1, 1}, smem, args)
	case tileHopper:
		if r.k.gemmWG == nil {
			return errBigSmem
		}
		if !hopperTakes(x, w, k, s) { // gemm_bf16_128x256 has the same bits
			return r.gemmTile(tileBig, y, x, w, m, n, k, s, args)
		}
		if err := r.operandMaps(args, x, w, m, n, k, bigCols); err != nil {
			return err
		}
		return r.k.gemmWG.LaunchShared(r.st, [3]int{int(cdiv(n, bigCols)), int(cdiv(m, bigRows)), int(s)},
			[3]int{hopperThreads, 1, 1}, hopperSmem, args)
	case tileNarrow:
		return r.k.gemmNarrow.LaunchShared(r.st, [3]int{int(cdiv(n, narrowCols)), int(cdiv(m, narrowRows)), int(s)},
			[3]int{narrowThreads, 1, 1}, narrowSmem, args)
	case tileWide:
		return r.k.gemmWide.LaunchShared(r.st, [3]int{int(cdiv(n, wideTile)), int(cdiv(m, wideTile)), int(s)},
			[3]int{wideThreads, 1, 1}, wideSmem, args)
	}
	return r.k.gemm.Launch(r.st, [3]int{int(cdiv(n, 64)), int(cdiv(m, 64)), int(s)}, [3]int{r.k.gemmBlock, 1, 1}, args)
}

// hopperTakes reports whether gemm_bf16_wg takes a product of x and w over
// k split s ways: the copy engine reads from 16-byte boundaries, and the
// kernel runs whole K tiles of 64.
func hopperTakes(x, w driver.Ptr, k, s int64) bool {
	return x%16 == 0 && w%16 == 0 && s > 0 && k%(s*64) == 0
}

// operandMaps puts the tensor maps of a wgmma product's operands in
// args[1] and args[2], where its kernels take them in place of x and w:
// x's m rows in boxes of 128 (bigRows), w's n rows in boxes of wRows (the
// kernel's tile columns).
func (r *replica) operandMaps(args []unsafe.Pointer, x, w driver.Ptr, m, n, k, wRows int64) error {
	ma, err := r.tensorMap(x, m, k, bigRows)
	if err != nil {
		return err
	}
	mw, err := r.tensorMap(w, n, k, wRows)
	if err != nil {
		return err
	}
	args[1], args[2] = unsafe.Pointer(ma), unsafe.Pointer(mw)
	return nil
}

// tmapKey names a tensor map gemm_bf16_wg reads through: a matrix of rows
// x cols at addr, in boxes of box rows.
type tmapKey struct {
	addr            driver.Ptr
	rows, cols, box int64
}

// maxTensorMaps bounds the replica's cache of tensor maps (a few per
// product a layer, times the shapes of the steps seen).
const maxTensorMaps = 4096

// tensorMap returns the tensor map of the bf16 matrix of rows x cols at
// addr, read in boxes of box rows by K tiles of 64 (gemm_wg.cuh's WG_K),
// encoding it the first time (worker only).
func (r *replica) tensorMap(addr driver.Ptr, rows, cols, box int64) (*driver.TensorMap, error) {
	key := tmapKey{addr, rows, cols, box}
	if m, ok := r.tmaps[key]; ok {
		return m, nil
	}
	m, err := r.ctx.TensorMapBF16(addr, rows, cols, int(box), 64)
	if err != nil {
		return nil, err
	}
	if len(r.tmaps) >= maxTensorMaps {
		clear(r.tmaps)
	}
	r.tmaps[key] = m
	return m, nil
}

// partBytes is the partial-sum buffer (r.part) a step needs: the most
// rows x columns x splits of the products forward runs that split.
func (r *replica) partBytes() int64 {
	h, q, kv, inter, vocab := r.net.dims()
	R, L := int64(r.net.maxRows), int64(r.net.maxOut)
	var most int64
	for _, p := range [...]struct{ rows, n, k int64 }{
		{R, q + 2*kv, h}, {R, h, q}, {R, 2 * inter, h}, {R, h, inter}, {L, vocab, h},
	} {
		if s := r.splits(p.n, p.k); s > 1 {
			most = max(most, p.rows*p.n*s)
		}
	}
	return 4 * most
}

// product is one matrix product of a step and what follows it:
// y = x . w^T (m x n from m x k and n x k), or y += that when acc (the
// residual stream); then, when norm is not 0, yn = RMSNorm(y) * norm.
// gemm and sum name its launches in the profile.
type product struct {
	gemm, sum string
	y, x, w   driver.Ptr
	m, n, k   int64
	acc       bool
	norm, yn  driver.Ptr
	eps       float32
}

// product queues p. A product that splits runs as the split product into
// r.part and one reduce that sums the partials into y and normalises; one
// that does not, as the product into y, then rmsnorm when p asks for it.
// Either way y and yn get the same bits for any number of rows.
func (q *queue) product(p product) {
	r := q.r
	s := r.splits(p.n, p.k)
	if s == 1 {
		q.gemm(p.gemm, p.y, p.x, p.w, p.m, p.n, p.k, 1, p.acc)
		q.normRows(p)
		return
	}
	if r.k.gemmWGS != nil && hopperTakes(p.x, p.w, p.k, s) && fuseSplits(p.m, p.n, p.k, s, r.gpu.SMs, p.norm != 0) {
		q.gemmSplitWhole(p.gemm, p.y, p.x, p.w, p.m, p.n, p.k, s, p.acc)
		q.normRows(p)
		return
	}
	q.gemm(p.gemm, r.part, p.x, p.w, p.m, p.n, p.k, s, false)
	q.reduce(p.sum, p.y, p.yn, p.norm, p.m, p.n, s, p.acc, p.eps)
}

// normRows queues yn = RMSNorm(y) * norm for the product's rows where it
// asks for the norm (norm not 0), after a product the reduce does not end.
func (q *queue) normRows(p product) {
	if p.norm != 0 {
		q.launch(q.r.k.rmsnorm, int(p.m), 1, 256, q.r.args.reset().p(p.yn).p(p.y).p(p.norm).p(0).i(int(p.n)).f(p.eps))
	}
}

// gemmSplitWhole launches gemm_bf16_wgs: y = x . w^T over s ranges of K
// summed in the block, stored or added onto y (acc), with the bits of the
// split product and its reduce (worker only; hopperTakes must hold).
func (r *replica) gemmSplitWhole(y, x, w driver.Ptr, m, n, k, s int64, acc bool) error {
	args := r.args.reset().p(y).p(0).p(0).i(int(m)).i(int(n)).i(int(k)).i(int(s)).i(flag(acc)).list()
	if err := r.operandMaps(args, x, w, m, n, k, hopperSplitCols); err != nil {
		return err
	}
	return r.k.gemmWGS.LaunchShared(r.st, [3]int{int(cdiv(n, hopperSplitCols)), int(cdiv(m, bigRows)), 1},
		[3]int{hopperThreads, 1, 1}, hopperSplitSmem, args)
}

// fuseSplits reports whether a product of m rows and n columns over k,
// split s ways, runs faster whole in one block (gemm_bf16_wgs, then the
// RMSNorm kernel where the reduce would have normalised: norm) than as
// the split product on 128 x 256 tiles and its reduce. The same bits
// either way, so this weighs speed alone, from a model of an H200: a 64-k
// step of a 128 x 128 tile takes 1.15 times half a 128 x 256 one (0.43
// µs), blocks run in whole waves over the multiprocessors, and the
// reduce and the norm move their bytes at 3 TB/s (plus 2 µs a launch).
// It holds for Llama 3.2 1B's q|k|v, o and down at 1,024 rows, not at 512.
func fuseSplits(m, n, k, s int64, sms int, norm bool) bool {
	if s < 2 || m < bigRows || sms <= 0 {
		return false
	}
	const step, bw, launch = 0.43, 3e6, 2.0 // µs a 128 x 128 64-k step, bytes a µs, µs a launch
	waves := func(blocks int64) float64 { return float64(cdiv(blocks, int64(sms))) }
	rowTiles := cdiv(m, bigRows)
	split := waves(rowTiles*cdiv(n, bigCols)*s)*float64(k/s/64)*2*step + float64(m*n*4*(s+1))/bw
	whole := waves(rowTiles*cdiv(n, hopperSplitCols)) * float64(k/64) * 1.15 * step
	if norm {
		whole += float64(m*n*4)/bw + launch
	}
	return whole < split
}

// reduce queues the sum of the s partial planes in r.part (m x n each)
// into y, or onto y when acc; then, when norm is not 0, yn =
// RMSNorm(y) * norm. One block of 256 threads a row.
func (q *queue) reduce(name string, y, yn, norm driver.Ptr, m, n, s int64, acc bool, eps float32) {
	r := q.r
	q.named(name, r.k.reduce, int(m), 1, 256, 0,
		r.args.reset().p(y).p(yn).p(r.part).p(norm).i(int(s)).i(int(m)).i(int(n)).i(flag(acc)).f(eps))
}

// gemmSwiGLU queues replica.gemmSwiGLU, timed as name.
func (q *queue) gemmSwiGLU(name string, act, x, w driver.Ptr, m, n, k int64) {
	if q.open() {
		q.close(name, q.r.gemmSwiGLU(act, x, w, m, n, k))
	}
}

// gemmSplitWhole queues replica.gemmSplitWhole, timed as name.
func (q *queue) gemmSplitWhole(name string, y, x, w driver.Ptr, m, n, k, s int64, acc bool) {
	if q.open() {
		q.close(name, q.r.gemmSplitWhole(y, x, w, m, n, k, s, acc))
	}
}

// gemm queues replica.gemm, timed as name.
func (q *queue) gemm(name string, y, x, w driver.Ptr, m, n, k, s int64, acc bool) {
	if q.open() {
		q.close(name, q.r.gemm(y, x, w, m, n, k, s, acc))
	}
}
