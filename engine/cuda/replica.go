package cuda

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"unsafe"

	"github.com/batchtrans/batchtrans/engine/backend"
	"github.com/batchtrans/batchtrans/engine/cuda/driver"
)

// replica is the model on one GPU: its context and worker thread, the
// kernels, the weights, the KV page pool and the step's buffers. Only its
// worker touches the device; the page free list has its own lock.
type replica struct {
	net *Net
	idx int
	gpu driver.GPU
	ctx *driver.Context
	w   *worker
	mod *driver.Module
	// hmod is the Hopper module (hopperPTX), loaded on compute capability
	// 9.0 alone; nil elsewhere.
	hmod *driver.Module
	k    kernelSet
	st   driver.Stream

	allocs []driver.Ptr // every device allocation, freed by close

	embed, lmHead, norm driver.Ptr
	layers              []layerWeights
	cos, sin            driver.Ptr

	// The KV cache pool: page p of layer l holds keys at pool + p*pageBytes
	// + l*2*slab and values a slab after them, slab = pageSize*kvDim
	// elements (bf16 or float32: Net.kvElt).
	pool      driver.Ptr
	pageBytes int64
	mu        sync.Mutex
	free      []int32
	refs      []int32 // per page: the states and prefixes holding it (0: free)
	states    int

	// Step buffers (see forward) and the page-locked host staging. part
	// holds the partial sums of split products (see partBytes); argVal and
	// argIdx the parts' bests of the greedy choice (see argmaxParts).
	x, xn, qkv, att, gu, act, last, logits, meta, argOut, part driver.Ptr
	argVal, argIdx                                             driver.Ptr
	host                                                       []byte
	ones, runs                                                 []int32 // the step's attention tiles, before they join meta
	args                                                       launchArgs
	prof                                                       profiler                      // BATCHTRANS_CUDA_PROFILE timings
	graphs                                                     graphSet                      // recorded steps per shape
	tmaps                                                      map[tmapKey]*driver.TensorMap // gemm_bf16_wg's operands (tensorMap)
	rope                                                       ropeParams                    // gemm_bf16_row's, for the launch at hand
}

type layerWeights struct {
	attnNorm, mlpNorm, qkv, o, gu, down driver.Ptr
}

// kernelSet holds the kernels of the replica's dtype (which is also the
// KV cache's: rope and attention read and write it in that type).
type kernelSet struct {
	embed, rmsnorm, attention, swiglu, gemm, rope, argmax, reduce *driver.Func
	argmaxMerge                                                   *driver.Func
	gemmBlock                                                     int
	// attentionTile is attention over tiles of a sequence's rows, with
	// attention's bits (see appendTiles).
	attentionTile *driver.Func
	// attMMA is the tensor-core attention by head_dim (bf16; see attend),
	// which then replaces attention and attentionTile.
	attMMA map[int]attKernel
	// gemmWide is the large-tile bf16 product for steps of more than
	// wideRows rows, gemmNarrow the one for at most narrowRows (both nil
	// in f32); they give gemm's bits.
	gemmWide, gemmNarrow *driver.Func
	// gemmBig and gemmBigK32 are the 128 x 256 bf16 products, launched
	// by name alone (gemmTile) until pickTile learns where they pay;
	// gemmBig is nil where the GPU's SharedOptin is below its bigSmem.
	gemmBig, gemmBigK32 *driver.Func
	// gemmStream is the streamed few-row bf16 product (K a multiple of
	// 8), with gemm's bits; nil where the GPU's SharedOptin is below its
	// shared memory (gemmNarrow runs instead).
	gemmStream *driver.Func
	// gemmWG is the 128 x 256 bf16 product on Hopper's wgmma (the Hopper
	// module), with gemm's bits; nil but on compute capability 9.0 (then
	// gemmBig runs).
	gemmWG *driver.Func
	// gemmWGS is the split bf16 product whole in one block on wgmma
	// (128 x 128 tiles, every range of K in turn; fuseSplits says when).
	gemmWGS *driver.Func
	// gemmRow is the one-row bf16 product with the kernels around it
	// folded in (row.go); nil where the GPU's SharedOptin is below its
	// shared memory.
	gemmRow *driver.Func
	// rows says the one-row steps run on gemmRow (rowReady), and rowRoPE
	// that their q|k|v product also does RoPE's work.
	rows, rowRoPE bool
	// attEarly is attMMA from the Hopper module, launched early in one-row
	// steps (row.go's loadEarly, which puts gemmRow's early copy in its
	// place too; nil where not).
	attEarly map[int]attKernel
}

func (r *replica) live() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.states
}

// alloc allocates n bytes, remembered for close.
func (r *replica) alloc(n int64) (driver.Ptr, error) {
	p, err := r.ctx.Alloc(max(n, 256))
	if err != nil {
		return 0, fmt.Errorf("GPU %d (%s): %w", r.gpu.Index, r.gpu.Name, err)
	}
	r.allocs = append(r.allocs, p)
	return p, nil
}

// take removes n pages from the pool.
func (r *replica) take(n int) ([]int32, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n > len(r.free) {
		return nil, fmt.Errorf("cuda: GPU %d's KV cache is full (%d pages of %d positions free, %d needed): %w",
			r.gpu.Index, len(r.free), pageSize, n, errKVFull)
	}
	pg := append([]int32(nil), r.free[len(r.free)-n:]...)
	r.free = r.free[:len(r.free)-n]
	for _, p := range pg {
		r.refs[p] = 1
	}
	return pg, nil
}

// share takes one more hold on pages already held (whole pages of a
// prefix, which no state writes again), and returns them.
func (r *replica) share(pg []int32) []int32 {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range pg {
		r.refs[p]++
	}
	return append([]int32(nil), pg...)
}

// release drops a hold on each page; a page no one holds returns to the
// pool.
func (r *replica) release(pg []int32) {
	if len(pg) == 0 {
		return
	}
	r.mu.Lock()
	for _, p := range pg {
		if r.refs[p]--; r.refs[p] == 0 {
			r.free = append(r.free, p)
		}
	}
	r.mu.Unlock()
}

// errKVFull is wrapped when the KV cache pool has no room.
var errKVFull = errors.New("lower runtime.workers (rows in flight) or free GPU memory")

// copyPages copies whole pages src to dst on the device (worker only).
func (r *replica) copyPages(dst, src []int32) error {
	for i := range src {
		if err := r.ctx.CopyDeviceAsync(r.pool.Add(int64(dst[i])*r.pageBytes), r.pool.Add(int64(src[i])*r.pageBytes), r.pageBytes, r.st); err != nil {
			return fmt.Errorf("cuda: copy KV pages: %w: %w", err, backend.ErrDevice)
		}
	}
	return nil
}

// downloadPages copies pages to host (worker only).
func (r *replica) downloadPages(host []byte, pg []int32) error {
	for i, p := range pg {
		if err := r.ctx.CopyOut(unsafe.Pointer(&host[int64(i)*r.pageBytes]), r.pool.Add(int64(p)*r.pageBytes), r.pageBytes); err != nil {
			return fmt.Errorf("cuda: copy KV pages: %w: %w", err, backend.ErrDevice)
		}
	}
	return nil
}

// uploadPages copies host bytes into pages (worker only).
func (r *replica) uploadPages(pg []int32, host []byte) error {
	for i, p := range pg {
		if err := r.ctx.CopyIn(r.pool.Add(int64(p)*r.pageBytes), unsafe.Pointer(&host[int64(i)*r.pageBytes]), r.pageBytes); err != nil {
			return fmt.Errorf("cuda: copy KV pages: %w: %w", err, backend.ErrDevice)
		}
	}
	return nil
}

// close frees everything the replica holds.
func (r *replica) close() error {
	if r.w == nil {
		return nil
	}
	err := r.w.do(func() error {
		errs := []error{r.freeGraphs()}
		for _, p := range r.allocs {
			errs = append(errs, r.ctx.Free(p))
		}
		r.allocs = nil
		errs = append(errs, r.ctx.FreeHost(r.host))
		r.host = nil
		if r.st != 0 {
			errs = append(errs, r.ctx.DestroyStream(r.st))
		}
		if r.hmod != nil {
			errs = append(errs, r.hmod.Unload())
		}
		if r.mod != nil {
			errs = append(errs, r.mod.Unload())
		}
		return errors.Join(errs...)
	})
	r.w.stop()
	r.w = nil
	return errors.Join(err, r.ctx.Release())
}

// launchArgs builds cuLaunchKernel's parameter array without allocating:
// each value sits in vals, each parameter points at its value.
type launchArgs struct {
	vals [16]uint64
	ptrs [16]unsafe.Pointer
	n    int
}

func (a *launchArgs) reset() *launchArgs { a.n = 0; return a }

func (a *launchArgs) add(v uint64) *launchArgs {
	a.vals[a.n] = v
	a.ptrs[a.n] = unsafe.Pointer(&a.vals[a.n])
	a.n++
	return a
}

func (a *launchArgs) p(p driver.Ptr) *launchArgs { return a.add(uint64(p)) }

// by passes the parameter at v (a struct passed by value), which must stay
// put until the launch returns.
func (a *launchArgs) by(v unsafe.Pointer) *launchArgs {
	a.ptrs[a.n] = v
	a.n++
	return a
}
func (a *launchArgs) i(v int) *launchArgs     { return a.add(uint64(uint32(int32(v)))) }
func (a *launchArgs) l(v int64) *launchArgs   { return a.add(uint64(v)) }
func (a *launchArgs) f(v float32) *launchArgs { return a.add(uint64(math.Float32bits(v))) }
func (a *launchArgs) list() []unsafe.Pointer  { return a.ptrs[:a.n] }
