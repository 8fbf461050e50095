package llama

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/batchtrans/batchtrans/engine/safetensors"
)

// Adapter file names, as PEFT's save_pretrained writes them.
const (
	adapterConfigFile = "adapter_config.json"
	adapterWeights    = "adapter_model.safetensors"
	adapterPickle     = "adapter_model.bin"
	peftPrefix        = "base_model.model."
)

// rawAdapterConfig is the part of PEFT's adapter_config.json that shapes the
// merge, plus the options whose use must be refused.
type rawAdapterConfig struct {
	PeftType          string          `json:"peft_type"`
	R                 *float64        `json:"r"`
	LoraAlpha         *float64        `json:"lora_alpha"`
	UseRSLoRA         bool            `json:"use_rslora"`
	UseDoRA           bool            `json:"use_dora"`
	FanInFanOut       bool            `json:"fan_in_fan_out"`
	TargetModules     json.RawMessage `json:"target_modules"`
	ExcludeModules    json.RawMessage `json:"exclude_modules"`
	RankPattern       json.RawMessage `json:"rank_pattern"`
	AlphaPattern      json.RawMessage `json:"alpha_pattern"`
	ModulesToSave     []string        `json:"modules_to_save"`
	LayersToTransform json.RawMessage `json:"layers_to_transform"`
	LayersPattern     json.RawMessage `json:"layers_pattern"`
	LoraBias          bool            `json:"lora_bias"`
	TargetParameters  []string        `json:"target_parameters"`
	TrainableTokens   json.RawMessage `json:"trainable_token_indices"`
	LayerReplication  json.RawMessage `json:"layer_replication"`
	BaseModel         string          `json:"base_model_name_or_path"`
}

// patternEntry is one rank_pattern or alpha_pattern key, in file order:
// PEFT takes the first key that matches.
type patternEntry struct {
	key   string
	re    *regexp.Regexp
	value float64
}

// moduleSelector is target_modules (or exclude_modules): a list of names
// matched as dotted suffixes, or one regex that must match the whole name.
type moduleSelector struct {
	list  []string
	re    *regexp.Regexp
	all   bool // "all-linear"
	field string
}

// Adapter is a parsed PEFT LoRA adapter folder with its weights file open.
type Adapter struct {
	Dir           string
	ConfigPath    string
	WeightsPath   string
	Rank          int
	Alpha         float64
	RSLoRA        bool
	ModulesToSave []string
	BaseModel     string // base_model_name_or_path, as written

	file         *safetensors.File
	targets      moduleSelector
	exclude      *moduleSelector
	rankPattern  []patternEntry
	alphaPattern []patternEntry
	layers       []int // layers_to_transform; nil means all
}

// Close releases the adapter's weights file.
func (a *Adapter) Close() error {
	if a == nil || a.file == nil {
		return nil
	}
	return a.file.Close()
}

// OpenAdapter reads adapter_config.json and opens adapter_model.safetensors
// in a PEFT adapter folder, refusing adapters that are not plain LoRA.
func OpenAdapter(dir string) (*Adapter, error) {
	a := &Adapter{Dir: dir, ConfigPath: filepath.Join(dir, adapterConfigFile), WeightsPath: filepath.Join(dir, adapterWeights)}
	raw, err := safetensors.ReadCapped(a.ConfigPath, maxConfigBytes)
	if err != nil {
		return nil, fmt.Errorf("adapter: %w", err)
	}
	var rc rawAdapterConfig
	if err := json.Unmarshal(raw, &rc); err != nil {
		return nil, fmt.Errorf("%s: %w", a.ConfigPath, err)
	}
	if err := a.parseConfig(&rc); err != nil {
		return nil, err
	}
	if _, err := os.Stat(a.WeightsPath); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			if _, perr := os.Stat(filepath.Join(dir, adapterPickle)); perr == nil {
				return nil, fmt.Errorf("%s: pickle adapters are not supported (they can run code when loaded); save the adapter with safe_serialization=True to get %s", filepath.Join(dir, adapterPickle), adapterWeights)
			}
			return nil, fmt.Errorf("%s: adapter weights missing", a.WeightsPath)
		}
		return nil, fmt.Errorf("adapter: %w", err)
	}
	f, err := safetensors.Open(a.WeightsPath)
	if err != nil {
		return nil, fmt.Errorf("adapter: %w", err)
	}
	a.file = f
	return a, nil
}

func (a *Adapter) parseConfig(rc *rawAdapterConfig) error {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%s: %s", a.ConfigPath, fmt.Sprintf(format, args...))
	}
	if rc.PeftType != "" && rc.PeftType != "LORA" {
		return fail("peft_type %q is not supported (only LORA adapters merge into the weights)", rc.PeftType)
	}
	if rc.UseDoRA {
		return fail("use_dora is true: DoRA rescales each weight column by a learned magnitude and is not a plain W += scale*B@A merge; it is not supported")
	}
	if rc.LoraBias {
		return fail("lora_bias is true: LoRA biases are not supported")
	}
	if len(rc.TargetParameters) > 0 {
		return fail("target_parameters is not supported")
	}
	if !isNull(rc.TrainableTokens) {
		return fail("trainable_token_indices is not supported")
	}
	if !isNull(rc.LayerReplication) {
		return fail("layer_replication is not supported")
	}
	if rc.R == nil || *rc.R < 1 || *rc.R > 1<<16 || *rc.R != math.Trunc(*rc.R) {
		return fail("r must be a positive integer")
	}
	a.Rank = int(*rc.R)
	a.Alpha = 8 // PEFT's default lora_alpha
	if rc.LoraAlpha != nil {
		a.Alpha = *rc.LoraAlpha
	}
	if math.IsNaN(a.Alpha) || math.IsInf(a.Alpha, 0) {
		return fail("lora_alpha %v is not a number", a.Alpha)
	}
	a.RSLoRA = rc.UseRSLoRA
	a.ModulesToSave = rc.ModulesToSave
	a.BaseModel = rc.BaseModel
	// fan_in_fan_out only applies to Conv1D-style layers that store weights as
	// in x out. Llama's projections are nn.Linear, for which PEFT turns the
	// flag off with a warning; the merge here does the same.
	_ = rc.FanInFanOut

	var err error
	if a.targets, err = parseSelector(rc.TargetModules, "target_modules"); err != nil {
		return fail("%v", err)
	}
	if !isNull(rc.ExcludeModules) {
		ex, err := parseSelector(rc.ExcludeModules, "exclude_modules")
		if err != nil {
			return fail("%v", err)
		}
		a.exclude = &ex
	}
	if a.rankPattern, err = parsePatterns(rc.RankPattern, "rank_pattern"); err != nil {
		return fail("%v", err)
	}
	for _, p := range a.rankPattern {
		if p.value < 1 || p.value != math.Trunc(p.value) || p.value > 1<<16 {
			return fail("rank_pattern %q: rank %v is not a positive integer", p.key, p.value)
		}
	}
	if a.alphaPattern, err = parsePatterns(rc.AlphaPattern, "alpha_pattern"); err != nil {
		return fail("%v", err)
	}
	if !isNull(rc.LayersToTransform) {
		var one int
		var list []int
		if err := json.Unmarshal(rc.LayersToTransform, &list); err != nil {
			if err := json.Unmarshal(rc.LayersToTransform, &one); err != nil {
				return fail("layers_to_transform must be an integer or a list of integers")
			}
			list = []int{one}
		}
		a.layers = list
		if !isNull(rc.LayersPattern) {
			var lp any
			_ = json.Unmarshal(rc.LayersPattern, &lp)
			if s, ok := lp.(string); !ok || s != "layers" {
				if l, ok := lp.([]any); !ok || len(l) != 1 || l[0] != "layers" {
					return fail("layers_pattern %s is not supported (Llama's blocks are model.layers)", rc.LayersPattern)
				}
			}
		}
	}
	return nil
}

func isNull(raw json.RawMessage) bool {
	s := strings.TrimSpace(string(raw))
	return s == "" || s == "null"
}

func parseSelector(raw json.RawMessage, field string) (moduleSelector, error) {
	sel := moduleSelector{field: field}
	if isNull(raw) {
		return sel, fmt.Errorf("%s is missing", field)
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		if s == "all-linear" {
			sel.all = true
			return sel, nil
		}
		re, err := regexp.Compile("^(?:" + s + ")$")
		if err != nil {
			return sel, fmt.Errorf("%s regex %q: %w", field, s, err)
		}
		sel.re = re
		return sel, nil
	}
	if err := json.Unmarshal(raw, &sel.list); err != nil {
		return sel, fmt.Errorf("%s must be a list of names or a regex string", field)
	}
	if len(sel.list) == 0 {
		return sel, fmt.Errorf("%s is empty", field)
	}
	return sel, nil
}

// matches reports whether the selector picks the module, as PEFT's
// check_target_module_exists does: a regex must match the whole name, a list
// entry must equal the name or be a dotted suffix of it.
func (s *moduleSelector) matches(module string) bool {
	switch {
	case s.all:
		return module != "lm_head"
	case s.re != nil:
		return s.re.MatchString(module)
	}
	for _, t := range s.list {
		if module == t || strings.HasSuffix(module, "."+t) {
			return true
		}
	}
	return false
}

// parsePatterns reads a JSON object keeping key order.
func parsePatterns(raw json.RawMessage, field string) ([]patternEntry, error) {
	if isNull(raw) {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, fmt.Errorf("%s must be an object", field)
	}
	var out []patternEntry
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", field, err)
		}
		key, _ := tok.(string)
		var n json.Number
		if err := dec.Decode(&n); err != nil {
			return nil, fmt.Errorf("%s %q: value must be a number", field, key)
		}
		v, err := n.Float64()
		if err != nil || math.IsInf(v, 0) {
			return nil, fmt.Errorf("%s %q: value must be a number", field, key)
		}
		// PEFT's get_pattern_key: re.match(rf"(.*\.)?({key})$", module).
		re, err := regexp.Compile(`^(?:.*\.)?(?:` + key + `)$`)
		if err != nil {
			return nil, fmt.Errorf("%s key %q is not a supported regex: %w", field, key, err)
		}
		out = append(out, patternEntry{key: key, re: re, value: v})
	}
	return out, nil
}

func firstPattern(ps []patternEntry, module string) (float64, bool) {
	for _, p := range ps {
		if p.re.MatchString(module) {
			return p.value, true
		}
	}
	return 0, false
}

// selects reports whether the adapter's config puts LoRA on the module.
func (a *Adapter) selects(module string) bool {
	if !a.targets.matches(module) {
		return false
	}
	if a.exclude != nil && a.exclude.matches(module) {
		return false
	}
	if a.layers != nil {
		l, ok := layerOf(module)
		if !ok || !slices.Contains(a.layers, l) {
			return false
		}
	}
	return true
}

// rankAlpha returns the module's rank, alpha and merge scale.
func (a *Adapter) rankAlpha(module string) (r int, alpha, scale float64) {
	r, alpha = a.Rank, a.Alpha
	if v, ok := firstPattern(a.rankPattern, module); ok {
		r = int(v)
	}
	if v, ok := firstPattern(a.alphaPattern, module); ok {
		alpha = v
	}
	if a.RSLoRA {
		return r, alpha, alpha / math.Sqrt(float64(r))
	}
	return r, alpha, alpha / float64(r)
}

// layerOf extracts N from "model.layers.N. ...".
func layerOf(module string) (int, bool) {
	rest, ok := strings.CutPrefix(module, "model.layers.")
	if !ok {
		return 0, false
	}
	num, _, _ := strings.Cut(rest, ".")
	n, err := strconv.Atoi(num)
	return n, err == nil
}

// loraDelta is one module's low-rank update: W += Scale * B @ A.
type loraDelta struct {
	A, B  safetensors.Tensor // r x in, out x r
	Scale float64
	Rank  int
}

// adapterPlan is what an adapter does to the base: deltas on linear weights
// and whole-tensor replacements (modules_to_save), keyed by base tensor name.
type adapterPlan struct {
	deltas  map[string]*loraDelta
	replace map[string]safetensors.Tensor
	dtype   safetensors.DType // of the adapter's LoRA weights
}

// plan checks every tensor of the adapter against the base model's tensor
// shapes and returns what to merge. It reads headers only.
func (a *Adapter) plan(cfg *Config, shapes map[string][2]int) (*adapterPlan, error) {
	p := &adapterPlan{deltas: map[string]*loraDelta{}, replace: map[string]safetensors.Tensor{}}
	fail := func(tensor, format string, args ...any) error {
		return fmt.Errorf("%s: tensor %s: %s", a.WeightsPath, tensor, fmt.Sprintf(format, args...))
	}
	// Every target entry must name something the base has.
	linear := make([]string, 0, len(shapes))
	for name := range shapes {
		if mod, ok := strings.CutSuffix(name, ".weight"); ok && mod != "model.embed_tokens" {
			linear = append(linear, mod)
		}
	}
	slices.Sort(linear)
	if len(a.targets.list) > 0 {
		for _, t := range a.targets.list {
			found := false
			for _, m := range linear {
				if m == t || strings.HasSuffix(m, "."+t) {
					found = true
					break
				}
			}
			if !found && t != "embed_tokens" && t != "model.embed_tokens" {
				return nil, fmt.Errorf("%s: target module %q is not in the base model (its linear modules end in q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj, lm_head)", a.ConfigPath, t)
			}
		}
	} else if a.targets.re != nil && !slices.ContainsFunc(linear, a.targets.matches) {
		return nil, fmt.Errorf("%s: target_modules regex %q matches no module of the base model", a.ConfigPath, a.targets.re.String())
	}

	for _, key := range a.file.Names() {
		dt, shape, _ := a.file.Info(key)
		rest, ok := strings.CutPrefix(key, peftPrefix)
		if !ok {
			return nil, fail(key, "unknown key (PEFT LoRA keys start with %q)", peftPrefix)
		}
		if !dt.IsFloat() {
			return nil, fail(key, "dtype %s (want F32, BF16 or F16)", dt)
		}
		var module, part string
		switch {
		case strings.HasSuffix(rest, ".lora_A.weight"):
			module, part = strings.TrimSuffix(rest, ".lora_A.weight"), "A"
		case strings.HasSuffix(rest, ".lora_B.weight"):
			module, part = strings.TrimSuffix(rest, ".lora_B.weight"), "B"
		case strings.Contains(rest, "lora_magnitude_vector"):
			return nil, fail(key, "DoRA magnitude vectors are not supported")
		case strings.Contains(rest, "lora_embedding_"):
			return nil, fail(key, "LoRA on the embedding layer is not supported")
		case strings.Contains(rest, "lora_"):
			return nil, fail(key, "unknown LoRA tensor")
		default:
			// A whole tensor saved beside the adapter (modules_to_save, or a
			// resized embedding): it replaces the base tensor.
			want, ok := shapes[rest]
			if !ok {
				if l, isLayer := layerOf(rest); isLayer && l >= cfg.Layers {
					return nil, fail(key, "is for layer %d but the base model has %d layers (adapter for another model?)", l, cfg.Layers)
				}
				return nil, fail(key, "unknown key: the base model has no tensor %s", rest)
			}
			if len(shape) != 2 || shape[0] != want[0] || shape[1] != want[1] {
				return nil, fail(key, "shape %v does not fit the base tensor %s %v", shape, rest, want)
			}
			p.replace[rest] = safetensors.Tensor{Name: key}
			continue
		}
		if l, isLayer := layerOf(module); isLayer && l >= cfg.Layers {
			return nil, fail(key, "is for layer %d but the base model has %d layers (adapter for another model?)", l, cfg.Layers)
		}
		base := module + ".weight"
		want, ok := shapes[base]
		if !ok || module == "model.embed_tokens" {
			return nil, fail(key, "module %s is not a linear layer of the base model", module)
		}
		if !a.selects(module) {
			return nil, fail(key, "module %s is not selected by target_modules in %s", module, a.ConfigPath)
		}
		if module == "lm_head" && cfg.TiedEmbedding {
			return nil, fail(key, "LoRA on lm_head of a model with tied embeddings is not supported")
		}
		r, _, scale := a.rankAlpha(module)
		d := p.deltas[base]
		if d == nil {
			d = &loraDelta{Scale: scale, Rank: r}
			p.deltas[base] = d
		}
		if len(shape) != 2 {
			return nil, fail(key, "shape %v is not a matrix", shape)
		}
		if part == "A" {
			if shape[0] != r || shape[1] != want[1] {
				return nil, fail(key, "shape %v does not fit %s %v with rank %d (want [%d %d])", shape, base, want, r, r, want[1])
			}
			d.A = safetensors.Tensor{Name: key}
		} else {
			if shape[0] != want[0] || shape[1] != r {
				return nil, fail(key, "shape %v does not fit %s %v with rank %d (want [%d %d])", shape, base, want, r, want[0], r)
			}
			d.B = safetensors.Tensor{Name: key}
		}
		p.dtype = dt
	}
	for base, d := range p.deltas {
		if d.A.Name == "" || d.B.Name == "" {
			missing := "lora_A"
			if d.B.Name == "" {
				missing = "lora_B"
			}
			return nil, fmt.Errorf("%s: module %s has no %s tensor", a.WeightsPath, strings.TrimSuffix(base, ".weight"), missing)
		}
	}
	return p, nil
}
