package cuda

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/batchtrans/batchtrans/engine/cuda/driver"
	"github.com/batchtrans/batchtrans/engine/kernels"
	"github.com/batchtrans/batchtrans/engine/llama"
	"github.com/batchtrans/batchtrans/internal/parallel"
)

// Phase is one part of Load and the wall time it took.
type Phase struct {
	Name string
	D    time.Duration
}

// Load's phases, in order. Read-merge, convert and upload interleave
// tensor by tensor; each counts its own share of that stretch.
const (
	PhaseDriver    = "driver"       // the driver library, the GPU probe, config.json
	PhaseModules   = "modules"      // contexts, workers, the PTX module (JIT) and its functions
	PhaseAlloc     = "weight_alloc" // the weights' device buffers
	PhaseReadMerge = "read_merge"   // reading the safetensors and merging the adapter (llama.LoadHost less its sink)
	PhaseConvert   = "convert"      // float32 to the device format, on the host
	PhaseUpload    = "upload"       // host-to-device copies of the weights, every GPU
	PhaseFinish    = "finish"       // rotary tables, step buffers, the KV cache pool
)

// LoadPhases returns the wall time of each phase of Load, in order.
func (n *Net) LoadPhases() []Phase { return slices.Clone(n.phases) }

// Load builds the backend on every visible GPU: it compiles the kernels,
// uploads the weights (the adapter merged on the host, each tensor
// converted once and copied to every GPU as it is read), and sizes the KV
// cache pool from the memory left. Errors say which GPU and what did not
// fit. LoadPhases says where its time went.
func Load(opts Options) (*Net, error) {
	var phases []Phase
	mark := time.Now()
	phase := func(name string) {
		now := time.Now()
		phases = append(phases, Phase{name, now.Sub(mark)})
		mark = now
	}
	lib, err := driver.Load()
	if err != nil {
		return nil, fmt.Errorf("cuda: %w", err)
	}
	rep := driver.Probe()
	if rep.Err != nil {
		return nil, fmt.Errorf("cuda: %w", rep.Err)
	}
	if err := sameGPUs(rep.GPUs); err != nil {
		return nil, fmt.Errorf("cuda: %w", err)
	}
	cfg, err := llama.LoadConfig(opts.ModelDir)
	if err != nil {
		return nil, err
	}
	if cfg.HeadDim > maxHeadDim || cfg.HeadDim%2 != 0 || cfg.Heads%cfg.KVHeads != 0 || cfg.Heads/cfg.KVHeads > 16 {
		return nil, fmt.Errorf("cuda: head_dim %d (%d heads, %d kv heads): the attention kernel takes an even head_dim up to 128 and up to 16 query heads a KV head", cfg.HeadDim, cfg.Heads, cfg.KVHeads)
	}
	if opts.MaxRows <= 0 || opts.MaxOutputs <= 0 {
		return nil, fmt.Errorf("cuda: MaxRows %d and MaxOutputs %d must be positive", opts.MaxRows, opts.MaxOutputs)
	}
	n := &Net{cfg: cfg, bf16: opts.BF16, wgmma: os.Getenv(EnvWGMMA) != "0", maxRows: opts.MaxRows, maxOut: opts.MaxOutputs,
		guInterleaved: cfg.Intermediate%guGroup == 0,
		numerics:      numericsOf(rep.GPUs[0], driver.VersionString(lib.Version))}
	fail := func(err error) (*Net, error) {
		n.Close()
		return nil, err
	}
	phase(PhaseDriver)
	for i, g := range rep.GPUs {
		r, err := newReplica(n, lib, i, g)
		if err != nil {
			return fail(err)
		}
		n.reps = append(n.reps, r)
	}
	if _, ok := n.reps[0].k.attMMA[cfg.HeadDim]; ok {
		n.numerics += ", attention mma"
	}
	phase(PhaseModules)
	for _, r := range n.reps {
		if err := r.w.do(r.allocWeights); err != nil {
			if driver.IsCode(err, driver.ErrOutOfMemory) {
				err = fmt.Errorf("the weights need %d MiB a GPU and GPU %d (%s, %d MiB) has not that much free: %w",
					r.weightBytes()>>20, r.idx, r.gpu.Name, r.gpu.Memory>>20, err)
			}
			return fail(err)
		}
	}
	phase(PhaseAlloc)
	up := &uploader{n: n}
	if _, err := llama.LoadHost(opts.ModelDir, opts.AdapterDir, opts.BF16, up.put); err != nil {
		return fail(err)
	}
	host := time.Since(mark)
	phases = append(phases, Phase{PhaseReadMerge, host - up.convert - up.upload},
		Phase{PhaseConvert, up.convert}, Phase{PhaseUpload, up.upload})
	mark = time.Now()
	cos, sin, err := llama.RopeTable(cfg, cfg.MaxPositions)
	if err != nil {
		return fail(err)
	}
	for _, r := range n.reps {
		if err := r.w.do(func() error { return r.finish(cos, sin, opts.KVBytes) }); err != nil {
			return fail(err)
		}
	}
	n.weightBytes = n.reps[0].weightBytes()
	n.kvPoolBytes = int64(len(n.reps[0].free)) * n.reps[0].pageBytes
	phase(PhaseFinish)
	n.phases = phases
	return n, nil
}

// newReplica takes GPU i's context, starts its worker and compiles the
// kernels there.
func newReplica(n *Net, lib *driver.Lib, i int, g driver.GPU) (*replica, error) {
	ctx, err := lib.Retain(i)
	if err != nil {
		return nil, fmt.Errorf("cuda: GPU %d (%s): %w", i, g.Name, err)
	}
	w, err := startWorker(ctx)
	if err != nil {
		ctx.Release()
		return nil, fmt.Errorf("cuda: GPU %d (%s): %w", i, g.Name, err)
	}
	r := &replica{net: n, idx: i, gpu: g, ctx: ctx, w: w, prof: newProfiler(), tmaps: map[tmapKey]*driver.TensorMap{}}
	r.graphs = newGraphSet(r.prof.on && !r.prof.steps)
	err = w.do(func() error {
		var err error
		if r.mod, err = ctx.LoadModule(kernelsPTX); err != nil {
			if driver.IsCode(err, driver.ErrUnsupportedPTX) {
				return fmt.Errorf("the NVIDIA driver is older than the kernels' PTX needs (CUDA 11.8, driver 520 or newer): %w", err)
			}
			return err
		}
		if r.st, err = ctx.NewStream(); err != nil {
			return err
		}
		suffix := "_f32"
		r.k.gemmBlock = 256
		if n.bf16 {
			suffix, r.k.gemmBlock = "_bf16", 128
		}
		// Each kernel, and the dynamic shared memory it may ask for (0:
		// the default 48 KiB is enough).
		type kernel struct {
			dst  **driver.Func
			name string
			smem int
		}
		ks := []kernel{
			{&r.k.embed, "embed" + suffix, 0}, {&r.k.rmsnorm, "rmsnorm" + suffix, 0}, {&r.k.attention, "attention" + suffix, 0},
			{&r.k.swiglu, "swiglu" + suffix, 0}, {&r.k.gemm, "gemm" + suffix, 0}, {&r.k.rope, "rope_store" + suffix, 0},
			{&r.k.argmax, "argmax", 0}, {&r.k.argmaxMerge, "argmax_merge", 0}, {&r.k.reduce, "reduce" + suffix, 0},
			{&r.k.attentionTile, "attention_tile" + suffix, attTileSmem(maxHeadDim)},
		}
		if n.bf16 {
			ks = append(ks, kernel{&r.k.gemmWide, "gemm_bf16_128", wideSmem}, kernel{&r.k.gemmNarrow, "gemm_bf16_16", narrowSmem},
				kernel{&r.k.gemmBigK32, "gemm_bf16_128x256_k32", bigSmemK32})
			if g.SharedOptin >= bigSmem {
				ks = append(ks, kernel{&r.k.gemmBig, "gemm_bf16_128x256", bigSmem})
			}
			if most := streamSmem(narrowRows); g.SharedOptin >= most {
				ks = append(ks, kernel{&r.k.gemmStream, "gemm_bf16_16s", most})
			}
			if most := rowSmem(n.rowMostK()); g.SharedOptin >= most {
				ks = append(ks, kernel{&r.k.gemmRow, "gemm_bf16_row", most})
			}
		}
		for _, k := range ks {
			if *k.dst, err = r.mod.Func(k.name); err != nil {
				return err
			}
			if k.smem > 0 {
				if err := (*k.dst).SetMaxSharedBytes(k.smem); err != nil {
					return err
				}
			}
		}
		if err := r.loadAttMMA(g.SharedOptin); err != nil {
			return err
		}
		r.k.rows, r.k.rowRoPE = r.rowReady(), r.rowRoPE()
		return r.loadHopper(ctx)
	})
	if err != nil {
		r.close()
		return nil, fmt.Errorf("cuda: GPU %d (%s): load kernels: %w", i, g.Name, err)
	}
	return r, nil
}

// elt is the bytes of one weight.
func (n *Net) elt() int64 {
	if n.bf16 {
		return 2
	}
	return 4
}

// dims returns the model's matrix widths.
func (n *Net) dims() (h, q, kv, inter, vocab int64) {
	c := n.cfg
	return int64(c.Hidden), int64(c.Heads * c.HeadDim), int64(c.KVHeads * c.HeadDim), int64(c.Intermediate), int64(c.Vocab)
}

// allocWeights allocates the weight buffers (worker only). Q, K and V are
// stacked into one matrix and Gate and Up into another, so a layer takes
// four matrix products.
func (r *replica) allocWeights() error {
	h, q, kv, inter, vocab := r.net.dims()
	e := r.net.elt()
	var err error
	alloc := func(dst *driver.Ptr, n int64) {
		if err == nil {
			*dst, err = r.alloc(n)
		}
	}
	alloc(&r.embed, vocab*h*e)
	alloc(&r.norm, h*4)
	r.layers = make([]layerWeights, r.net.cfg.Layers)
	for i := range r.layers {
		L := &r.layers[i]
		alloc(&L.attnNorm, h*4)
		alloc(&L.mlpNorm, h*4)
		alloc(&L.qkv, (q+2*kv)*h*e)
		alloc(&L.o, h*q*e)
		alloc(&L.gu, 2*inter*h*e)
		alloc(&L.down, h*inter*e)
	}
	return err
}

// weightBytes is the device memory of the weights.
func (r *replica) weightBytes() int64 {
	h, q, kv, inter, vocab := r.net.dims()
	e := r.net.elt()
	per := 2*h*4 + (q+2*kv)*h*e + h*q*e + 3*inter*h*e
	n := vocab*h*e + h*4 + int64(len(r.layers))*per
	if r.lmHead != 0 && r.lmHead != r.embed {
		n += vocab * h * e
	}
	return n
}

// where returns the device address of the named tensor (worker only); it
// allocates an untied output layer when it comes. In a net whose gate|up
// rows are interleaved, gate and up both answer the gate|up matrix's
// start, and their rows go where guRow says (interleaveRows).
func (r *replica) where(name string) (driver.Ptr, error) {
	h, q, kv, inter, vocab := r.net.dims()
	e := r.net.elt()
	switch name {
	case "model.embed_tokens.weight":
		return r.embed, nil
	case "model.norm.weight":
		return r.norm, nil
	case "lm_head.weight":
		var err error
		if r.lmHead == 0 {
			r.lmHead, err = r.alloc(vocab * h * e)
		}
		return r.lmHead, err
	}
	rest, ok := strings.CutPrefix(name, "model.layers.")
	idx, part, ok2 := strings.Cut(rest, ".")
	l, err := strconv.Atoi(idx)
	if !ok || !ok2 || err != nil || l < 0 || l >= len(r.layers) {
		return 0, fmt.Errorf("cuda: unexpected tensor %s", name)
	}
	L := &r.layers[l]
	switch part {
	case "input_layernorm.weight":
		return L.attnNorm, nil
	case "post_attention_layernorm.weight":
		return L.mlpNorm, nil
	case "self_attn.q_proj.weight":
		return L.qkv, nil
	case "self_attn.k_proj.weight":
		return L.qkv.Add(q * h * e), nil
	case "self_attn.v_proj.weight":
		return L.qkv.Add((q + kv) * h * e), nil
	case "self_attn.o_proj.weight":
		return L.o, nil
	case "mlp.gate_proj.weight":
		return L.gu, nil
	case "mlp.up_proj.weight":
		if r.net.guInterleaved {
			return L.gu, nil
		}
		return L.gu.Add(inter * h * e), nil
	case "mlp.down_proj.weight":
		return L.down, nil
	}
	return 0, fmt.Errorf("cuda: unexpected tensor %s", name)
}

// uploader is LoadHost's sink: it converts each tensor to the device
// format once and copies it to every replica. convert and upload add up
// the time spent in each.
type uploader struct {
	n               *Net
	u16             []uint16
	f32             []float32
	convert, upload time.Duration
}

func (u *uploader) put(t llama.HostTensor) error {
	start := time.Now()
	var src unsafe.Pointer
	var nb int64
	switch {
	case t.Cols == 0 || (!u.n.bf16 && t.F32 != nil):
		src, nb = bytesOf(t.F32)
	case u.n.bf16 && t.BF16 != nil:
		src, nb = bytesOf(t.BF16)
	case u.n.bf16:
		if cap(u.u16) < len(t.F32) {
			u.u16 = make([]uint16, len(t.F32))
		}
		b := u.u16[:len(t.F32)]
		parallel.For(len(b), 1<<20, func(lo, hi int) { toBF16(b[lo:hi], t.F32[lo:hi]) })
		src, nb = bytesOf(b)
	default:
		if cap(u.f32) < len(t.BF16) {
			u.f32 = make([]float32, len(t.BF16))
		}
		f := u.f32[:len(t.BF16)]
		for i, v := range t.BF16 {
			f[i] = kernels.BF16ToF32(v)
		}
		src, nb = bytesOf(f)
	}
	copied := time.Now()
	u.convert += copied.Sub(start)
	defer func() { u.upload += time.Since(copied) }()
	for _, r := range u.n.reps {
		err := r.w.do(func() error {
			dst, err := r.where(t.Name)
			if err != nil {
				return err
			}
			if up, ok := gateOrUp(t.Name); ok && u.n.guInterleaved {
				rows := int64(u.n.cfg.Intermediate)
				c := interleaveRows(rows, nb/rows, up)
				return r.ctx.CopyIn2D(dst.Add(c.dst), c.dpitch, unsafe.Add(src, c.src), c.spitch, c.width, c.height)
			}
			return r.ctx.CopyIn(dst, src, nb)
		})
		if err != nil {
			return fmt.Errorf("cuda: upload %s to GPU %d: %w", t.Name, r.idx, err)
		}
	}
	return nil
}

// guGroup is the rows of gate, then of up, that take turns in an
// interleaved gate|up matrix (csrc/swiglu.cuh's GU_GROUP): half a
// tensor-core tile of 16 columns.
const guGroup = 8

// guRow is the row of the fused gate|up matrix (2*inter rows) that holds
// row i of gate, or of up when up: gate then up when plain; when
// interleaved, groups of guGroup rows of each in turn, so that gate's row
// i is at 2*guGroup*(i/guGroup) + i%guGroup and up's guGroup after it
// (inter a multiple of guGroup).
func guRow(i, inter int64, up, interleaved bool) int64 {
	if !interleaved {
		if up {
			return inter + i
		}
		return i
	}
	r := 2*guGroup*(i/guGroup) + i%guGroup
	if up {
		r += guGroup
	}
	return r
}

// gateOrUp reports whether the named tensor is a layer's gate or up
// matrix, and which.
func gateOrUp(name string) (up, ok bool) {
	switch {
	case strings.HasSuffix(name, ".mlp.gate_proj.weight"):
		return false, true
	case strings.HasSuffix(name, ".mlp.up_proj.weight"):
		return true, true
	}
	return false, false
}

// strided is a copy of height blocks of width bytes, from offset src
// with blocks spitch apart, to offset dst with blocks dpitch apart.
type strided struct{ dst, dpitch, src, spitch, width, height int64 }

// interleaveRows is the copy that places a gate (or up) matrix of rows
// rows of rowBytes into an interleaved gate|up matrix by guRow: groups of
// guGroup rows, every other group of the fused matrix (rows a multiple of
// guGroup).
func interleaveRows(rows, rowBytes int64, up bool) strided {
	g := guGroup * rowBytes
	return strided{dst: guRow(0, rows, up, true) * rowBytes, dpitch: 2 * g, spitch: g, width: g, height: rows / guGroup}
}

// poolPages is how many KV cache pages of pageBytes fit in free device
// memory less kvMargin, and within limit bytes when limit is positive.
func poolPages(free, limit, pageBytes int64) int64 {
	pool := free - kvMargin
	if limit > 0 {
		pool = min(pool, limit)
	}
	return max(pool, 0) / pageBytes
}

// finish uploads the rotary table, allocates the step buffers and takes
// the KV cache pool from the memory left (worker only).
func (r *replica) finish(cos, sin []float32, kvCap int64) error {
	if r.lmHead == 0 {
		r.lmHead = r.embed // tied embeddings
	}
	var err error
	for _, t := range []struct {
		dst *driver.Ptr
		v   []float32
	}{{&r.cos, cos}, {&r.sin, sin}} {
		p, nb := bytesOf(t.v)
		if *t.dst, err = r.alloc(nb); err != nil {
			return err
		}
		if err := r.ctx.CopyIn(*t.dst, p, nb); err != nil {
			return err
		}
	}
	h, q, kv, inter, vocab := r.net.dims()
	e := r.net.elt()
	R, L := int64(r.net.maxRows), int64(r.net.maxOut)
	r.pageBytes = r.net.pageBytes()
	var stepBytes int64
	for _, b := range []struct {
		dst *driver.Ptr
		n   int64
	}{
		{&r.x, R * h * 4}, {&r.xn, R * h * e}, {&r.qkv, R * (q + 2*kv) * 4}, {&r.att, R * q * e},
		{&r.gu, R * 2 * inter * 4}, {&r.act, R * inter * e}, {&r.last, L * h * e}, {&r.logits, L * vocab * 4},
		{&r.argOut, L * 4}, {&r.argVal, L * maxArgmaxParts * 4}, {&r.argIdx, L * maxArgmaxParts * 4},
		{&r.part, r.partBytes()},
	} {
		if *b.dst, err = r.alloc(b.n); err != nil {
			return fmt.Errorf("step buffers for %d rows: %w", R, err)
		}
		stepBytes += b.n
	}
	free, _, err := r.ctx.MemInfo()
	if err != nil {
		return err
	}
	pages := poolPages(free, kvCap, r.pageBytes)
	// The step's page table lists each sequence's pages once: at most the
	// pool's. The attention tiles take an entry for a row alone and two
	// for a run of two rows or more: at most one a row.
	metaBytes := 4 * (4*R + L + pages)
	if pages < 1 {
		return fmt.Errorf("GPU %d (%s): %d MiB left after %d MiB of weights and %d MiB of step buffers: no room for the KV cache",
			r.idx, r.gpu.Name, free>>20, r.weightBytes()>>20, stepBytes>>20)
	}
	if r.pool, err = r.alloc(pages * r.pageBytes); err != nil {
		return err
	}
	if r.meta, err = r.alloc(metaBytes); err != nil {
		return err
	}
	if r.host, err = r.ctx.AllocHost(int(metaBytes + 4*L)); err != nil {
		return err
	}
	r.free, r.refs = make([]int32, pages), make([]int32, pages)
	for i := range r.free {
		r.free[i] = int32(pages) - 1 - int32(i) // page 0 first
	}
	if len(r.free) == 0 {
		return errors.New("no KV cache pages")
	}
	return nil
}
