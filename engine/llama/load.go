package llama

import (
	"fmt"
	"runtime/debug"
	"slices"
	"strings"

	"github.com/batchtrans/batchtrans/engine/kernels"
	"github.com/batchtrans/batchtrans/engine/safetensors"
	"github.com/batchtrans/batchtrans/internal/parallel"
)

// Tensor names of a Hugging Face LlamaForCausalLM checkpoint.
const (
	embedName  = "model.embed_tokens.weight"
	normName   = "model.norm.weight"
	lmHeadName = "lm_head.weight"
)

func layerName(l int, suffix string) string { return fmt.Sprintf("model.layers.%d.%s", l, suffix) }

// Per-layer tensor suffixes.
const (
	sAttnNorm = "input_layernorm.weight"
	sMLPNorm  = "post_attention_layernorm.weight"
	sQ        = "self_attn.q_proj.weight"
	sK        = "self_attn.k_proj.weight"
	sV        = "self_attn.v_proj.weight"
	sO        = "self_attn.o_proj.weight"
	sGate     = "mlp.gate_proj.weight"
	sUp       = "mlp.up_proj.weight"
	sDown     = "mlp.down_proj.weight"
)

// expectedShapes lists every tensor the config implies, with its shape; a
// vector is {n, 0}. lm_head.weight is listed even when tied, since an
// adapter may replace it.
func expectedShapes(c *Config) map[string][2]int {
	q, kv := c.Heads*c.HeadDim, c.KVHeads*c.HeadDim
	m := map[string][2]int{
		embedName:  {c.Vocab, c.Hidden},
		normName:   {c.Hidden, 0},
		lmHeadName: {c.Vocab, c.Hidden},
	}
	for l := range c.Layers {
		m[layerName(l, sAttnNorm)] = [2]int{c.Hidden, 0}
		m[layerName(l, sMLPNorm)] = [2]int{c.Hidden, 0}
		m[layerName(l, sQ)] = [2]int{q, c.Hidden}
		m[layerName(l, sK)] = [2]int{kv, c.Hidden}
		m[layerName(l, sV)] = [2]int{kv, c.Hidden}
		m[layerName(l, sO)] = [2]int{c.Hidden, q}
		m[layerName(l, sGate)] = [2]int{c.Intermediate, c.Hidden}
		m[layerName(l, sUp)] = [2]int{c.Intermediate, c.Hidden}
		m[layerName(l, sDown)] = [2]int{c.Hidden, c.Intermediate}
	}
	return m
}

// checkCheckpoint verifies the checkpoint's tensor names, dtypes and shapes
// against the config, reading headers only.
func checkCheckpoint(dir string, c *Config, set *safetensors.Set, shapes map[string][2]int) error {
	where := func(name string) string {
		if f := set.FileOf(name); f != "" {
			return f
		}
		return dir
	}
	for _, name := range set.Names() {
		want, ok := shapes[name]
		if !ok {
			if strings.HasSuffix(name, ".rotary_emb.inv_freq") {
				continue // a buffer older checkpoints saved; recomputed from the config
			}
			if strings.HasSuffix(name, ".bias") {
				return fmt.Errorf("%s: tensor %s: biases are not supported in Llama checkpoints", where(name), name)
			}
			if l, isLayer := layerOf(name); isLayer && l >= c.Layers {
				return fmt.Errorf("%s: tensor %s: layer %d, but config.json says num_hidden_layers %d", where(name), name, l, c.Layers)
			}
			return fmt.Errorf("%s: unexpected tensor %s for LlamaForCausalLM", where(name), name)
		}
		dt, shape, err := set.Info(name)
		if err != nil {
			return err
		}
		if !dt.IsFloat() {
			return fmt.Errorf("%s: tensor %s: dtype %s (want BF16, F16 or F32)", where(name), name, dt)
		}
		var ok2 bool
		if want[1] == 0 {
			ok2 = len(shape) == 1 && shape[0] == want[0]
		} else {
			ok2 = len(shape) == 2 && shape[0] == want[0] && shape[1] == want[1]
		}
		if !ok2 {
			w := []int{want[0]}
			if want[1] != 0 {
				w = append(w, want[1])
			}
			return fmt.Errorf("%s: tensor %s: shape %v, but config.json implies %v", where(name), name, shape, w)
		}
	}
	names := make([]string, 0, len(shapes))
	for n := range shapes {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if n == lmHeadName && c.TiedEmbedding {
			continue
		}
		if !set.Has(n) {
			hint := ""
			if n == lmHeadName {
				hint = " (config.json says tie_word_embeddings is false)"
			}
			return fmt.Errorf("%s: tensor %s is missing from the checkpoint%s", dir, n, hint)
		}
	}
	return nil
}

// checkDType refuses in-memory formats the kernels cannot build yet.
func checkDType(dt kernels.DType) error {
	switch dt {
	case kernels.F32, kernels.BF16:
		return nil
	case kernels.Q8:
		// Probe: a kernels package without Q8 falls back to another format.
		if m := kernels.NewF32(1, 1, []float32{0}, kernels.Q8); m.DType == kernels.Q8 {
			return nil
		}
		return fmt.Errorf("dtype q8 not supported yet")
	}
	return fmt.Errorf("unknown dtype %v", dt)
}

// HostTensor is one weight after the adapter merge, in host memory, as
// LoadHost hands it to its sink. The slices are the loader's staging
// buffers or, for raw bf16, the checkpoint's mapped bytes: read-only and
// valid only during the sink call, which must copy what it keeps.
type HostTensor struct {
	Name       string // the checkpoint name of the logical tensor, e.g. lm_head.weight
	Rows, Cols int    // Cols is 0 for a vector
	// Exactly one is set: F32 holds the (merged) values; BF16 the
	// checkpoint's own bf16 bits of an unmerged tensor, when LoadHost was
	// asked for raw bf16.
	F32  []float32
	BF16 []uint16
}

// Sink receives the model's tensors one at a time: embed_tokens first,
// then lm_head unless it is tied to embed_tokens (the sink then uses the
// embedding for both), then model.norm, then each layer's norms and
// matrices. A backend packs or uploads each as it comes, so a model is
// never held twice.
type Sink func(t HostTensor) error

// LoadHost reads a Hugging Face Llama model folder and, when adapterDir is
// not empty, merges the PEFT LoRA adapter there into it: each adapted
// weight is W + scale*(B@A) computed in float32 from the checkpoint's
// values. It hands every tensor to sink (see Sink). With rawBF16, tensors
// the adapter does not touch that the checkpoint stores in bf16 arrive as
// their bf16 bits, without a float32 detour. Every tensor name and shape is
// checked against config.json (and the adapter against the base) before
// any weight is read.
func LoadHost(modelDir, adapterDir string, rawBF16 bool, sink Sink) (*Config, error) {
	cfg, err := LoadConfig(modelDir)
	if err != nil {
		return nil, err
	}
	set, err := safetensors.OpenDir(modelDir)
	if err != nil {
		return nil, err
	}
	defer set.Close()
	shapes := expectedShapes(cfg)
	if err := checkCheckpoint(modelDir, cfg, set, shapes); err != nil {
		return nil, err
	}
	plan := &adapterPlan{}
	var ad *Adapter
	if adapterDir != "" {
		if ad, err = OpenAdapter(adapterDir); err != nil {
			return nil, err
		}
		defer ad.Close()
		if plan, err = ad.plan(cfg, shapes); err != nil {
			return nil, err
		}
	}
	l := &loader{cfg: cfg, set: set, ad: ad, plan: plan, rawBF16: rawBF16, sink: sink}
	if err := l.load(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// Load is LoadHost into the CPU kernels' format dt (bf16 rounds merged
// weights to nearest even once).
func Load(modelDir, adapterDir string, dt kernels.DType) (*Config, *Weights, error) {
	if err := checkDType(dt); err != nil {
		return nil, nil, err
	}
	var cw cpuWeights
	cfg, err := LoadHost(modelDir, adapterDir, dt == kernels.BF16, func(t HostTensor) error { return cw.put(t, dt) })
	if err != nil {
		return nil, nil, err
	}
	return cfg, cw.weights(cfg), nil
}

// cpuWeights gathers LoadHost's tensors into Weights in the kernels'
// packed format.
type cpuWeights struct {
	w       Weights
	vectors map[string][]float32
	mats    map[string]*kernels.Matrix
}

func (cw *cpuWeights) put(t HostTensor, dt kernels.DType) error {
	if cw.mats == nil {
		cw.mats, cw.vectors = map[string]*kernels.Matrix{}, map[string][]float32{}
	}
	switch {
	case t.Cols == 0:
		cw.vectors[t.Name] = slices.Clone(t.F32)
	case t.BF16 != nil:
		cw.mats[t.Name] = kernels.NewBF16(t.Rows, t.Cols, t.BF16)
	default:
		cw.mats[t.Name] = kernels.NewF32(t.Rows, t.Cols, t.F32, dt)
	}
	return nil
}

func (cw *cpuWeights) weights(c *Config) *Weights {
	w := &Weights{Layers: make([]Layer, c.Layers)}
	w.Embed = cw.mats[embedName]
	w.LMHead = cw.mats[lmHeadName]
	if w.LMHead == nil {
		w.LMHead = w.Embed
	}
	w.Norm = cw.vectors[normName]
	for i := range w.Layers {
		ly := &w.Layers[i]
		ly.AttnNorm = cw.vectors[layerName(i, sAttnNorm)]
		ly.MLPNorm = cw.vectors[layerName(i, sMLPNorm)]
		ly.Q = cw.mats[layerName(i, sQ)]
		ly.K = cw.mats[layerName(i, sK)]
		ly.V = cw.mats[layerName(i, sV)]
		ly.O = cw.mats[layerName(i, sO)]
		ly.Gate = cw.mats[layerName(i, sGate)]
		ly.Up = cw.mats[layerName(i, sUp)]
		ly.Down = cw.mats[layerName(i, sDown)]
	}
	return w
}

// loader builds the in-memory weights from the checkpoint and the plan.
type loader struct {
	cfg     *Config
	set     *safetensors.Set
	ad      *Adapter
	plan    *adapterPlan
	rawBF16 bool
	sink    Sink
	// Staging buffers reused across tensors. The sink copies what it keeps
	// (the CPU's NewF32 and NewBF16 repack into their own layout, the GPU
	// uploads), so one buffer the size of the largest tensor serves the
	// whole load.
	f32buf   []float32
	u16buf   []uint16
	deltaBuf []float32 // one block of B@A rows
}

func (l *loader) f32(n int) []float32 {
	if cap(l.f32buf) < n {
		l.f32buf = make([]float32, n)
	}
	return l.f32buf[:n]
}

func (l *loader) u16(n int) []uint16 {
	if cap(l.u16buf) < n {
		l.u16buf = make([]uint16, n)
	}
	return l.u16buf[:n]
}

// dropStaging releases the staging buffers to the OS. The vocabulary-sized
// matrices are loaded first; dropping their staging afterwards keeps it
// from adding to the peak when the whole model is in memory.
func (l *loader) dropStaging() {
	l.f32buf, l.u16buf = nil, nil
	debug.FreeOSMemory()
}

func (l *loader) load() error {
	c := l.cfg
	if err := l.matrix(embedName, embedName, true); err != nil {
		return err
	}
	_, headReplaced := l.plan.replace[lmHeadName]
	_, embedReplaced := l.plan.replace[embedName]
	var err error
	switch {
	case !c.TiedEmbedding:
		err = l.matrix(lmHeadName, lmHeadName, true)
	case headReplaced:
		// modules_to_save gave the output layer its own weights: the tie is broken.
		err = l.matrix(lmHeadName, embedName, true)
	case embedReplaced:
		// The input embedding was replaced; the output layer keeps the base weights.
		err = l.matrix(lmHeadName, embedName, false)
	}
	if err != nil {
		return err
	}
	l.dropStaging()
	if err := l.vector(normName); err != nil {
		return err
	}
	for i := range c.Layers {
		for _, v := range []string{sAttnNorm, sMLPNorm} {
			if err := l.vector(layerName(i, v)); err != nil {
				return err
			}
		}
		for _, m := range []string{sQ, sK, sV, sO, sGate, sUp, sDown} {
			name := layerName(i, m)
			if err := l.matrix(name, name, true); err != nil {
				return err
			}
		}
	}
	l.f32buf, l.u16buf, l.deltaBuf = nil, nil, nil
	return nil
}

// matrix hands the sink logical tensor name, read from base tensor src of
// the checkpoint unless replaceable and the adapter replaces it, with the
// adapter's delta merged in.
func (l *loader) matrix(name, src string, replaceable bool) error {
	var t safetensors.Tensor
	var err error
	release := l.set.Release
	if r, ok := l.plan.replace[name]; ok && replaceable {
		t, err = l.ad.file.Tensor(r.Name)
		release = l.ad.file.Release
	} else {
		t, err = l.set.Tensor(src)
	}
	if err != nil {
		return err
	}
	defer release(t)
	if len(t.Shape) != 2 {
		return fmt.Errorf("%s: tensor %s: shape %v is not a matrix", t.File, t.Name, t.Shape)
	}
	rows, cols := t.Shape[0], t.Shape[1]
	delta := l.plan.deltas[name]
	if delta == nil && l.rawBF16 && t.DType == safetensors.BF16 {
		// Unmerged bf16 into bf16: the checkpoint's bits, no float32
		// detour, and read in place where the file is mapped (the GPU
		// uploads straight from the mapping; the CPU repacks it).
		raw := t.BF16View()
		if raw == nil {
			raw = l.u16(rows * cols)
			if err := t.BF16Into(raw); err != nil {
				return err
			}
		}
		return l.sink(HostTensor{Name: name, Rows: rows, Cols: cols, BF16: raw})
	}
	buf := l.f32(rows * cols)
	if err := t.F32Into(buf); err != nil {
		return err
	}
	if delta != nil {
		if err := l.merge(buf, rows, cols, name, delta); err != nil {
			return err
		}
	}
	return l.sink(HostTensor{Name: name, Rows: rows, Cols: cols, F32: buf})
}

func (l *loader) vector(name string) error {
	t, err := l.set.Tensor(name)
	if err != nil {
		return err
	}
	defer l.set.Release(t)
	v, err := t.F32()
	if err != nil {
		return err
	}
	return l.sink(HostTensor{Name: name, Rows: len(v), F32: v})
}

// mergeBlock is how many rows of B@A are formed at a time.
const mergeBlock = 256

// merge adds scale * B@A to w (rows x cols) in float32, as PEFT's merge does
// (W + (B @ A) * scaling), one block of rows at a time: B@A goes through the
// kernels' matmul (A transposed is the weight, B's rows the activations),
// then each row is scaled and added once.
func (l *loader) merge(w []float32, rows, cols int, name string, d *loraDelta) error {
	ta, err := l.ad.file.Tensor(d.A.Name)
	if err != nil {
		return err
	}
	tb, err := l.ad.file.Tensor(d.B.Name)
	if err != nil {
		return err
	}
	a, err := ta.F32()
	if err != nil {
		return err
	}
	b, err := tb.F32()
	if err != nil {
		return err
	}
	r := d.Rank
	if len(a) != r*cols || len(b) != rows*r {
		return fmt.Errorf("%s: tensors %s, %s do not fit %s %dx%d with rank %d", l.ad.WeightsPath, d.A.Name, d.B.Name, name, rows, cols, r)
	}
	at := make([]float32, cols*r) // A transposed: cols x r
	for k := range r {
		for j, v := range a[k*cols : (k+1)*cols] {
			at[j*r+k] = v
		}
	}
	am := kernels.NewF32(cols, r, at, kernels.F32)
	if cap(l.deltaBuf) < mergeBlock*cols {
		l.deltaBuf = make([]float32, mergeBlock*cols)
	}
	scale := float32(d.Scale)
	for i0 := 0; i0 < rows; i0 += mergeBlock {
		n := min(mergeBlock, rows-i0)
		delta := l.deltaBuf[:n*cols]
		kernels.MatMul(delta, b[i0*r:(i0+n)*r], n, am)
		// Each element gets its one rounded add, on whichever core.
		dst := w[i0*cols : (i0+n)*cols]
		parallel.For(len(delta), 1<<16, func(lo, hi int) { kernels.Axpy(scale, delta[lo:hi], dst[lo:hi]) })
	}
	return nil
}
