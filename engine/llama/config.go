package llama

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"

	"github.com/batchtrans/batchtrans/engine/safetensors"
)

// Sanity limits on config.json: a config past any of them is refused before
// anything is allocated. They are far above any released Llama model.
const (
	maxVocab        = 1 << 22
	maxHidden       = 1 << 16
	maxIntermediate = 1 << 20
	maxLayers       = 1024
	maxHeads        = 1024
	maxHeadDim      = 1024
	maxPositions    = 1 << 24
	maxParams       = 500e9
	maxConfigBytes  = 16 << 20
)

// rawConfig is config.json as transformers 4.x or 5.x writes it for Llama.
type rawConfig struct {
	Architectures         []string        `json:"architectures"`
	ModelType             string          `json:"model_type"`
	VocabSize             *int64          `json:"vocab_size"`
	HiddenSize            *int64          `json:"hidden_size"`
	IntermediateSize      *int64          `json:"intermediate_size"`
	NumHiddenLayers       *int64          `json:"num_hidden_layers"`
	NumAttentionHeads     *int64          `json:"num_attention_heads"`
	NumKeyValueHeads      *int64          `json:"num_key_value_heads"`
	HeadDim               *int64          `json:"head_dim"`
	MaxPositionEmbeddings *int64          `json:"max_position_embeddings"`
	RMSNormEps            *float64        `json:"rms_norm_eps"`
	RopeTheta             *float64        `json:"rope_theta"`
	RopeScaling           json.RawMessage `json:"rope_scaling"`
	RopeParameters        json.RawMessage `json:"rope_parameters"`
	TieWordEmbeddings     *bool           `json:"tie_word_embeddings"`
	BOSTokenID            json.RawMessage `json:"bos_token_id"`
	EOSTokenID            json.RawMessage `json:"eos_token_id"`
	HiddenAct             string          `json:"hidden_act"`
	AttentionBias         bool            `json:"attention_bias"`
	MLPBias               bool            `json:"mlp_bias"`
	TorchDType            string          `json:"torch_dtype"`
	DType                 string          `json:"dtype"`
}

// rawRope is a rope_scaling (4.x) or rope_parameters (5.x) block.
type rawRope struct {
	RopeType                      string   `json:"rope_type"`
	Type                          string   `json:"type"` // older spelling of rope_type
	RopeTheta                     *float64 `json:"rope_theta"`
	Factor                        *float64 `json:"factor"`
	LowFreqFactor                 *float64 `json:"low_freq_factor"`
	HighFreqFactor                *float64 `json:"high_freq_factor"`
	OriginalMaxPositionEmbeddings *int64   `json:"original_max_position_embeddings"`
}

// LoadConfig reads config.json (and generation_config.json for the EOS ids)
// from a Hugging Face model folder. It accepts LlamaForCausalLM configs in the
// transformers 4.x dialect (top-level rope_theta and rope_scaling) and the
// 5.x dialect (rope_parameters), and refuses anything it cannot run with an
// error that names the file and the field.
func LoadConfig(dir string) (*Config, error) {
	cfg, _, err := loadConfig(dir)
	return cfg, err
}

func loadConfig(dir string) (*Config, *rawConfig, error) {
	path := filepath.Join(dir, "config.json")
	raw, err := safetensors.ReadCapped(path, maxConfigBytes)
	if err != nil {
		return nil, nil, err
	}
	var rc rawConfig
	if err := json.Unmarshal(raw, &rc); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	cfg, err := rc.normalise(path)
	if err != nil {
		return nil, nil, err
	}
	if err := loadGenerationConfig(dir, cfg, rc.EOSTokenID, rc.BOSTokenID, path); err != nil {
		return nil, nil, err
	}
	return cfg, &rc, nil
}

// sourceDType is the dtype the checkpoint declares in config.json (torch_dtype
// in 4.x, dtype in 5.x), or "" when it declares none.
func (rc *rawConfig) sourceDType() string {
	if rc.DType != "" {
		return rc.DType
	}
	return rc.TorchDType
}

func (rc *rawConfig) normalise(path string) (*Config, error) {
	fail := func(format string, a ...any) error {
		return fmt.Errorf("%s: %s", path, fmt.Sprintf(format, a...))
	}
	switch {
	case len(rc.Architectures) == 0 && rc.ModelType != "llama":
		return nil, fail("architectures is missing and model_type is %q: only LlamaForCausalLM is supported", rc.ModelType)
	case len(rc.Architectures) > 0 && !slices.Equal(rc.Architectures, []string{"LlamaForCausalLM"}):
		return nil, fail("architectures %v is not supported: only LlamaForCausalLM", rc.Architectures)
	}
	if rc.HiddenAct != "" && rc.HiddenAct != "silu" {
		return nil, fail("hidden_act %q is not supported (want silu)", rc.HiddenAct)
	}
	if rc.AttentionBias {
		return nil, fail("attention_bias true is not supported")
	}
	if rc.MLPBias {
		return nil, fail("mlp_bias true is not supported")
	}
	need := func(field string, v *int64, lo, hi int64) (int, error) {
		if v == nil {
			return 0, fail("%s is missing", field)
		}
		if *v < lo || *v > hi {
			return 0, fail("%s %d is outside [%d, %d]", field, *v, lo, hi)
		}
		return int(*v), nil
	}
	var c Config
	var err error
	if c.Vocab, err = need("vocab_size", rc.VocabSize, 1, maxVocab); err != nil {
		return nil, err
	}
	if c.Hidden, err = need("hidden_size", rc.HiddenSize, 1, maxHidden); err != nil {
		return nil, err
	}
	if c.Intermediate, err = need("intermediate_size", rc.IntermediateSize, 1, maxIntermediate); err != nil {
		return nil, err
	}
	if c.Layers, err = need("num_hidden_layers", rc.NumHiddenLayers, 1, maxLayers); err != nil {
		return nil, err
	}
	if c.Heads, err = need("num_attention_heads", rc.NumAttentionHeads, 1, maxHeads); err != nil {
		return nil, err
	}
	c.KVHeads = c.Heads
	if rc.NumKeyValueHeads != nil {
		if c.KVHeads, err = need("num_key_value_heads", rc.NumKeyValueHeads, 1, maxHeads); err != nil {
			return nil, err
		}
	}
	if c.Heads%c.KVHeads != 0 {
		return nil, fail("num_attention_heads %d is not a multiple of num_key_value_heads %d", c.Heads, c.KVHeads)
	}
	if rc.HeadDim != nil {
		if c.HeadDim, err = need("head_dim", rc.HeadDim, 2, maxHeadDim); err != nil {
			return nil, err
		}
	} else {
		if c.Hidden%c.Heads != 0 {
			return nil, fail("head_dim is missing and hidden_size %d is not a multiple of num_attention_heads %d", c.Hidden, c.Heads)
		}
		c.HeadDim = c.Hidden / c.Heads
	}
	if c.HeadDim%2 != 0 || c.HeadDim > maxHeadDim {
		return nil, fail("head_dim %d must be even and at most %d", c.HeadDim, maxHeadDim)
	}
	c.MaxPositions = 2048 // transformers' LlamaConfig default
	if rc.MaxPositionEmbeddings != nil {
		if c.MaxPositions, err = need("max_position_embeddings", rc.MaxPositionEmbeddings, 1, maxPositions); err != nil {
			return nil, err
		}
	}
	c.RMSNormEps = 1e-6 // LlamaConfig default
	if rc.RMSNormEps != nil {
		c.RMSNormEps = *rc.RMSNormEps
		if !(c.RMSNormEps > 0 && c.RMSNormEps < 1) {
			return nil, fail("rms_norm_eps %g is outside (0, 1)", c.RMSNormEps)
		}
	}
	// transformers 5 defaults tie_word_embeddings to false for Llama, as 4.x did.
	c.TiedEmbedding = rc.TieWordEmbeddings != nil && *rc.TieWordEmbeddings
	if err := rc.rope(&c, fail); err != nil {
		return nil, err
	}
	if p := c.ParamCount(); p > maxParams {
		return nil, fail("the shapes describe %d parameters, more than the %.0f supported", p, float64(maxParams))
	}
	return &c, nil
}

// rope fills RopeTheta and RopeScaling from either dialect.
func (rc *rawConfig) rope(c *Config, fail func(string, ...any) error) error {
	field := "rope_scaling"
	block := rc.RopeScaling
	if len(rc.RopeParameters) > 0 && string(rc.RopeParameters) != "null" {
		field, block = "rope_parameters", rc.RopeParameters
	}
	c.RopeTheta = 10000 // LlamaConfig default
	if rc.RopeTheta != nil {
		c.RopeTheta = *rc.RopeTheta
	}
	var rr rawRope
	if len(block) > 0 && string(block) != "null" {
		if err := json.Unmarshal(block, &rr); err != nil {
			return fail("%s: %v", field, err)
		}
	}
	if rr.RopeTheta != nil {
		c.RopeTheta = *rr.RopeTheta
	}
	if !(c.RopeTheta > 1 && c.RopeTheta < 1e12) {
		return fail("rope_theta %g is outside (1, 1e12)", c.RopeTheta)
	}
	kind := rr.RopeType
	if kind == "" {
		kind = rr.Type
	}
	switch kind {
	case "", "default":
		c.RopeScaling = nil
		return nil
	case "llama3":
	default:
		return fail("%s rope_type %q is not supported (want default or llama3)", field, kind)
	}
	if rr.Factor == nil || rr.LowFreqFactor == nil || rr.HighFreqFactor == nil || rr.OriginalMaxPositionEmbeddings == nil {
		return fail("%s: llama3 needs factor, low_freq_factor, high_freq_factor and original_max_position_embeddings", field)
	}
	rs := &RopeScaling{
		Type:                          "llama3",
		Factor:                        *rr.Factor,
		LowFreqFactor:                 *rr.LowFreqFactor,
		HighFreqFactor:                *rr.HighFreqFactor,
		OriginalMaxPositionEmbeddings: int(*rr.OriginalMaxPositionEmbeddings),
	}
	switch {
	case !(rs.Factor >= 1 && rs.Factor < 1e6):
		return fail("%s: factor %g is outside [1, 1e6)", field, rs.Factor)
	case !(rs.LowFreqFactor > 0 && rs.HighFreqFactor > rs.LowFreqFactor && rs.HighFreqFactor < 1e6):
		return fail("%s: need 0 < low_freq_factor (%g) < high_freq_factor (%g)", field, rs.LowFreqFactor, rs.HighFreqFactor)
	case *rr.OriginalMaxPositionEmbeddings < 1 || *rr.OriginalMaxPositionEmbeddings > maxPositions:
		return fail("%s: original_max_position_embeddings %d is outside [1, %d]", field, *rr.OriginalMaxPositionEmbeddings, maxPositions)
	}
	c.RopeScaling = rs
	return nil
}

// ParamCount is the number of weights the config describes (the output
// layer counted once when tied).
func (c *Config) ParamCount() int64 {
	layers, head := c.MatMulParams()
	h := int64(c.Hidden)
	n := head + layers + int64(c.Layers)*2*h + h // + the norms
	if !c.TiedEmbedding {
		n += head
	}
	return n
}

// MatMulParams returns the weights one token multiplies: those of the
// layers' seven matrices, and those of the LM head (Vocab x Hidden; the
// embedding, if tied). Each is one multiply-add per token.
func (c *Config) MatMulParams() (layers, head int64) {
	h, q, kv := int64(c.Hidden), int64(c.Heads*c.HeadDim), int64(c.KVHeads*c.HeadDim)
	per := h*q + 2*h*kv + q*h + 3*h*int64(c.Intermediate)
	return int64(c.Layers) * per, int64(c.Vocab) * h
}

// loadGenerationConfig sets EOS (and BOS when config.json lacks it) from
// generation_config.json, falling back to config.json's eos_token_id.
func loadGenerationConfig(dir string, c *Config, cfgEOS, cfgBOS json.RawMessage, cfgPath string) error {
	var err error
	c.BOS = -1
	if c.BOS, err = tokenID(cfgBOS, c.Vocab); err != nil {
		return fmt.Errorf("%s: bos_token_id: %w", cfgPath, err)
	}
	path := filepath.Join(dir, "generation_config.json")
	raw, err := safetensors.ReadCapped(path, maxConfigBytes)
	var gen struct {
		BOS json.RawMessage `json:"bos_token_id"`
		EOS json.RawMessage `json:"eos_token_id"`
	}
	switch {
	case err == nil:
		if err := json.Unmarshal(raw, &gen); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	if c.BOS < 0 && len(gen.BOS) > 0 {
		if c.BOS, err = tokenID(gen.BOS, c.Vocab); err != nil {
			return fmt.Errorf("%s: bos_token_id: %w", path, err)
		}
	}
	src, from := gen.EOS, path
	if len(src) == 0 || string(src) == "null" {
		src, from = cfgEOS, cfgPath
	}
	c.EOS, err = tokenIDs(src, c.Vocab)
	if err != nil {
		return fmt.Errorf("%s: eos_token_id: %w", from, err)
	}
	if len(c.EOS) == 0 {
		return fmt.Errorf("%s: no eos_token_id in generation_config.json or config.json", cfgPath)
	}
	return nil
}

// tokenID reads one optional id (-1 when absent or null).
func tokenID(raw json.RawMessage, vocab int) (int, error) {
	ids, err := tokenIDs(raw, vocab)
	if err != nil {
		return -1, err
	}
	if len(ids) == 0 {
		return -1, nil
	}
	return ids[0], nil
}

// tokenIDs reads an id or a list of ids, each checked against the vocabulary.
func tokenIDs(raw json.RawMessage, vocab int) ([]int, error) {
	s := strings.TrimSpace(string(raw))
	if s == "" || s == "null" {
		return nil, nil
	}
	var list []int64
	if strings.HasPrefix(s, "[") {
		if err := json.Unmarshal(raw, &list); err != nil {
			return nil, fmt.Errorf("want an integer or a list of integers: %w", err)
		}
	} else {
		var one int64
		if err := json.Unmarshal(raw, &one); err != nil {
			return nil, fmt.Errorf("want an integer or a list of integers: %w", err)
		}
		list = []int64{one}
	}
	out := make([]int, 0, len(list))
	for _, id := range list {
		if id < 0 || id >= int64(vocab) {
			return nil, fmt.Errorf("id %d is outside the vocabulary [0, %d)", id, vocab)
		}
		if !slices.Contains(out, int(id)) {
			out = append(out, int(id))
		}
	}
	return out, nil
}
