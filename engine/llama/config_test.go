package llama

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// llama32Config is Llama-3.2-1B-Instruct's config.json in the transformers
// 4.x dialect, as published.
func llama32Config() map[string]any {
	return map[string]any{
		"architectures": []string{"LlamaForCausalLM"}, "attention_bias": false, "attention_dropout": 0.0,
		"bos_token_id": 128000, "eos_token_id": []int{128001, 128008, 128009}, "head_dim": 64,
		"hidden_act": "silu", "hidden_size": 2048, "initializer_range": 0.02, "intermediate_size": 8192,
		"max_position_embeddings": 131072, "mlp_bias": false, "model_type": "llama",
		"num_attention_heads": 32, "num_hidden_layers": 16, "num_key_value_heads": 8,
		"pretraining_tp": 1, "rms_norm_eps": 1e-05,
		"rope_scaling": map[string]any{"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
			"original_max_position_embeddings": 8192, "rope_type": "llama3"},
		"rope_theta": 500000.0, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
		"transformers_version": "4.45.0.dev0", "use_cache": true, "vocab_size": 128256,
	}
}

func writeConfigDir(t *testing.T, cfg map[string]any, gen any) string {
	t.Helper()
	dir := t.TempDir()
	b, err := json.Marshal(cfg)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644))
	if gen != nil {
		if s, ok := gen.(string); ok {
			require.NoError(t, os.WriteFile(filepath.Join(dir, "generation_config.json"), []byte(s), 0o644))
		} else {
			b, err := json.Marshal(gen)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(filepath.Join(dir, "generation_config.json"), b, 0o644))
		}
	}
	return dir
}

func TestLoadConfigDialects(t *testing.T) {
	want := &Config{
		Vocab: 128256, Hidden: 2048, Intermediate: 8192, Layers: 16, Heads: 32, KVHeads: 8, HeadDim: 64,
		MaxPositions: 131072, RMSNormEps: 1e-5, RopeTheta: 500000,
		RopeScaling:   &RopeScaling{Type: "llama3", Factor: 32, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositionEmbeddings: 8192},
		TiedEmbedding: true, BOS: 128000, EOS: []int{128001, 128008, 128009},
	}
	t.Run("4.x", func(t *testing.T) {
		c, err := LoadConfig(writeConfigDir(t, llama32Config(), map[string]any{"bos_token_id": 128000, "eos_token_id": []int{128001, 128008, 128009}}))
		require.NoError(t, err)
		assert.Equal(t, want, c)
		assert.Equal(t, int64(1_235_814_400), c.ParamCount())
	})
	t.Run("5.x", func(t *testing.T) {
		raw := llama32Config()
		rope := raw["rope_scaling"].(map[string]any)
		rope["rope_theta"] = 500000.0
		delete(raw, "rope_scaling")
		delete(raw, "rope_theta")
		delete(raw, "torch_dtype")
		raw["rope_parameters"] = rope
		raw["dtype"] = "bfloat16"
		raw["eos_token_id"] = 128009
		c, err := LoadConfig(writeConfigDir(t, raw, nil))
		require.NoError(t, err)
		w := *want
		w.EOS = []int{128009} // no generation_config.json: config.json's id
		assert.Equal(t, &w, c)
	})
	t.Run("older type key, derived head_dim, defaults", func(t *testing.T) {
		raw := llama32Config()
		raw["rope_scaling"] = map[string]any{"type": "llama3", "factor": 8.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0, "original_max_position_embeddings": 8192}
		delete(raw, "head_dim")
		delete(raw, "num_key_value_heads")
		delete(raw, "rms_norm_eps")
		delete(raw, "tie_word_embeddings")
		c, err := LoadConfig(writeConfigDir(t, raw, `{"eos_token_id": 7}`))
		require.NoError(t, err)
		assert.Equal(t, 64, c.HeadDim)
		assert.Equal(t, 32, c.KVHeads)
		assert.Equal(t, 1e-6, c.RMSNormEps)
		assert.False(t, c.TiedEmbedding)
		assert.Equal(t, 8.0, c.RopeScaling.Factor)
		assert.Equal(t, []int{7}, c.EOS)
	})
	t.Run("default rope", func(t *testing.T) {
		raw := llama32Config()
		raw["rope_scaling"] = nil
		delete(raw, "rope_theta")
		c, err := LoadConfig(writeConfigDir(t, raw, nil))
		require.NoError(t, err)
		assert.Nil(t, c.RopeScaling)
		assert.Equal(t, 10000.0, c.RopeTheta)
	})
}

func TestLoadConfigRefusals(t *testing.T) {
	cases := []struct {
		name string
		edit map[string]any // nil value deletes the key
		gen  any
		want string
	}{
		{"another architecture", map[string]any{"architectures": []string{"Qwen2ForCausalLM"}}, nil, "architectures [Qwen2ForCausalLM] is not supported"},
		{"no architecture", map[string]any{"architectures": nil, "model_type": "mistral"}, nil, `model_type is "mistral"`},
		{"a billion layers", map[string]any{"num_hidden_layers": 1_000_000_000}, nil, "num_hidden_layers 1000000000 is outside"},
		{"absurd vocab", map[string]any{"vocab_size": int64(1) << 40}, nil, "vocab_size"},
		{"negative hidden", map[string]any{"hidden_size": -5}, nil, "hidden_size -5 is outside"},
		{"fractional heads", map[string]any{"num_attention_heads": 32.5}, nil, "num_attention_heads"},
		{"missing vocab", map[string]any{"vocab_size": nil}, nil, "vocab_size is missing"},
		{"gqa mismatch", map[string]any{"num_key_value_heads": 5}, nil, "not a multiple of num_key_value_heads 5"},
		{"odd head_dim", map[string]any{"head_dim": 63}, nil, "head_dim 63 must be even"},
		{"derived head_dim does not divide", map[string]any{"head_dim": nil, "hidden_size": 2050}, nil, "not a multiple of num_attention_heads"},
		{"too many parameters", map[string]any{"hidden_size": 65536, "intermediate_size": 1 << 20, "num_hidden_layers": 1024}, nil, "parameters, more than"},
		{"yarn rope", map[string]any{"rope_scaling": map[string]any{"rope_type": "yarn", "factor": 4.0}}, nil, `rope_type "yarn" is not supported`},
		{"llama3 rope missing a factor", map[string]any{"rope_scaling": map[string]any{"rope_type": "llama3", "factor": 32.0}}, nil, "llama3 needs factor"},
		{"bad eps", map[string]any{"rms_norm_eps": 0}, nil, "rms_norm_eps 0 is outside"},
		{"attention bias", map[string]any{"attention_bias": true}, nil, "attention_bias"},
		{"gelu", map[string]any{"hidden_act": "gelu"}, nil, `hidden_act "gelu"`},
		{"eos outside vocab", nil, `{"eos_token_id": [5, 999999999]}`, "generation_config.json: eos_token_id: id 999999999 is outside the vocabulary"},
		{"eos wrong type", nil, `{"eos_token_id": "x"}`, "generation_config.json: eos_token_id"},
		{"no eos anywhere", map[string]any{"eos_token_id": nil}, `{}`, "no eos_token_id"},
		{"bad generation json", nil, `{`, "generation_config.json"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			raw := llama32Config()
			maps.Copy(raw, tc.edit)
			for k, v := range tc.edit {
				if v == nil {
					delete(raw, k)
				}
			}
			_, err := LoadConfig(writeConfigDir(t, raw, tc.gen))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.Contains(t, err.Error(), ".json")
		})
	}
	t.Run("not json", func(t *testing.T) {
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(dir, "config.json"), []byte("{nope"), 0o644))
		_, err := LoadConfig(dir)
		assert.ErrorContains(t, err, "config.json")
	})
	t.Run("missing", func(t *testing.T) {
		_, err := LoadConfig(t.TempDir())
		assert.ErrorContains(t, err, "config.json")
	})
}
