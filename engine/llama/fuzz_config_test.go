package llama

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// FuzzLoadConfig feeds arbitrary config.json and (when hasGen)
// generation_config.json contents to LoadConfig. Any input gives an error naming a file of the
// folder or a config whose sizes lie inside the documented limits (so that
// nothing later allocates by an unchecked number from the file).
func FuzzLoadConfig(f *testing.F) {
	tiny, err := os.ReadFile(filepath.Join("testdata", "models", "tiny-b", "config.json"))
	require.NoError(f, err)
	f.Add(tiny, []byte(nil), false)
	f.Add(tiny, []byte(`{"bos_token_id": 1, "eos_token_id": [2, 3]}`), true)
	f.Add([]byte(`{"model_type": "llama", "vocab_size": 8, "hidden_size": 4, "intermediate_size": 4, "num_hidden_layers": 1000000000, "num_attention_heads": 2}`), []byte(nil), false)
	f.Add([]byte(`{"architectures": ["LlamaForCausalLM"], "vocab_size": 8, "hidden_size": 4, "intermediate_size": 4, "num_hidden_layers": 1, "num_attention_heads": 2, "rope_parameters": {"rope_type": "llama3", "rope_theta": 1e4, "factor": 8, "low_freq_factor": 1, "high_freq_factor": 4, "original_max_position_embeddings": 64}}`), []byte(`{"eos_token_id": 99999999999}`), true)
	f.Add([]byte(`{"model_type": "llama", "vocab_size": -1}`), []byte(`[]`), true)
	dir := f.TempDir()
	cfgPath := filepath.Join(dir, "config.json")
	genPath := filepath.Join(dir, "generation_config.json")
	f.Fuzz(func(t *testing.T, cfg, gen []byte, hasGen bool) {
		require.NoError(t, os.WriteFile(cfgPath, cfg, 0o644))
		if !hasGen {
			if err := os.Remove(genPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
				require.NoError(t, err)
			}
		} else {
			require.NoError(t, os.WriteFile(genPath, gen, 0o644))
		}
		c, err := LoadConfig(dir)
		if err != nil {
			msg := err.Error()
			assert.True(t, strings.Contains(msg, cfgPath) || strings.Contains(msg, genPath), "error names no file: %s", msg)
			return
		}
		assert.True(t, c.Vocab >= 1 && c.Vocab <= maxVocab, "vocab %d", c.Vocab)
		assert.True(t, c.Hidden >= 1 && c.Hidden <= maxHidden, "hidden %d", c.Hidden)
		assert.True(t, c.Intermediate >= 1 && c.Intermediate <= maxIntermediate, "intermediate %d", c.Intermediate)
		assert.True(t, c.Layers >= 1 && c.Layers <= maxLayers, "layers %d", c.Layers)
		assert.True(t, c.Heads >= 1 && c.KVHeads >= 1 && c.Heads%c.KVHeads == 0, "heads %d/%d", c.Heads, c.KVHeads)
		assert.True(t, c.HeadDim >= 2 && c.HeadDim <= maxHeadDim && c.HeadDim%2 == 0, "head_dim %d", c.HeadDim)
		assert.True(t, c.MaxPositions >= 1 && c.MaxPositions <= maxPositions, "positions %d", c.MaxPositions)
		assert.LessOrEqual(t, c.ParamCount(), int64(maxParams))
		for _, id := range c.EOS {
			assert.True(t, id >= 0 && id < c.Vocab, "eos %d outside the vocabulary of %d", id, c.Vocab)
		}
		// The shape table is what the loader sizes its buffers by.
		for name, s := range expectedShapes(c) {
			assert.True(t, s[0] >= 1 && s[1] >= 0 && int64(s[0])*int64(max(s[1], 1)) <= int64(maxParams), "%s shape %v", name, s)
		}
	})
}

// FuzzOpenAdapter feeds arbitrary adapter_config.json contents beside real
// LoRA weights to OpenAdapter and then plans the merge into the tiny-b base
// model: an error naming the adapter's file, or a plan, never a panic.
func FuzzOpenAdapter(f *testing.F) {
	src := filepath.Join("testdata", "adapters", "b-rslora")
	cfgJSON, err := os.ReadFile(filepath.Join(src, adapterConfigFile))
	require.NoError(f, err)
	weights, err := os.ReadFile(filepath.Join(src, adapterWeights))
	require.NoError(f, err)
	base, err := LoadConfig(filepath.Join("testdata", "models", "tiny-b"))
	require.NoError(f, err)
	shapes := expectedShapes(base)
	f.Add(cfgJSON)
	f.Add([]byte(`{"peft_type": "LORA", "r": 8, "lora_alpha": 16, "target_modules": "all-linear"}`))
	f.Add([]byte(`{"peft_type": "LORA", "r": 0, "lora_alpha": 16, "target_modules": ".*\\.(q|v)_proj"}`))
	f.Add([]byte(`{"peft_type": "LORA", "r": 16, "lora_alpha": 1e308, "target_modules": ["q_proj"], "rank_pattern": {"q_proj": -4}, "layers_to_transform": [99999999999]}`))
	f.Add([]byte(`{"peft_type": "PREFIX_TUNING"}`))
	f.Add([]byte(`{"peft_type": "LORA", "use_dora": true}`))
	dir := f.TempDir()
	require.NoError(f, os.WriteFile(filepath.Join(dir, adapterWeights), weights, 0o644))
	cfgPath := filepath.Join(dir, adapterConfigFile)
	f.Fuzz(func(t *testing.T, cfg []byte) {
		require.NoError(t, os.WriteFile(cfgPath, cfg, 0o644))
		a, err := OpenAdapter(dir)
		if err != nil {
			assert.Contains(t, err.Error(), dir, "error names no file")
			return
		}
		defer a.Close()
		if _, err := a.plan(base, shapes); err != nil {
			assert.Contains(t, err.Error(), dir, "error names no file")
		}
	})
}
