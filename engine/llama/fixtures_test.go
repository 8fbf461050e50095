package llama

import (
	"compress/gzip"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/batchtrans/batchtrans/engine/kernels"
)

// The reference fixtures written by testdata/gen_fixtures.py with
// transformers + peft: base models, adapters and what the merged model does.
type refCase struct {
	PromptText   string    `json:"prompt_text"`
	PromptIDs    []int     `json:"prompt_ids"`
	OutputIDs    []int     `json:"output_ids"`
	Margins      []float64 `json:"margins"`
	FirstEOSStep *int      `json:"first_eos_step"`
}

type refTensor struct {
	Shape   []int       `json:"shape"`
	Sum     float64     `json:"sum"`
	AbsSum  float64     `json:"abs_sum"`
	Samples [][]float64 `json:"samples"` // [row, col, value] or [i, value]
	Row0    []float64   `json:"row0"`
}

type refDoc struct {
	Model           string    `json:"model"`
	Adapter         *string   `json:"adapter"`
	EOSIDs          []int     `json:"eos_ids"`
	Cases           []refCase `json:"cases"`
	FirstStepLogits []struct {
		Case   int       `json:"case"`
		Logits []float64 `json:"logits"`
	} `json:"first_step_logits"`
	MergedWeights map[string]refTensor `json:"merged_weights"`
}

// readRefFile decodes one gzipped reference document.
func readRefFile(t *testing.T, path string) *refDoc {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	zr, err := gzip.NewReader(f)
	require.NoError(t, err)
	var doc refDoc
	require.NoError(t, json.NewDecoder(zr).Decode(&doc))
	require.GreaterOrEqual(t, len(doc.Cases), 20)
	return &doc
}

var refFixtures = []string{"tiny-a", "tiny-a+a-plain", "tiny-b", "tiny-b+b-rslora"}

func readRef(t *testing.T, name string) (*refDoc, string, string) {
	t.Helper()
	doc := *readRefFile(t, filepath.Join("testdata", "ref", name+".json.gz"))
	model := filepath.Join("testdata", doc.Model)
	adapter := ""
	if doc.Adapter != nil {
		adapter = filepath.Join("testdata", *doc.Adapter)
	}
	return &doc, model, adapter
}

// tensorOf maps a Hugging Face tensor name to the loaded weights.
func tensorOf(t *testing.T, w *Weights, name string) (m *kernels.Matrix, vec []float32) {
	t.Helper()
	switch name {
	case embedName:
		return w.Embed, nil
	case lmHeadName:
		return w.LMHead, nil
	case normName:
		return nil, w.Norm
	}
	l, ok := layerOf(name)
	require.True(t, ok, name)
	ly := &w.Layers[l]
	suffix := name[len(layerName(l, "")):]
	switch suffix {
	case sAttnNorm:
		return nil, ly.AttnNorm
	case sMLPNorm:
		return nil, ly.MLPNorm
	}
	m = map[string]*kernels.Matrix{sQ: ly.Q, sK: ly.K, sV: ly.V, sO: ly.O, sGate: ly.Gate, sUp: ly.Up, sDown: ly.Down}[suffix]
	require.NotNil(t, m, name)
	return m, nil
}

// TestLoadMatchesMergedReference checks every tensor of the loaded, merged
// model against the merged model in transformers + peft: the sums of all
// elements and sampled entries, in f32, and the rounding of each in bf16.
func TestLoadMatchesMergedReference(t *testing.T) {
	for _, name := range refFixtures {
		t.Run(name, func(t *testing.T) {
			doc, modelDir, adapterDir := readRef(t, name)
			cfg, w32, err := Load(modelDir, adapterDir, kernels.F32)
			require.NoError(t, err)
			_, w16, err := Load(modelDir, adapterDir, kernels.BF16)
			require.NoError(t, err)
			require.Len(t, doc.MergedWeights, len(expectedShapes(cfg)))
			for tname, ref := range doc.MergedWeights {
				m, vec := tensorOf(t, w32, tname)
				var vals []float32
				if m != nil {
					require.Equal(t, ref.Shape, []int{m.Rows, m.Cols}, tname)
					vals = make([]float32, m.Rows*m.Cols)
					for r := range m.Rows {
						m.Row(r, vals[r*m.Cols:(r+1)*m.Cols])
					}
				} else {
					require.Equal(t, ref.Shape, []int{len(vec)}, tname)
					vals = vec
				}
				var sum, abs float64
				for _, v := range vals {
					sum += float64(v)
					abs += math.Abs(float64(v))
				}
				assert.InDelta(t, ref.AbsSum, abs, 1e-5*ref.AbsSum, "%s abs sum", tname)
				assert.InDelta(t, ref.Sum, sum, 1e-5*ref.AbsSum, "%s sum", tname)
				for _, s := range ref.Samples {
					var got float32
					var want float64
					if m != nil {
						got, want = vals[int(s[0])*m.Cols+int(s[1])], s[2]
					} else {
						got, want = vals[int(s[0])], s[1]
					}
					assert.InDelta(t, want, float64(got), 1e-6+1e-6*math.Abs(want), "%s %v", tname, s)
				}
				for j, want := range ref.Row0 {
					assert.InDelta(t, want, float64(vals[j]), 1e-6+1e-6*math.Abs(want), "%s row 0 col %d", tname, j)
				}
				// bf16 is the f32 merge rounded once.
				if m != nil {
					m16, _ := tensorOf(t, w16, tname)
					require.Equal(t, kernels.BF16, m16.DType, tname)
					row := make([]float32, m16.Cols)
					for _, r := range []int{0, m16.Rows / 2, m16.Rows - 1} {
						m16.Row(r, row)
						for j, v := range row {
							want := kernels.BF16ToF32(kernels.F32ToBF16(vals[r*m.Cols+j]))
							if v != want {
								t.Fatalf("%s bf16 [%d][%d] = %v, want round(%v) = %v", tname, r, j, v, vals[r*m.Cols+j], want)
							}
						}
					}
				}
			}
			if cfg.TiedEmbedding && doc.MergedWeights[lmHeadName].Sum == doc.MergedWeights[embedName].Sum {
				assert.Same(t, w32.Embed, w32.LMHead, "tied embeddings share one matrix")
				assert.Same(t, w16.Embed, w16.LMHead)
			}
		})
	}
}

func TestFixtureConfigs(t *testing.T) {
	a, err := LoadConfig("testdata/models/tiny-a")
	require.NoError(t, err)
	assert.Equal(t, &Config{
		Vocab: 512, Hidden: 128, Intermediate: 256, Layers: 2, Heads: 8, KVHeads: 2, HeadDim: 32,
		MaxPositions: 131072, RMSNormEps: 1e-5, RopeTheta: 500000,
		RopeScaling:   &RopeScaling{Type: "llama3", Factor: 32, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositionEmbeddings: 8192},
		TiedEmbedding: true, BOS: 500, EOS: []int{501, 504},
	}, a)
	b, err := LoadConfig("testdata/models/tiny-b")
	require.NoError(t, err)
	assert.Equal(t, &Config{
		Vocab: 512, Hidden: 64, Intermediate: 192, Layers: 3, Heads: 4, KVHeads: 2, HeadDim: 16,
		MaxPositions: 2048, RMSNormEps: 1e-6, RopeTheta: 10000,
		TiedEmbedding: false, BOS: 500, EOS: []int{504}, // no generation_config.json: config.json's id
	}, b)

	info, err := Inspect("testdata/models/tiny-b", "testdata/adapters/b-rslora")
	require.NoError(t, err)
	assert.Equal(t, "bfloat16", info.SourceDType)
	assert.Equal(t, b.ParamCount(), info.Params)
	require.NotNil(t, info.Adapter)
	assert.Equal(t, 16, info.Adapter.Rank)
	assert.True(t, info.Adapter.RSLoRA)
	assert.Equal(t, 21, info.Adapter.Modules) // 7 modules x 3 layers
	assert.Equal(t, []string{"lm_head"}, info.Adapter.ModulesToSave)
	assert.Equal(t, "BF16", info.Adapter.DType)
	assert.Len(t, info.Adapter.Targets, 7)
}
