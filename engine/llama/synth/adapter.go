package synth

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/batchtrans/batchtrans/engine/safetensors"
)

// AllLinear lists the seven linear modules of a Llama decoder block.
var AllLinear = []string{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}

// AdapterSpec is a synthetic PEFT LoRA adapter.
type AdapterSpec struct {
	Rank    int
	Alpha   float64
	RSLoRA  bool
	Targets []string          // module kinds, e.g. AllLinear
	DType   safetensors.DType // F32 (default) or BF16
	// Config entries written as they are (use_dora, rank_pattern, ...);
	// they override the defaults.
	Extra map[string]any
	// RankPattern gives some modules another rank (keys are module-name
	// suffixes, as in PEFT's rank_pattern); the tensors are written with it
	// and it goes into adapter_config.json.
	RankPattern map[string]int
	// BStd is the scale of lora_B (default 0.02). PEFT starts lora_B at zero;
	// a trained adapter's is not, and a test must see the merge.
	BStd float64
}

// moduleShape is the out x in shape of one module kind's weight.
func (s Spec) moduleShape(kind string) (out, in int) {
	q, kv := s.Heads*s.headDim(), s.KVHeads*s.headDim()
	switch kind {
	case "q_proj":
		return q, s.Hidden
	case "k_proj", "v_proj":
		return kv, s.Hidden
	case "o_proj":
		return s.Hidden, q
	case "gate_proj", "up_proj":
		return s.Intermediate, s.Hidden
	case "down_proj":
		return s.Hidden, s.Intermediate
	}
	return 0, 0
}

// ModulePath is the module name of a kind in layer l, as PEFT sees it.
func ModulePath(l int, kind string) string {
	switch kind {
	case "gate_proj", "up_proj", "down_proj":
		return fmt.Sprintf("model.layers.%d.mlp.%s", l, kind)
	}
	return fmt.Sprintf("model.layers.%d.self_attn.%s", l, kind)
}

// WriteAdapter writes adapter_config.json and adapter_model.safetensors for
// a LoRA adapter on model s, with random non-zero lora_A and lora_B.
func WriteAdapter(dir string, s Spec, a AdapterSpec, seed uint64) error {
	if a.Rank <= 0 || len(a.Targets) == 0 {
		return fmt.Errorf("synth: adapter needs a rank and targets")
	}
	for _, k := range a.Targets {
		if o, _ := s.moduleShape(k); o == 0 {
			return fmt.Errorf("synth: unknown target module %q", k)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	cfg := map[string]any{
		"peft_type":               "LORA",
		"task_type":               "CAUSAL_LM",
		"r":                       a.Rank,
		"lora_alpha":              a.Alpha,
		"lora_dropout":            0.0,
		"target_modules":          a.Targets,
		"use_rslora":              a.RSLoRA,
		"use_dora":                false,
		"fan_in_fan_out":          false,
		"bias":                    "none",
		"rank_pattern":            a.RankPattern,
		"alpha_pattern":           map[string]any{},
		"modules_to_save":         nil,
		"inference_mode":          true,
		"init_lora_weights":       true,
		"base_model_name_or_path": "synthetic-llama",
		"peft_version":            "0.17.0",
	}
	for k, v := range a.Extra {
		cfg[k] = v
	}
	if err := writeJSON(filepath.Join(dir, "adapter_config.json"), cfg); err != nil {
		return err
	}
	dt := a.DType
	if dt == "" {
		dt = safetensors.F32
	}
	bstd := a.BStd
	if bstd == 0 {
		bstd = 0.02
	}
	type lt struct {
		name  string
		shape []int
		std   float64
	}
	var ts []lt
	for l := range s.Layers {
		for _, k := range a.Targets {
			out, in := s.moduleShape(k)
			mod := ModulePath(l, k)
			r := a.Rank
			for suffix, pr := range a.RankPattern {
				if mod == suffix || strings.HasSuffix(mod, "."+suffix) {
					r = pr
				}
			}
			p := "base_model.model." + mod
			ts = append(ts,
				lt{name: p + ".lora_A.weight", shape: []int{r, in}, std: 1 / math.Sqrt(float64(in))},
				lt{name: p + ".lora_B.weight", shape: []int{out, r}, std: bstd},
			)
		}
	}
	specs := make([]safetensors.Spec, len(ts))
	for i, t := range ts {
		specs[i] = safetensors.Spec{Name: t.name, DType: dt, Shape: t.shape}
	}
	w, err := safetensors.Create(filepath.Join(dir, "adapter_model.safetensors"), specs, map[string]string{"format": "pt"})
	if err != nil {
		return err
	}
	r := newRNG(seed ^ 0xada97e5)
	for _, t := range ts {
		vals := make([]float32, t.shape[0]*t.shape[1])
		r.fill(vals, t.std)
		if _, err := w.Write(Encode(nil, vals, dt)); err != nil {
			w.Close()
			return err
		}
	}
	return w.Close()
}

// BigFolders returns the folders, under root, of the Llama-3.2-1B-shaped
// model (seed 42) and its r=16 adapter on all seven linear modules (seed
// 43) that the full-size tests and benchmarks share, writing each unless
// it already holds its weights (2.5 GB the first time).
func BigFolders(root string) (model, adapter string, err error) {
	spec := Llama32_1B()
	model, adapter = filepath.Join(root, "llama32-1b-shape"), filepath.Join(root, "lora-r16-all")
	if _, err := os.Stat(filepath.Join(model, "model.safetensors")); err != nil {
		if err := WriteModel(model, spec, 42); err != nil {
			return "", "", err
		}
	}
	if _, err := os.Stat(filepath.Join(adapter, "adapter_model.safetensors")); err != nil {
		if err := WriteAdapter(adapter, spec, AdapterSpec{Rank: 16, Alpha: 32, Targets: AllLinear}, 43); err != nil {
			return "", "", err
		}
	}
	return model, adapter, nil
}
