package synth

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/batchtrans/batchtrans/engine/safetensors"
)

// Spec is the shape and format of a synthetic model.
type Spec struct {
	Vocab        int
	Hidden       int
	Intermediate int
	Layers       int
	Heads        int
	KVHeads      int
	HeadDim      int // 0: hidden/heads, and config.json leaves head_dim out
	MaxPositions int
	RMSNormEps   float64
	RopeTheta    float64
	Llama3Rope   bool // rope_type llama3 with Llama 3.2's factors
	Tied         bool
	BOS          int
	EOS          []int             // generation_config.json; config.json gets the first
	Shards       int               // 0 or 1: model.safetensors; more: sharded with an index
	DType        safetensors.DType // BF16 (default), F16 or F32
	Dialect      int               // 5 (default): rope_parameters + dtype; 4: rope_theta/rope_scaling + torch_dtype
	Std          float64           // weight scale (default 0.02)
}

// Llama32_1B is the shape of Llama-3.2-1B-Instruct (1.24 B parameters, tied).
func Llama32_1B() Spec {
	return Spec{
		Vocab: 128256, Hidden: 2048, Intermediate: 8192, Layers: 16, Heads: 32, KVHeads: 8, HeadDim: 64,
		MaxPositions: 131072, RMSNormEps: 1e-5, RopeTheta: 500000, Llama3Rope: true, Tied: true,
		BOS: 128000, EOS: []int{128001, 128008, 128009}, Shards: 1, DType: safetensors.BF16, Dialect: 5, Std: 0.02,
	}
}

// Tiny is a small model for tests: GQA 2:1, untied, default RoPE.
func Tiny() Spec {
	return Spec{
		Vocab: 96, Hidden: 32, Intermediate: 48, Layers: 2, Heads: 4, KVHeads: 2,
		MaxPositions: 256, RMSNormEps: 1e-5, RopeTheta: 10000, BOS: 1, EOS: []int{2}, Std: 0.2,
	}
}

func (s Spec) headDim() int {
	if s.HeadDim > 0 {
		return s.HeadDim
	}
	return s.Hidden / s.Heads
}

func (s Spec) dtype() safetensors.DType {
	if s.DType == "" {
		return safetensors.BF16
	}
	return s.DType
}

// Tensor is one tensor of the model as the checkpoint names it.
type Tensor struct {
	Name  string
	Shape []int
	Norm  bool // a norm weight (values near 1)
}

// Tensors lists the checkpoint's tensors in the order they are written.
func (s Spec) Tensors() []Tensor {
	q, kv := s.Heads*s.headDim(), s.KVHeads*s.headDim()
	ts := []Tensor{{Name: "model.embed_tokens.weight", Shape: []int{s.Vocab, s.Hidden}}}
	for l := range s.Layers {
		p := fmt.Sprintf("model.layers.%d.", l)
		ts = append(ts,
			Tensor{Name: p + "input_layernorm.weight", Shape: []int{s.Hidden}, Norm: true},
			Tensor{Name: p + "self_attn.q_proj.weight", Shape: []int{q, s.Hidden}},
			Tensor{Name: p + "self_attn.k_proj.weight", Shape: []int{kv, s.Hidden}},
			Tensor{Name: p + "self_attn.v_proj.weight", Shape: []int{kv, s.Hidden}},
			Tensor{Name: p + "self_attn.o_proj.weight", Shape: []int{s.Hidden, q}},
			Tensor{Name: p + "post_attention_layernorm.weight", Shape: []int{s.Hidden}, Norm: true},
			Tensor{Name: p + "mlp.gate_proj.weight", Shape: []int{s.Intermediate, s.Hidden}},
			Tensor{Name: p + "mlp.up_proj.weight", Shape: []int{s.Intermediate, s.Hidden}},
			Tensor{Name: p + "mlp.down_proj.weight", Shape: []int{s.Hidden, s.Intermediate}},
		)
	}
	ts = append(ts, Tensor{Name: "model.norm.weight", Shape: []int{s.Hidden}, Norm: true})
	if !s.Tied {
		ts = append(ts, Tensor{Name: "lm_head.weight", Shape: []int{s.Vocab, s.Hidden}})
	}
	return ts
}

// WriteModel writes a complete model folder (config.json,
// generation_config.json and the safetensors checkpoint) with random weights
// drawn from seed. The same spec and seed always give the same files.
func WriteModel(dir string, s Spec, seed uint64) error {
	if s.Heads <= 0 || s.KVHeads <= 0 || s.Hidden <= 0 || s.Layers <= 0 || s.Vocab <= 0 || s.Intermediate <= 0 {
		return fmt.Errorf("synth: spec has a non-positive size: %+v", s)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	if err := writeJSON(filepath.Join(dir, "config.json"), s.config()); err != nil {
		return err
	}
	gen := map[string]any{"bos_token_id": s.BOS, "do_sample": true, "temperature": 0.6, "top_p": 0.9, "transformers_version": "5.0.0"}
	if len(s.EOS) == 1 {
		gen["eos_token_id"] = s.EOS[0]
	} else {
		gen["eos_token_id"] = s.EOS
	}
	if err := writeJSON(filepath.Join(dir, "generation_config.json"), gen); err != nil {
		return err
	}
	ts := s.Tensors()
	dt := s.dtype()
	std := s.Std
	if std == 0 {
		std = 0.02
	}
	rng := newRNG(seed)
	if s.Shards <= 1 {
		return writeFile(filepath.Join(dir, "model.safetensors"), ts, dt, std, rng)
	}
	// Split into Shards groups of about equal bytes, in order.
	var total int64
	for _, t := range ts {
		total += bytesOf(t.Shape, dt)
	}
	groups := make([][]Tensor, 0, s.Shards)
	var cur []Tensor
	var acc int64
	for i, t := range ts {
		cur = append(cur, t)
		acc += bytesOf(t.Shape, dt)
		left := len(ts) - i - 1
		if acc*int64(s.Shards) >= total*int64(len(groups)+1) && len(groups) < s.Shards-1 && left > 0 {
			groups = append(groups, cur)
			cur = nil
		}
	}
	groups = append(groups, cur)
	weightMap := map[string]string{}
	for i, g := range groups {
		name := fmt.Sprintf("model-%05d-of-%05d.safetensors", i+1, len(groups))
		if err := writeFile(filepath.Join(dir, name), g, dt, std, rng); err != nil {
			return err
		}
		for _, t := range g {
			weightMap[t.Name] = name
		}
	}
	return writeJSON(filepath.Join(dir, safetensors.IndexFile), map[string]any{
		"metadata":   map[string]any{"total_size": total},
		"weight_map": weightMap,
	})
}

func (s Spec) config() map[string]any {
	dtName := map[safetensors.DType]string{safetensors.BF16: "bfloat16", safetensors.F16: "float16", safetensors.F32: "float32"}[s.dtype()]
	c := map[string]any{
		"architectures":           []string{"LlamaForCausalLM"},
		"model_type":              "llama",
		"vocab_size":              s.Vocab,
		"hidden_size":             s.Hidden,
		"intermediate_size":       s.Intermediate,
		"num_hidden_layers":       s.Layers,
		"num_attention_heads":     s.Heads,
		"num_key_value_heads":     s.KVHeads,
		"max_position_embeddings": s.MaxPositions,
		"rms_norm_eps":            s.RMSNormEps,
		"tie_word_embeddings":     s.Tied,
		"bos_token_id":            s.BOS,
		"hidden_act":              "silu",
		"attention_bias":          false,
		"attention_dropout":       0.0,
		"mlp_bias":                false,
		"initializer_range":       0.02,
		"use_cache":               true,
	}
	if len(s.EOS) > 0 {
		c["eos_token_id"] = s.EOS[0]
	}
	if s.HeadDim > 0 {
		c["head_dim"] = s.HeadDim
	}
	rope := map[string]any{"rope_type": "default"}
	if s.Llama3Rope {
		rope = map[string]any{"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
	}
	if s.Dialect == 4 {
		c["rope_theta"] = s.RopeTheta
		if s.Llama3Rope {
			c["rope_scaling"] = rope
		} else {
			c["rope_scaling"] = nil
		}
		c["torch_dtype"] = dtName
		c["transformers_version"] = "4.45.0"
	} else {
		rope["rope_theta"] = s.RopeTheta
		c["rope_parameters"] = rope
		c["dtype"] = dtName
		c["transformers_version"] = "5.0.0"
	}
	return c
}

func bytesOf(shape []int, dt safetensors.DType) int64 {
	n := int64(dt.Size())
	for _, d := range shape {
		n *= int64(d)
	}
	return n
}

// writeFile streams tensors of random values to one safetensors file.
func writeFile(path string, ts []Tensor, dt safetensors.DType, std float64, rng *rng) error {
	specs := make([]safetensors.Spec, len(ts))
	for i, t := range ts {
		specs[i] = safetensors.Spec{Name: t.Name, DType: dt, Shape: t.Shape}
	}
	w, err := safetensors.Create(path, specs, map[string]string{"format": "pt"})
	if err != nil {
		return err
	}
	buf := make([]float32, 1<<16)
	raw := make([]byte, 0, 4<<16)
	for _, t := range ts {
		n := 1
		for _, d := range t.Shape {
			n *= d
		}
		for n > 0 {
			k := min(n, len(buf))
			vals := buf[:k]
			if t.Norm {
				rng.fill(vals, 0.1)
				for i := range vals {
					vals[i] += 1
				}
			} else {
				rng.fill(vals, std)
			}
			raw = Encode(raw[:0], vals, dt)
			if _, err := w.Write(raw); err != nil {
				w.Close()
				return err
			}
			n -= k
		}
	}
	return w.Close()
}

// Encode appends vals in dtype dt (little-endian) to dst; BF16 rounds to
// nearest even, F16 rounds to nearest even with overflow to infinity.
func Encode(dst []byte, vals []float32, dt safetensors.DType) []byte {
	for _, v := range vals {
		switch dt {
		case safetensors.F32:
			dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(v))
		case safetensors.F16:
			dst = binary.LittleEndian.AppendUint16(dst, f32ToF16(v))
		default:
			dst = binary.LittleEndian.AppendUint16(dst, f32ToBF16(v))
		}
	}
	return dst
}

func f32ToBF16(f float32) uint16 {
	u := math.Float32bits(f)
	if u&0x7fffffff > 0x7f800000 {
		return uint16(u>>16) | 0x40
	}
	u += 0x7fff + (u>>16)&1
	return uint16(u >> 16)
}

// f32ToF16 rounds to nearest even (finite normal and subnormal values; the
// synthetic weights never need NaN).
func f32ToF16(f float32) uint16 {
	u := math.Float32bits(f)
	sign := uint16(u>>16) & 0x8000
	a := math.Abs(float64(f))
	switch {
	case a >= 65520:
		return sign | 0x7c00
	case a < math.Ldexp(1, -25):
		return sign
	}
	exp := math.Ilogb(a)
	if exp < -14 {
		exp = -14
	}
	// Scale so that the 10-bit mantissa is the integer part, then round.
	m := math.RoundToEven(math.Ldexp(a, 10-exp))
	if m >= 2048 {
		m /= 2
		exp++
	}
	if m < 1024 { // subnormal
		return sign | uint16(m)
	}
	return sign | uint16(exp+15)<<10 | (uint16(m) & 0x3ff)
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("synth: %s: %w", path, err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	return nil
}

// rng is a splitmix64 stream: fast, deterministic, good enough for weights.
type rng struct{ s uint64 }

func newRNG(seed uint64) *rng { return &rng{s: seed*0x9e3779b97f4a7c15 + 0x632be59bd9b4e019} }

func (r *rng) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	z := r.s
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// fill writes uniform values with standard deviation std (range ±std*sqrt(3)).
func (r *rng) fill(dst []float32, std float64) {
	a := float32(std * math.Sqrt(3) * 2 / (1 << 24))
	off := float32(std * math.Sqrt(3))
	for i := range dst {
		dst[i] = float32(r.next()>>40)*a - off
	}
}
