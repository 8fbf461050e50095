package engine

import (
	"compress/gzip"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/batchtrans/batchtrans/engine/kernels"
)

// The reference generations of transformers + peft on the engine/llama
// fixtures (written by engine/llama/testdata/gen_fixtures.py).
type refDoc struct {
	Model   string  `json:"model"`
	Adapter *string `json:"adapter"`
	Date    string  `json:"date"`
	EOSIDs  []int   `json:"eos_ids"` // every EOS id of the tokenizer

	Cases []struct {
		Messages []struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"messages"`
		PromptIDs []int     `json:"prompt_ids"`
		OutputIDs []int     `json:"output_ids"`
		Margins   []float64 `json:"margins"`
	} `json:"cases"`
}

const fixtures = "llama/testdata"

func readRef(t *testing.T, name string) (doc refDoc, model, adapter string) {
	t.Helper()
	f, err := os.Open(filepath.Join(fixtures, "ref", name+".json.gz"))
	require.NoError(t, err)
	defer f.Close()
	zr, err := gzip.NewReader(f)
	require.NoError(t, err)
	require.NoError(t, json.NewDecoder(zr).Decode(&doc))
	model = filepath.Join(fixtures, doc.Model)
	if doc.Adapter != nil {
		adapter = filepath.Join(fixtures, *doc.Adapter)
	}
	return doc, model, adapter
}

// TestLoadGenerateMatchesTransformers loads the fixture models through the
// front door (tokenizer, chat template, weights, adapter) and runs every
// reference conversation at once: prompt ids must equal transformers'
// apply_chat_template ids exactly, and greedy f32 outputs its generations up
// to the first near-tie or EOS.
func TestLoadGenerateMatchesTransformers(t *testing.T) {
	defer kernels.Use(kernels.Impl())
	for _, name := range []string{"tiny-a", "tiny-b+b-rslora"} {
		for _, impl := range kernels.Impls() {
			t.Run(name+"/"+impl, func(t *testing.T) {
				loadGenerateMatches(t, name, impl)
			})
		}
	}
}

// loadGenerateMatches is TestLoadGenerateMatchesTransformers for one
// fixture on one kernel set.
func loadGenerateMatches(t *testing.T, name, impl string) {
	doc, model, adapter := readRef(t, name)
	m, err := Load(Options{ModelDir: model, AdapterDir: adapter, DType: "f32", MaxBatch: 4, StepTokens: 96, Kernels: impl})
	require.NoError(t, err)
	require.Subset(t, doc.EOSIDs, m.Config().EOS)
	results := make([]Result, len(doc.Cases))
	var wg sync.WaitGroup
	for i, c := range doc.Cases {
		req := Request{Date: doc.Date, MaxNewTokens: len(c.OutputIDs)}
		for _, msg := range c.Messages {
			req.Messages = append(req.Messages, Message{Role: msg.Role, Content: msg.Content})
		}
		wg.Go(func() {
			var err error
			results[i], err = m.Generate(t.Context(), req)
			assert.NoError(t, err, "case %d", i)
		})
	}
	wg.Wait()
	compared := 0
	for i, c := range doc.Cases {
		res := results[i]
		if strings.Contains(c.Messages[1].Content, "<|eot_id|>") {
			// transformers turns special-token strings in message
			// contents into control tokens; the engine keeps them text.
			eot := m.Tokenizer().Encode("<|eot_id|>")
			assert.Greater(t, len(eot), 1, "literal <|eot_id|> is several tokens")
			assert.Equal(t, count(c.PromptIDs, 504)-1, count(res.PromptIDs, 504), "case %d: one control token fewer", i)
			continue
		}
		require.Equal(t, c.PromptIDs, res.PromptIDs, "case %d: prompt ids", i)
		k := len(c.OutputIDs)
		for j, mg := range c.Margins {
			if mg < 1e-3 {
				k = j
				break
			}
		}
		if e := slices.IndexFunc(c.OutputIDs, func(id int) bool { return slices.Contains(m.Config().EOS, id) }); e >= 0 && e < k {
			// The engine stops at EOS; the reference ran on.
			k = e + 1
			assert.Equal(t, FinishStop, res.FinishReason, "case %d", i)
			assert.Equal(t, c.OutputIDs[:k], res.OutputIDs, "case %d: output ids", i)
			assert.Equal(t, textOf(m, c.OutputIDs[:k-1]), res.Text, "case %d: text", i)
		} else {
			require.GreaterOrEqual(t, len(res.OutputIDs), k, "case %d", i)
			assert.Equal(t, c.OutputIDs[:k], res.OutputIDs[:k], "case %d: output ids", i)
			if k == len(c.OutputIDs) {
				assert.Equal(t, FinishLength, res.FinishReason, "case %d", i)
				assert.Equal(t, textOf(m, c.OutputIDs), res.Text, "case %d: text", i)
			}
		}
		compared += k
	}
	assert.Greater(t, compared, 10*len(doc.Cases), "too few comparable tokens")
}

// textOf decodes ids without their special tokens.
func textOf(m *Model, ids []int) string {
	var keep []int
	for _, id := range ids {
		if !m.Tokenizer().IsSpecial(id) {
			keep = append(keep, id)
		}
	}
	return m.Tokenizer().Decode(keep)
}

func count(ids []int, id int) int {
	n := 0
	for _, x := range ids {
		if x == id {
			n++
		}
	}
	return n
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	_, err := Load(Options{ModelDir: dir})
	require.Error(t, err)
	assert.Contains(t, err.Error(), filepath.Join(dir, "tokenizer.json"))

	_, err = Load(Options{ModelDir: filepath.Join(fixtures, "models", "tiny-a"), DType: "f16"})
	assert.ErrorContains(t, err, `unknown dtype "f16"`)

	_, err = Load(Options{ModelDir: filepath.Join(fixtures, "models", "tiny-a"), Kernels: "sse9"})
	assert.ErrorContains(t, err, `no "sse9" implementation`)
}

func TestTextSkipsSpecialTokens(t *testing.T) {
	_, model, _ := readRef(t, "tiny-a")
	m, err := Load(Options{ModelDir: model, DType: "f32"})
	require.NoError(t, err)
	c := m.codec
	hello := m.Tokenizer().Encode("Hello")
	hdr, ok := m.Tokenizer().TokenID("<|start_header_id|>")
	require.True(t, ok)
	ids := append(append([]int{hdr}, hello...), hdr)
	assert.Equal(t, "Hello", c.decode(ids))
	assert.Equal(t, "Hello", c.decode(hello))
}

func TestNoTemplatePrompt(t *testing.T) {
	_, model, _ := readRef(t, "tiny-b")
	m, err := Load(Options{ModelDir: model, DType: "bf16"})
	require.NoError(t, err)
	text := "plain <|eot_id|> text"
	res, err := m.Generate(t.Context(), Request{NoTemplate: true, Messages: []Message{{Role: "user", Content: text}}, MaxNewTokens: 3})
	require.NoError(t, err)
	want := append([]int{m.Config().BOS}, m.Tokenizer().Encode(text)...)
	assert.Equal(t, want, res.PromptIDs, "BOS then the literal text")
	assert.NotContains(t, res.PromptIDs[1:], m.Config().BOS)
}
