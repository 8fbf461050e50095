package llama

import (
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/batchtrans/batchtrans/engine/backend"
	"github.com/batchtrans/batchtrans/engine/kernels"
)

// minMargin is the top-2 logit gap below which the reference's argmax is a
// near-tie: greedy comparison stops at the first such step.
const minMargin = 1e-3

// greedyIDs prefills the prompt and decodes n tokens greedily with the KV
// cache, EOS ignored, as the reference did. It also returns the logits of
// the first step.
func greedyIDs(t *testing.T, m *Model, prompt []int, n int) ([]int, []float32) {
	t.Helper()
	ws := &Workspace{}
	st := m.NewState()
	require.NoError(t, m.Forward(ws, []Step{{State: st, Tokens: prompt, Out: backend.Logits}}))
	first := append([]float32(nil), st.Logits()...)
	out := make([]int, 0, n)
	for range n {
		best := 0
		for i, v := range st.Logits() {
			if v > st.Logits()[best] {
				best = i
			}
		}
		out = append(out, best)
		if len(out) == n {
			break
		}
		require.NoError(t, m.Forward(ws, []Step{{State: st, Tokens: []int{best}, Out: backend.Logits}}))
	}
	return out, first
}

// comparable is how many leading steps of a reference case are free of
// near-ties.
func comparable(c refCase) int {
	for i, mg := range c.Margins {
		if mg < minMargin {
			return i
		}
	}
	return len(c.OutputIDs)
}

// TestParityWithTransformers runs the fixtures' chat-templated prompts
// through the loaded (and merged) model in f32: greedy generations must equal
// transformers + peft token for token up to the first near-tie, and
// first-step logits must agree to 1e-4 of their scale. In bf16 the agreement
// rate is measured and logged.
func TestParityWithTransformers(t *testing.T) {
	for _, name := range refFixtures {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			doc, modelDir, adapterDir := readRef(t, name)
			cfg, w, err := Load(modelDir, adapterDir, kernels.F32)
			require.NoError(t, err)
			m, err := NewModel(cfg, w)
			require.NoError(t, err)

			compared, worstRel := 0, 0.0
			for i, c := range doc.Cases {
				got, first := greedyIDs(t, m, c.PromptIDs, len(c.OutputIDs))
				k := comparable(c)
				compared += k
				assert.Equal(t, c.OutputIDs[:k], got[:k], "case %d (%q): greedy ids", i, c.PromptText[len(c.PromptText)-min(60, len(c.PromptText)):])
				for _, fl := range doc.FirstStepLogits {
					if fl.Case != i {
						continue
					}
					require.Len(t, first, len(fl.Logits))
					scale := 0.0
					for _, v := range fl.Logits {
						scale = math.Max(scale, math.Abs(v))
					}
					worst := 0.0
					for j, v := range fl.Logits {
						worst = math.Max(worst, math.Abs(float64(first[j])-v))
					}
					worstRel = math.Max(worstRel, worst/scale)
					assert.LessOrEqual(t, worst/scale, 1e-4, "case %d: first-step logits, max error %g of scale %g", i, worst, scale)
				}
			}
			assert.Greater(t, compared, 20*10, "too few comparable steps")
			t.Logf("f32: %d cases, %d greedy steps compared, first-step logits max error %.2g of their scale", len(doc.Cases), compared, worstRel)

			// bf16 and q8: the same prompts, agreement reported, not required;
			// bf16 also against transformers in bfloat16 where that
			// reference is present (gen_fixtures.py --bf16).
			ref16 := readRefBF16(t, name)
			for _, dt := range []kernels.DType{kernels.BF16, kernels.Q8} {
				cfgq, wq, err := Load(modelDir, adapterDir, dt)
				require.NoError(t, err)
				mq, err := NewModel(cfgq, wq)
				require.NoError(t, err)
				exact, steps, agree := 0, 0, 0
				var vs16 agreement
				for i, c := range doc.Cases {
					got, first := greedyIDs(t, mq, c.PromptIDs, len(c.OutputIDs))
					k := comparable(c)
					same := true
					for j := range k {
						if got[j] != c.OutputIDs[j] {
							same = false
							break
						}
						agree++
					}
					steps += k
					if same {
						exact++
					}
					if dt == kernels.BF16 && ref16 != nil {
						vs16.add(ref16, i, got, first)
					}
				}
				if dt == kernels.BF16 && ref16 != nil {
					t.Logf("bf16 against transformers bf16: %d/%d prompts token-exact over its comparable steps; %d/%d leading tokens agree; first-step logits max error %.2g of their scale",
						vs16.exact, len(ref16.Cases), vs16.agree, vs16.steps, vs16.worstRel)
				}
				t.Logf("%v weights: %d/%d prompts token-exact over the comparable steps; %d/%d leading tokens agree", dt, exact, len(doc.Cases), agree, steps)
			}
		})
	}
}

// readRefBF16 reads the transformers bfloat16 reference of fixture name, or
// returns nil when it has not been generated.
func readRefBF16(t *testing.T, name string) *refDoc {
	t.Helper()
	path := filepath.Join("testdata", "ref", name+".bf16.json.gz")
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		t.Logf("no %s: bf16 agreement with transformers bf16 not measured", path)
		return nil
	}
	return readRefFile(t, path)
}

// agreement counts how far greedy generations follow a reference's.
type agreement struct {
	exact, steps, agree int
	worstRel            float64
}

// add compares the generation got (and its first-step logits) of ref's case
// i, up to the reference's first near-tie.
func (a *agreement) add(ref *refDoc, i int, got []int, first []float32) {
	c := ref.Cases[i]
	k := min(comparable(c), len(got))
	same := true
	for j := range k {
		if got[j] != c.OutputIDs[j] {
			same = false
			break
		}
		a.agree++
	}
	a.steps += k
	if same {
		a.exact++
	}
	for _, fl := range ref.FirstStepLogits {
		if fl.Case != i || len(fl.Logits) != len(first) {
			continue
		}
		scale, worst := 0.0, 0.0
		for j, v := range fl.Logits {
			scale = math.Max(scale, math.Abs(v))
			worst = math.Max(worst, math.Abs(float64(first[j])-v))
		}
		a.worstRel = math.Max(a.worstRel, worst/scale)
	}
}
