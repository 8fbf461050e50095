package examples

import (
	"compress/gzip"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/batchtrans/batchtrans/engine"
)

const (
	baseDir     = "models/tiny-translator/base"
	adapterDir  = "models/tiny-translator/adapter-de"
	parityFile  = "models/tiny-translator/testdata/parity.json.gz"
	heldoutFile = "data/heldout-de.jsonl"
)

// minMargin is the top-2 logit gap below which the reference's greedy
// choice is a near-tie that float32 rounding may flip: the comparison of a
// case stops at its first such step.
const minMargin = 1e-3

// parityFixture is what examples/train/train.py writes: greedy float32
// generations of transformers + peft (adapter merged) on the CPU.
type parityFixture struct {
	Date         string       `json:"date"`
	MaxNewTokens int          `json:"max_new_tokens"`
	EOSIDs       []int        `json:"eos_ids"`
	Cases        []parityCase `json:"cases"`      // base + adapter-de
	BaseCases    []parityCase `json:"base_cases"` // base alone
}

type parityCase struct {
	ID           string    `json:"id"`
	System       string    `json:"system"`
	User         string    `json:"user"`
	Prompt       string    `json:"prompt"`
	PromptIDs    []int     `json:"prompt_ids"`
	OutputIDs    []int     `json:"output_ids"` // ends with the EOS id when FinishReason is "stop"
	FinishReason string    `json:"finish_reason"`
	Text         string    `json:"text"`
	Margins      []float64 `json:"margins"`
}

func loadParity(t *testing.T) parityFixture {
	t.Helper()
	f, err := os.Open(parityFile)
	require.NoError(t, err)
	defer f.Close()
	zr, err := gzip.NewReader(f)
	require.NoError(t, err)
	var fx parityFixture
	require.NoError(t, json.NewDecoder(zr).Decode(&fx))
	require.NotEmpty(t, fx.Cases)
	require.NotEmpty(t, fx.BaseCases)
	require.Positive(t, fx.MaxNewTokens)
	return fx
}

// comparableSteps is how many leading generated tokens of c are free of
// near-ties, and whether that is all of them.
func comparableSteps(c parityCase) (int, bool) {
	for i, m := range c.Margins {
		if m < minMargin {
			return i, false
		}
	}
	return len(c.OutputIDs), true
}

func loadModel(t *testing.T, adapter string) *engine.Model {
	t.Helper()
	m, err := engine.Load(engine.Options{ModelDir: baseDir, AdapterDir: adapter, DType: "f32"})
	require.NoError(t, err)
	return m
}

func request(fx parityFixture, c parityCase) engine.Request {
	return engine.Request{
		Messages: []engine.Message{
			{Role: "system", Content: c.System},
			{Role: "user", Content: c.User},
		},
		Date:         fx.Date,
		MaxNewTokens: fx.MaxNewTokens,
	}
}

// checkCase compares one engine result with its reference.
func checkCase(t *testing.T, c parityCase, res engine.Result) {
	t.Helper()
	assert.Equal(t, c.PromptIDs, res.PromptIDs, "prompt ids (chat template + tokenizer)")
	n, whole := comparableSteps(c)
	require.GreaterOrEqual(t, len(res.OutputIDs), n, "output shorter than the reference's tie-free prefix")
	assert.Equal(t, c.OutputIDs[:n], res.OutputIDs[:n], "greedy output ids")
	if whole {
		assert.Equal(t, c.OutputIDs, res.OutputIDs)
		assert.Equal(t, c.FinishReason, res.FinishReason)
		assert.Equal(t, c.Text, res.Text)
	} else {
		t.Logf("near-tie at step %d of %d: compared the first %d tokens", n, len(c.OutputIDs), n)
	}
}

// TestBundledModelMatchesTransformers: the bundled model, loaded in float32
// with its German adapter merged (and without it), generates greedily the
// same token ids as transformers + peft, for prompts the engine renders and
// tokenizes itself. The adapter cases run concurrently, so sequences of
// unequal lengths share batches and stop at EOS at different steps.
func TestBundledModelMatchesTransformers(t *testing.T) {
	fx := loadParity(t)
	for _, c := range append(append([]parityCase(nil), fx.Cases...), fx.BaseCases...) {
		require.Equal(t, len(c.OutputIDs), len(c.Margins), "case %s: one margin per output token", c.ID)
		require.Equal(t, "stop", c.FinishReason, "case %s: the reference ends at EOS", c.ID)
		require.Contains(t, fx.EOSIDs, c.OutputIDs[len(c.OutputIDs)-1])
	}

	t.Run("adapter-de concurrent", func(t *testing.T) {
		m := loadModel(t, adapterDir)
		results := make([]engine.Result, len(fx.Cases))
		errs := make([]error, len(fx.Cases))
		var wg sync.WaitGroup
		for i, c := range fx.Cases {
			wg.Go(func() {
				results[i], errs[i] = m.Generate(t.Context(), request(fx, c))
			})
		}
		wg.Wait()
		lengths := map[int]bool{}
		for i, c := range fx.Cases {
			t.Run(c.ID[:8], func(t *testing.T) {
				require.NoError(t, errs[i])
				checkCase(t, c, results[i])
			})
			lengths[len(c.OutputIDs)] = true
		}
		assert.Greater(t, len(lengths), 1, "the cases should stop at different lengths")
	})

	t.Run("base alone", func(t *testing.T) {
		m := loadModel(t, "")
		for _, c := range fx.BaseCases {
			t.Run(c.ID[:8], func(t *testing.T) {
				res, err := m.Generate(t.Context(), request(fx, c))
				require.NoError(t, err)
				checkCase(t, c, res)
			})
		}
	})
}

// TestBundleIsComplete checks what the demo and the docs promise about the
// bundle: the files of a Hugging Face folder and a PEFT adapter, under 20 MB
// together.
func TestBundleIsComplete(t *testing.T) {
	total := int64(0)
	for _, p := range []string{
		"config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
	} {
		st, err := os.Stat(filepath.Join(baseDir, p))
		require.NoError(t, err)
		total += st.Size()
	}
	for _, p := range []string{"adapter_config.json", "adapter_model.safetensors"} {
		st, err := os.Stat(filepath.Join(adapterDir, p))
		require.NoError(t, err)
		total += st.Size()
	}
	assert.Less(t, total, int64(20_000_000), "base + adapter bytes")

	var ac struct {
		PeftType string `json:"peft_type"`
		R        int    `json:"r"`
		UseDora  bool   `json:"use_dora"`
	}
	data, err := os.ReadFile(filepath.Join(adapterDir, "adapter_config.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, &ac))
	assert.Equal(t, "LORA", ac.PeftType)
	assert.Contains(t, []int{8, 16}, ac.R)
	assert.False(t, ac.UseDora)
}
