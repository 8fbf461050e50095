package llama

import (
	"errors"
	"fmt"
	"math"
	"runtime"

	"github.com/batchtrans/batchtrans/engine/backend"
	"github.com/batchtrans/batchtrans/engine/kernels"
)

// ErrContextFull is returned by Forward when a sequence would grow past the
// model's context (Config.MaxPositions).
var ErrContextFull = errors.New("context window full")

// Model is a Llama-architecture network ready to run: config, weights and
// the tables derived from them. It is immutable and safe for concurrent use;
// all mutable data lives in State (per sequence) and Workspace (per step
// loop).
type Model struct {
	cfg     *Config
	w       *Weights
	invFreq []float64 // RoPE inverse frequencies, one per rotated pair
	qDim    int       // Heads*HeadDim
	kvDim   int       // KVHeads*HeadDim
	scale   float32   // 1/sqrt(HeadDim)
	// fused holds, per layer, Q, K and V stacked into one matrix and Gate
	// and Up into another (kernels.Fuse), so a layer takes four matrix
	// products instead of seven: fewer hand-offs to the kernel threads,
	// the same bits. nil when the shapes do not allow it.
	fused []fusedLayer
}

type fusedLayer struct{ qkv, gateUp *kernels.Matrix }

// fuseMatrices lets tests build unfused models to compare against.
var fuseMatrices = true

// fuse stacks each layer's Q/K/V and Gate/Up matrices; it re-points the
// weights into the fused storage (no copy is kept), so it runs before the
// model is shared. It returns nil if any layer cannot be fused.
func fuse(w *Weights) []fusedLayer {
	out := make([]fusedLayer, len(w.Layers))
	for l := range w.Layers {
		L := &w.Layers[l]
		qkv, err1 := kernels.Fuse(L.Q, L.K, L.V)
		gu, err2 := kernels.Fuse(L.Gate, L.Up)
		if err1 != nil || err2 != nil {
			return nil
		}
		out[l] = fusedLayer{qkv: qkv, gateUp: gu}
		// The layer's old storage is garbage now: collect it so the next
		// layer's fused storage reuses it, and the peak memory grows by
		// one layer, not by every layer's stacked matrices.
		runtime.GC()
	}
	return out
}

// NewModel checks that w has the shapes cfg describes and returns the
// runnable model. cfg and w must not be modified afterwards, and w must not
// be in use by another model while NewModel runs (it stacks matrices that
// are multiplied together, re-pointing them into shared storage).
func NewModel(cfg *Config, w *Weights) (*Model, error) {
	if err := checkShapes(cfg, w); err != nil {
		return nil, err
	}
	inv, err := ropeFreqs(cfg.HeadDim, cfg.RopeTheta, cfg.RopeScaling)
	if err != nil {
		return nil, err
	}
	m := &Model{
		cfg:     cfg,
		w:       w,
		invFreq: inv,
		qDim:    cfg.Heads * cfg.HeadDim,
		kvDim:   cfg.KVHeads * cfg.HeadDim,
		scale:   float32(1 / math.Sqrt(float64(cfg.HeadDim))),
	}
	if fuseMatrices {
		m.fused = fuse(w)
	}
	return m, nil
}

// Config returns the model's config; callers must not modify it.
func (m *Model) Config() *Config { return m.cfg }

func checkShapes(c *Config, w *Weights) error {
	if c == nil || w == nil {
		return errors.New("llama: nil config or weights")
	}
	if c.Vocab <= 0 || c.Hidden <= 0 || c.Intermediate <= 0 || c.Layers <= 0 || c.Heads <= 0 || c.KVHeads <= 0 || c.HeadDim <= 0 || c.MaxPositions <= 0 {
		return fmt.Errorf("llama: config has a non-positive size (vocab %d, hidden %d, intermediate %d, layers %d, heads %d, kv heads %d, head_dim %d, max positions %d)",
			c.Vocab, c.Hidden, c.Intermediate, c.Layers, c.Heads, c.KVHeads, c.HeadDim, c.MaxPositions)
	}
	if c.Heads%c.KVHeads != 0 {
		return fmt.Errorf("llama: %d attention heads not divisible by %d kv heads", c.Heads, c.KVHeads)
	}
	if len(w.Layers) != c.Layers {
		return fmt.Errorf("llama: %d layers in weights, config says %d", len(w.Layers), c.Layers)
	}
	q, kv := c.Heads*c.HeadDim, c.KVHeads*c.HeadDim
	check := func(name string, m *kernels.Matrix, rows, cols int) error {
		if m == nil {
			return fmt.Errorf("llama: tensor %s missing", name)
		}
		if m.Rows != rows || m.Cols != cols {
			return fmt.Errorf("llama: tensor %s is %dx%d, want %dx%d", name, m.Rows, m.Cols, rows, cols)
		}
		return nil
	}
	vec := func(name string, v []float32, n int) error {
		if len(v) != n {
			return fmt.Errorf("llama: tensor %s has %d values, want %d", name, len(v), n)
		}
		return nil
	}
	errs := []error{
		check("embed_tokens", w.Embed, c.Vocab, c.Hidden),
		check("lm_head", w.LMHead, c.Vocab, c.Hidden),
		vec("norm", w.Norm, c.Hidden),
	}
	for i, l := range w.Layers {
		p := fmt.Sprintf("layers.%d.", i)
		errs = append(errs,
			vec(p+"input_layernorm", l.AttnNorm, c.Hidden),
			check(p+"self_attn.q_proj", l.Q, q, c.Hidden),
			check(p+"self_attn.k_proj", l.K, kv, c.Hidden),
			check(p+"self_attn.v_proj", l.V, kv, c.Hidden),
			check(p+"self_attn.o_proj", l.O, c.Hidden, q),
			vec(p+"post_attention_layernorm", l.MLPNorm, c.Hidden),
			check(p+"mlp.gate_proj", l.Gate, c.Intermediate, c.Hidden),
			check(p+"mlp.up_proj", l.Up, c.Intermediate, c.Hidden),
			check(p+"mlp.down_proj", l.Down, c.Hidden, c.Intermediate),
		)
	}
	return errors.Join(errs...)
}

// Step is one sequence's share of a forward step (backend.Step); its
// State must be a *State of the model that runs it.
type Step = backend.Step

// Workspace is the scratch memory of forward steps: the stacked activations
// of every row in a step. It grows to the largest step seen and is reused;
// one goroutine uses a Workspace at a time.
type Workspace struct {
	x, xn, q, k, v, att, o, gate, up []float32
	qkv, gu                          []float32 // fused products' outputs
	cos, sin                         []float32
	last, logits                     []float32

	rw       *rowWork    // Forward's element-wise steps, bound once
	rowState []*State    // the sequence of each row
	rowPos   []int       // each row's attention span: its position + 1
	attWork  int         // sum of rowPos
	scores   [][]float32 // attention scratch, one per worker
}

func fit(b []float32, n int) []float32 {
	if cap(b) < n {
		return make([]float32, n)
	}
	return b[:n]
}

func (ws *Workspace) ensure(m *Model, rows, logitRows int) {
	c := m.cfg
	half := c.HeadDim / 2
	ws.x = fit(ws.x, rows*c.Hidden)
	ws.xn = fit(ws.xn, rows*c.Hidden)
	ws.o = fit(ws.o, rows*c.Hidden)
	ws.q = fit(ws.q, rows*m.qDim)
	ws.att = fit(ws.att, rows*m.qDim)
	ws.k = fit(ws.k, rows*m.kvDim)
	ws.v = fit(ws.v, rows*m.kvDim)
	ws.gate = fit(ws.gate, rows*c.Intermediate)
	if m.fused != nil {
		ws.qkv = fit(ws.qkv, rows*(m.qDim+2*m.kvDim))
		ws.gu = fit(ws.gu, rows*2*c.Intermediate)
	} else {
		ws.up = fit(ws.up, rows*c.Intermediate)
	}
	ws.cos = fit(ws.cos, rows*half)
	ws.sin = fit(ws.sin, rows*half)
	ws.last = fit(ws.last, logitRows*c.Hidden)
	ws.logits = fit(ws.logits, logitRows*c.Vocab)
	ws.rowState = ws.rowState[:0]
	ws.rowPos = ws.rowPos[:0]
	ws.attWork = 0
}

// ensureScores gives each of the kernels' threads a score buffer of span
// positions.
func (ws *Workspace) ensureScores(span int) {
	t := max(kernels.Threads(), 1)
	for len(ws.scores) < t {
		ws.scores = append(ws.scores, nil)
	}
	for i := range ws.scores {
		if cap(ws.scores[i]) < span {
			ws.scores[i] = make([]float32, span, max(span, 2*cap(ws.scores[i])))
		}
	}
}

// Forward runs one step over several sequences at once. The rows of all
// steps are stacked so that every weight matrix is read once per call; each
// sequence's attention reads only its own cache. A sequence's results are
// bitwise identical whatever else shares the step, and whether its prompt is
// fed whole or in chunks. On error no state is changed.
func (m *Model) Forward(ws *Workspace, steps []Step) error {
	rows, logitRows, err := m.checkSteps(steps)
	if err != nil {
		return err
	}
	if rows == 0 {
		return nil
	}
	c := m.cfg
	H, half := c.Hidden, c.HeadDim/2
	ws.ensure(m, rows, logitRows)
	for _, st := range steps {
		st.State.(*State).reserve(len(st.Tokens))
	}

	r, span := 0, 0
	for _, st := range steps {
		s := st.State.(*State)
		for t, tok := range st.Tokens {
			p := s.pos + t
			ws.rowState = append(ws.rowState, s)
			ws.rowPos = append(ws.rowPos, p+1)
			ws.attWork += p + 1
			span = max(span, p+1)
			m.w.Embed.Row(tok, ws.x[r*H:(r+1)*H])
			ropeAngles(ws.cos[r*half:(r+1)*half], ws.sin[r*half:(r+1)*half], m.invFreq, p)
			r++
		}
	}
	ws.ensureScores(span)

	rw := ws.rowWork(m)
	for l := range m.w.Layers {
		L := &m.w.Layers[l]
		rw.normW = L.AttnNorm
		kernels.Parallel(rows, 2*H, rw.normFn)
		if m.fused != nil {
			kernels.MatMul(ws.qkv, ws.xn, rows, m.fused[l].qkv)
			kernels.Parallel(rows, m.qDim+2*m.kvDim, rw.splitFn)
		} else {
			kernels.MatMul(ws.q, ws.xn, rows, L.Q)
			kernels.MatMul(ws.k, ws.xn, rows, L.K)
			kernels.MatMul(ws.v, ws.xn, rows, L.V)
		}
		kernels.Parallel(rows, m.qDim+m.kvDim, rw.ropeFn)
		m.attention(ws, steps, l)
		kernels.MatMul(ws.o, ws.att, rows, L.O)
		kernels.Parallel(rows*H, 1, rw.addFn)

		rw.normW = L.MLPNorm
		kernels.Parallel(rows, 2*H, rw.normFn)
		if m.fused != nil {
			kernels.MatMul(ws.gu, ws.xn, rows, m.fused[l].gateUp)
			kernels.Parallel(rows*c.Intermediate, 16, rw.siluRowsFn)
		} else {
			kernels.MatMul(ws.gate, ws.xn, rows, L.Gate)
			kernels.MatMul(ws.up, ws.xn, rows, L.Up)
			kernels.Parallel(rows*c.Intermediate, 16, rw.siluFn)
		}
		kernels.MatMul(ws.o, ws.gate, rows, L.Down)
		kernels.Parallel(rows*H, 1, rw.addFn)
	}

	r, lr := 0, 0
	for _, st := range steps {
		r += len(st.Tokens)
		st.State.(*State).pos += len(st.Tokens)
		if st.Out != backend.NoOutput {
			rmsNorm(ws.last[lr*H:(lr+1)*H], ws.x[(r-1)*H:r*H], m.w.Norm, c.RMSNormEps)
			lr++
		}
	}
	if logitRows > 0 {
		kernels.MatMul(ws.logits, ws.last, logitRows, m.w.LMHead)
		lr = 0
		for _, st := range steps {
			if st.Out != backend.NoOutput {
				copy(st.State.(*State).logits, ws.logits[lr*c.Vocab:(lr+1)*c.Vocab])
				lr++
			}
		}
	}
	return nil
}

func (m *Model) checkSteps(steps []Step) (rows, logitRows int, err error) {
	for i, st := range steps {
		s, ok := st.State.(*State)
		if !ok || s == nil || s.model != m {
			return 0, 0, fmt.Errorf("llama: step %d: state is nil or belongs to another model", i)
		}
		if len(st.Tokens) == 0 {
			return 0, 0, fmt.Errorf("llama: step %d: no tokens", i)
		}
		for j := range i {
			if steps[j].State == s {
				return 0, 0, fmt.Errorf("llama: steps %d and %d share one state", j, i)
			}
		}
		if s.pos+len(st.Tokens) > m.cfg.MaxPositions {
			return 0, 0, fmt.Errorf("llama: step %d: %d cached + %d new tokens exceed %d positions: %w",
				i, s.pos, len(st.Tokens), m.cfg.MaxPositions, ErrContextFull)
		}
		for _, tok := range st.Tokens {
			if tok < 0 || tok >= m.cfg.Vocab {
				return 0, 0, fmt.Errorf("llama: step %d: token id %d outside the vocabulary (%d)", i, tok, m.cfg.Vocab)
			}
		}
		rows += len(st.Tokens)
		if st.Out != backend.NoOutput {
			logitRows++
		}
	}
	return rows, logitRows, nil
}

// minParallelAttention is the attention work (multiply-adds per layer)
// below which a step's attention runs on the calling goroutine alone. A
// variable so that tests can force the parallel path.
var minParallelAttention = 1 << 18

// attention writes ws.att for every row of the step at layer l: it stores
// the rows' keys and values in their sequences' caches, then lets each query
// head attend causally over its sequence's cache. Query head h reads KV head
// h / (Heads/KVHeads). The (row, head) pairs are independent, so large steps
// spread them over the kernels' thread count; each pair is computed the same
// way whichever goroutine runs it.
func (m *Model) attention(ws *Workspace, steps []Step, l int) {
	c := m.cfg
	kvDim := m.kvDim
	r := 0
	for _, st := range steps {
		s := st.State.(*State)
		n := len(st.Tokens)
		copy(s.k[l][s.pos*kvDim:(s.pos+n)*kvDim], ws.k[r*kvDim:(r+n)*kvDim])
		copy(s.v[l][s.pos*kvDim:(s.pos+n)*kvDim], ws.v[r*kvDim:(r+n)*kvDim])
		r += n
	}
	items := len(ws.rowState) * c.Heads
	workers := 1
	if ws.attWork*c.Heads*c.HeadDim >= minParallelAttention {
		workers = min(kernels.Threads(), items, len(ws.scores))
	}
	if workers <= 1 {
		m.attendItems(ws, l, 0, 1)
		return
	}
	// One slot per score buffer, each taking every workers-th item; the
	// kernel pool runs the slots.
	rw := ws.rowWork(m)
	rw.attLayer, rw.attSlots = l, workers
	kernels.Parallel(workers, ws.attWork*c.Heads*c.HeadDim/workers, rw.attendFn)
}

// attendItems computes the (row, head) pairs w, w+stride, w+2*stride, ...
// (interleaved, so that long and short rows spread evenly) with worker w's
// score scratch.
func (m *Model) attendItems(ws *Workspace, l, w, stride int) {
	c := m.cfg
	hd, qDim, kvDim := c.HeadDim, m.qDim, m.kvDim
	group := c.Heads / c.KVHeads
	scores := ws.scores[w]
	for it := w; it < len(ws.rowState)*c.Heads; it += stride {
		r, h := it/c.Heads, it%c.Heads
		s, npos := ws.rowState[r], ws.rowPos[r]
		off := (h / group) * hd
		q := ws.q[r*qDim+h*hd : r*qDim+(h+1)*hd]
		out := ws.att[r*qDim+h*hd : r*qDim+(h+1)*hd]
		attendHead(out, q, s.k[l], s.v[l], npos, kvDim, off, m.scale, scores[:npos])
	}
}

// attendHead computes softmax(q·K^T * scale) · V for one query head over
// npos cached positions, whose head slice starts at off in each cache row.
// The dot products and the weighted sum go through the kernels, whose
// reduction order is fixed, so the result does not depend on batching.
func attendHead(out, q, kc, vc []float32, npos, kvDim, off int, scale float32, scores []float32) {
	scores = scores[:npos]
	kernels.DotRows(q, kc[off:], kvDim, scores)
	maxS := float32(math.Inf(-1))
	for t, d := range scores {
		d *= scale
		scores[t] = d
		maxS = max(maxS, d)
	}
	kernels.ExpSub(scores, maxS)
	var sum float32
	for _, e := range scores {
		sum += e
	}
	inv := 1 / sum
	for t, p := range scores {
		scores[t] = p * inv
	}
	clear(out)
	kernels.AxpyRows(scores, vc[off:], kvDim, out)
}

// rowWork holds Forward's element-wise steps as functions over ranges of
// rows (or elements) for kernels.Parallel, bound once per Workspace so
// that handing them over does not allocate; they read their operands from
// the Workspace, and normW from here.
type rowWork struct {
	m     *Model
	ws    *Workspace
	normW []float32 // the norm weights of the current step
	// attLayer and attSlots are the current attention's layer and its
	// number of slots (score buffers).
	attLayer, attSlots int

	normFn, ropeFn, splitFn, siluRowsFn, siluFn, addFn, attendFn func(lo, hi int)
}

func (ws *Workspace) rowWork(m *Model) *rowWork {
	if ws.rw == nil {
		rw := &rowWork{ws: ws}
		rw.normFn, rw.ropeFn, rw.splitFn = rw.norm, rw.rope, rw.split
		rw.siluRowsFn, rw.siluFn, rw.addFn, rw.attendFn = rw.siluRows, rw.silu, rw.add, rw.attend
		ws.rw = rw
	}
	ws.rw.m = m
	return ws.rw
}

// norm writes rmsNorm(x, normW) of rows [r0, r1) to xn.
func (rw *rowWork) norm(r0, r1 int) {
	H, eps := rw.m.cfg.Hidden, rw.m.cfg.RMSNormEps
	for r := r0; r < r1; r++ {
		rmsNorm(rw.ws.xn[r*H:(r+1)*H], rw.ws.x[r*H:(r+1)*H], rw.normW, eps)
	}
}

// rope rotates the queries and keys of rows [r0, r1).
func (rw *rowWork) rope(r0, r1 int) {
	c, ws := rw.m.cfg, rw.ws
	half, q, kv := c.HeadDim/2, rw.m.qDim, rw.m.kvDim
	for r := r0; r < r1; r++ {
		cos, sin := ws.cos[r*half:(r+1)*half], ws.sin[r*half:(r+1)*half]
		ropeApply(ws.q[r*q:(r+1)*q], c.Heads, c.HeadDim, cos, sin)
		ropeApply(ws.k[r*kv:(r+1)*kv], c.KVHeads, c.HeadDim, cos, sin)
	}
}

// split copies rows [r0, r1) of the fused Q|K|V outputs to q, k and v.
func (rw *rowWork) split(r0, r1 int) {
	ws, q, kv := rw.ws, rw.m.qDim, rw.m.kvDim
	w := q + 2*kv
	for r := r0; r < r1; r++ {
		src := ws.qkv[r*w : (r+1)*w]
		copy(ws.q[r*q:(r+1)*q], src[:q])
		copy(ws.k[r*kv:(r+1)*kv], src[q:q+kv])
		copy(ws.v[r*kv:(r+1)*kv], src[q+kv:])
	}
}

// siluRows sets gate = silu(gate)*up for the fused layers: it reads the
// fused Gate|Up output (2*Intermediate a row: gate, then up) and writes
// gate (Intermediate a row), over elements [lo, hi) of rows x Intermediate,
// so that one decode row can be split across the kernel threads.
func (rw *rowWork) siluRows(lo, hi int) {
	ws, inter := rw.ws, rw.m.cfg.Intermediate
	for lo < hi {
		r, c := lo/inter, lo%inter
		n := min(hi-lo, inter-c)
		row := ws.gu[r*2*inter : (r+1)*2*inter]
		kernels.SiLUMul(ws.gate[lo:lo+n], row[c:c+n], row[inter+c:inter+c+n])
		lo += n
	}
}

// silu sets gate = silu(gate)*up over elements [lo, hi) (unfused layers).
func (rw *rowWork) silu(lo, hi int) {
	kernels.SiLUMul(rw.ws.gate[lo:hi], rw.ws.gate[lo:hi], rw.ws.up[lo:hi])
}

// attend runs attention slots [lo, hi).
func (rw *rowWork) attend(lo, hi int) {
	for w := lo; w < hi; w++ {
		rw.m.attendItems(rw.ws, rw.attLayer, w, rw.attSlots)
	}
}

// add adds o to x over elements [lo, hi) (the residual connections).
func (rw *rowWork) add(lo, hi int) { addTo(rw.ws.x[lo:hi], rw.ws.o[lo:hi]) }

// rmsNorm writes x * rsqrt(mean(x^2) + eps) * w to dst, in float32 with a
// float64 sum of squares.
func rmsNorm(dst, x, w []float32, eps float64) {
	var ss float64
	for _, v := range x {
		ss += float64(v) * float64(v)
	}
	ms := float32(ss / float64(len(x)))
	inv := float32(1 / math.Sqrt(float64(ms+float32(eps))))
	for i, v := range x {
		dst[i] = w[i] * float32(v*inv)
	}
}

func addTo(dst, src []float32) {
	for i, v := range src {
		dst[i] += v
	}
}
