package llama

import (
	"errors"
	"fmt"
	"github.com/batchtrans/batchtrans/engine/backend"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/batchtrans/batchtrans/engine/kernels"
)

// tinyConfig is a Llama-3.2-shaped config scaled down: GQA, llama3 RoPE.
func tinyConfig() *Config {
	return &Config{
		Vocab: 97, Hidden: 32, Intermediate: 48, Layers: 2,
		Heads: 4, KVHeads: 2, HeadDim: 8, MaxPositions: 64,
		RMSNormEps: 1e-5, RopeTheta: 500000,
		RopeScaling:   &RopeScaling{Type: "llama3", Factor: 32, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositionEmbeddings: 16},
		TiedEmbedding: true, BOS: 1, EOS: []int{2},
	}
}

// randomWeights builds weights of cfg's shapes with values N(0, std^2).
func randomWeights(cfg *Config, seed uint64, dt kernels.DType) *Weights {
	rng := rand.New(rand.NewPCG(seed, 7))
	mat := func(rows, cols int, std float64) *kernels.Matrix {
		d := make([]float32, rows*cols)
		for i := range d {
			d[i] = float32(rng.NormFloat64() * std)
		}
		return kernels.NewF32(rows, cols, d, dt)
	}
	vec := func(n int) []float32 {
		d := make([]float32, n)
		for i := range d {
			d[i] = float32(1 + 0.1*rng.NormFloat64())
		}
		return d
	}
	q, kv := cfg.Heads*cfg.HeadDim, cfg.KVHeads*cfg.HeadDim
	w := &Weights{Embed: mat(cfg.Vocab, cfg.Hidden, 1), Norm: vec(cfg.Hidden)}
	for range cfg.Layers {
		w.Layers = append(w.Layers, Layer{
			AttnNorm: vec(cfg.Hidden),
			Q:        mat(q, cfg.Hidden, 0.3),
			K:        mat(kv, cfg.Hidden, 0.3),
			V:        mat(kv, cfg.Hidden, 0.3),
			O:        mat(cfg.Hidden, q, 0.2),
			MLPNorm:  vec(cfg.Hidden),
			Gate:     mat(cfg.Intermediate, cfg.Hidden, 0.2),
			Up:       mat(cfg.Intermediate, cfg.Hidden, 0.2),
			Down:     mat(cfg.Hidden, cfg.Intermediate, 0.2),
		})
	}
	w.LMHead = w.Embed
	if !cfg.TiedEmbedding {
		w.LMHead = mat(cfg.Vocab, cfg.Hidden, 0.2)
	}
	return w
}

func newTiny(t *testing.T, cfg *Config, dt kernels.DType) *Model {
	t.Helper()
	m, err := NewModel(cfg, randomWeights(cfg, 1, dt))
	require.NoError(t, err)
	return m
}

func randomTokens(rng *rand.Rand, n, vocab int) []int {
	ids := make([]int, n)
	for i := range ids {
		ids[i] = rng.IntN(vocab)
	}
	return ids
}

// referenceLogits recomputes the whole sequence from scratch, without a
// cache, in float64, written the way the Hugging Face code reads: cos/sin
// duplicated over the head, rotate_half, repeat_kv, a causal mask.
func referenceLogits(cfg *Config, w *Weights, ids []int) [][]float64 {
	n, H, hd := len(ids), cfg.Hidden, cfg.HeadDim
	row := func(m *kernels.Matrix, i int) []float64 {
		f := make([]float32, m.Cols)
		m.Row(i, f)
		out := make([]float64, len(f))
		for j, v := range f {
			out[j] = float64(v)
		}
		return out
	}
	linear := func(m *kernels.Matrix, x []float64) []float64 {
		out := make([]float64, m.Rows)
		for r := range m.Rows {
			wr := row(m, r)
			for k, v := range x {
				out[r] += v * wr[k]
			}
		}
		return out
	}
	norm := func(x []float64, w []float32) []float64 {
		var ss float64
		for _, v := range x {
			ss += v * v
		}
		inv := 1 / math.Sqrt(ss/float64(len(x))+cfg.RMSNormEps)
		out := make([]float64, len(x))
		for i, v := range x {
			out[i] = v * inv * float64(w[i])
		}
		return out
	}
	inv, err := ropeFreqs(hd, cfg.RopeTheta, cfg.RopeScaling)
	if err != nil {
		panic(err)
	}
	rope := func(x []float64, pos int) []float64 {
		out := make([]float64, len(x))
		for h := 0; h < len(x)/hd; h++ {
			v := x[h*hd : (h+1)*hd]
			rot := append(neg(v[hd/2:]), v[:hd/2]...)
			for j := range hd {
				ang := float64(pos) * inv[j%(hd/2)]
				out[h*hd+j] = v[j]*math.Cos(ang) + rot[j]*math.Sin(ang)
			}
		}
		return out
	}
	x := make([][]float64, n)
	for t, id := range ids {
		x[t] = row(w.Embed, id)
	}
	for _, L := range w.Layers {
		q, k, v := make([][]float64, n), make([][]float64, n), make([][]float64, n)
		for t := range n {
			xn := norm(x[t], L.AttnNorm)
			q[t] = rope(linear(L.Q, xn), t)
			k[t] = rope(linear(L.K, xn), t)
			v[t] = linear(L.V, xn)
		}
		for t := range n {
			att := make([]float64, cfg.Heads*hd)
			for h := range cfg.Heads {
				g := h / (cfg.Heads / cfg.KVHeads) // repeat_kv
				sc := make([]float64, t+1)
				m := math.Inf(-1)
				for s := 0; s <= t; s++ {
					for j := range hd {
						sc[s] += q[t][h*hd+j] * k[s][g*hd+j]
					}
					sc[s] /= math.Sqrt(float64(hd))
					m = math.Max(m, sc[s])
				}
				var sum float64
				for s := range sc {
					sc[s] = math.Exp(sc[s] - m)
					sum += sc[s]
				}
				for s := range sc {
					for j := range hd {
						att[h*hd+j] += sc[s] / sum * v[s][g*hd+j]
					}
				}
			}
			o := linear(L.O, att)
			for i := range H {
				x[t][i] += o[i]
			}
			xn := norm(x[t], L.MLPNorm)
			g, u := linear(L.Gate, xn), linear(L.Up, xn)
			for i := range g {
				g[i] = g[i] / (1 + math.Exp(-g[i])) * u[i]
			}
			d := linear(L.Down, g)
			for i := range H {
				x[t][i] += d[i]
			}
		}
	}
	out := make([][]float64, n)
	for t := range n {
		out[t] = linear(w.LMHead, norm(x[t], w.Norm))
	}
	return out
}

func neg(v []float64) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = -x
	}
	return out
}

func TestForwardMatchesReference(t *testing.T) {
	untied := tinyConfig()
	untied.TiedEmbedding = false
	mha := tinyConfig()
	mha.KVHeads, mha.RopeScaling, mha.RopeTheta = 4, nil, 10000
	wide := tinyConfig()
	wide.Heads, wide.KVHeads, wide.HeadDim = 8, 1, 16
	cases := []struct {
		name string
		cfg  *Config
	}{
		{"gqa-llama3-tied", tinyConfig()},
		{"untied", untied},
		{"mha-default-rope", mha},
		{"mqa-wide-heads", wide},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := randomWeights(tc.cfg, 3, kernels.F32)
			m, err := NewModel(tc.cfg, w)
			require.NoError(t, err)
			ids := randomTokens(rand.New(rand.NewPCG(5, 5)), 40, tc.cfg.Vocab)
			want := referenceLogits(tc.cfg, w, ids)

			// Prefill 30 tokens in chunks of 13, then decode one at a time,
			// checking every position's logits.
			s := m.NewState()
			ws := &Workspace{}
			check := func(pos int) {
				var scale float64
				for _, v := range want[pos] {
					scale = math.Max(scale, math.Abs(v))
				}
				for i, v := range want[pos] {
					require.InDelta(t, v, float64(s.Logits()[i]), 1e-4*scale, "position %d logit %d", pos, i)
				}
			}
			for start := 0; start < 30; start += 13 {
				end := min(start+13, 30)
				require.NoError(t, m.Forward(ws, []Step{{State: s, Tokens: ids[start:end], Out: backend.Logits}}))
				check(end - 1)
			}
			for pos := 30; pos < len(ids); pos++ {
				require.NoError(t, m.Forward(ws, []Step{{State: s, Tokens: ids[pos : pos+1], Out: backend.Logits}}))
				check(pos)
			}
			assert.Equal(t, len(ids), s.Pos())
		})
	}
}

// runAlone feeds ids to a fresh state: prompt in one chunk, then the rest
// one token at a time, returning the logits after every step.
func runAlone(t *testing.T, m *Model, ids []int, prompt int) [][]float32 {
	s := m.NewState()
	ws := &Workspace{}
	var out [][]float32
	require.NoError(t, m.Forward(ws, []Step{{State: s, Tokens: ids[:prompt], Out: backend.Logits}}))
	out = append(out, append([]float32(nil), s.Logits()...))
	for i := prompt; i < len(ids); i++ {
		require.NoError(t, m.Forward(ws, []Step{{State: s, Tokens: ids[i : i+1], Out: backend.Logits}}))
		out = append(out, append([]float32(nil), s.Logits()...))
	}
	return out
}

func TestForwardBatchInvariance(t *testing.T) {
	for _, tc := range []struct {
		dt       kernels.DType
		parallel bool
	}{{kernels.F32, false}, {kernels.BF16, false}, {kernels.F32, true}, {kernels.Q8, true}} {
		dt := tc.dt
		t.Run(fmt.Sprintf("%s/parallel=%v", dt, tc.parallel), func(t *testing.T) {
			if tc.parallel {
				// Every step's attention spread over the threads.
				old := minParallelAttention
				minParallelAttention = 0
				defer func() { minParallelAttention = old }()
			}
			m := newTiny(t, tinyConfig(), dt)
			rng := rand.New(rand.NewPCG(9, 9))
			const nseq = 6
			type seq struct {
				ids    []int
				prompt int
				want   [][]float32
				s      *State
				fed    int // tokens fed so far
				got    [][]float32
			}
			seqs := make([]*seq, nseq)
			for i := range seqs {
				n := 10 + rng.IntN(30)
				sq := &seq{ids: randomTokens(rng, n, 97), prompt: 1 + rng.IntN(n-1)}
				sq.want = runAlone(t, m, sq.ids, sq.prompt)
				sq.s = m.NewState()
				seqs[i] = sq
			}
			// Run them together: sequences start at different steps, prompts
			// go in random chunks, decode tokens share steps with prefills.
			ws := &Workspace{}
			for step := 0; ; step++ {
				var steps []Step
				var who []*seq
				for i, sq := range seqs {
					if step < i || sq.fed == len(sq.ids) {
						continue
					}
					n := 1
					if sq.fed < sq.prompt {
						n = min(1+rng.IntN(8), sq.prompt-sq.fed)
					}
					end := sq.fed + n
					steps = append(steps, Step{State: sq.s, Tokens: sq.ids[sq.fed:end], Out: outIf(end >= sq.prompt)})
					who = append(who, sq)
					sq.fed = end
				}
				if len(steps) == 0 {
					break
				}
				rng.Shuffle(len(steps), func(i, j int) {
					steps[i], steps[j] = steps[j], steps[i]
					who[i], who[j] = who[j], who[i]
				})
				require.NoError(t, m.Forward(ws, steps))
				for i, st := range steps {
					if st.Out != backend.NoOutput {
						who[i].got = append(who[i].got, append([]float32(nil), st.State.Logits()...))
					}
				}
			}
			for i, sq := range seqs {
				require.Len(t, sq.got, len(sq.want), "sequence %d", i)
				for j := range sq.want {
					for k := range sq.want[j] {
						if math.Float32bits(sq.want[j][k]) != math.Float32bits(sq.got[j][k]) {
							t.Fatalf("sequence %d step %d logit %d: batched %v, alone %v", i, j, k, sq.got[j][k], sq.want[j][k])
						}
					}
				}
			}
		})
	}
}

func TestForwardErrors(t *testing.T) {
	m := newTiny(t, tinyConfig(), kernels.F32)
	other := newTiny(t, tinyConfig(), kernels.F32)
	ws := &Workspace{}
	s := m.NewState()
	require.NoError(t, m.Forward(ws, []Step{{State: s, Tokens: []int{1, 2, 3}}}))
	long := make([]int, 62)
	cases := []struct {
		name  string
		steps []Step
		want  string
	}{
		{"context full", []Step{{State: s, Tokens: long}}, "exceed 64 positions"},
		{"token out of range", []Step{{State: s, Tokens: []int{97}}}, "token id 97 outside"},
		{"negative token", []Step{{State: s, Tokens: []int{-1}}}, "token id -1 outside"},
		{"no tokens", []Step{{State: s}}, "no tokens"},
		{"shared state", []Step{{State: s, Tokens: []int{1}}, {State: s, Tokens: []int{2}}}, "share one state"},
		{"foreign state", []Step{{State: other.NewState(), Tokens: []int{1}}}, "another model"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := m.Forward(ws, tc.steps)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.Equal(t, 3, s.Pos(), "a failed step must not move the state")
		})
	}
	err := m.Forward(ws, []Step{{State: s, Tokens: long}})
	assert.True(t, errors.Is(err, ErrContextFull))
}

func TestNewModelShapeErrors(t *testing.T) {
	cfg := tinyConfig()
	w := randomWeights(cfg, 1, kernels.F32)
	w.Layers[1].K = kernels.NewF32(3, cfg.Hidden, make([]float32, 3*cfg.Hidden), kernels.F32)
	w.Layers[0].MLPNorm = w.Layers[0].MLPNorm[:5]
	_, err := NewModel(cfg, w)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "layers.1.self_attn.k_proj is 3x32, want 16x32")
	assert.Contains(t, err.Error(), "layers.0.post_attention_layernorm has 5 values, want 32")

	bad := tinyConfig()
	bad.KVHeads = 3
	_, err = NewModel(bad, randomWeights(tinyConfig(), 1, kernels.F32))
	assert.ErrorContains(t, err, "not divisible")

	rope := tinyConfig()
	rope.RopeScaling = &RopeScaling{Type: "yarn", Factor: 4}
	_, err = NewModel(rope, randomWeights(rope, 1, kernels.F32))
	assert.ErrorContains(t, err, `unsupported rope_scaling type "yarn"`)
}

func TestResetReusesState(t *testing.T) {
	m := newTiny(t, tinyConfig(), kernels.F32)
	ids := randomTokens(rand.New(rand.NewPCG(1, 2)), 20, 97)
	want := runAlone(t, m, ids, 20)[0]
	s := m.NewState()
	ws := &Workspace{}
	require.NoError(t, m.Forward(ws, []Step{{State: s, Tokens: ids[5:], Out: backend.Logits}}))
	s.Reset()
	require.NoError(t, m.Forward(ws, []Step{{State: s, Tokens: ids, Out: backend.Logits}}))
	assert.Equal(t, want, s.Logits())
}

func BenchmarkForwardDecode(b *testing.B) {
	cfg := &Config{Vocab: 1000, Hidden: 256, Intermediate: 768, Layers: 4, Heads: 8, KVHeads: 2, HeadDim: 32,
		MaxPositions: 4096, RMSNormEps: 1e-5, RopeTheta: 500000}
	m, err := NewModel(cfg, randomWeights(cfg, 1, kernels.BF16))
	require.NoError(b, err)
	for _, batch := range []int{1, 8} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			ws := &Workspace{}
			states := make([]*State, batch)
			steps := make([]Step, batch)
			for i := range states {
				states[i] = m.NewState()
				require.NoError(b, m.Forward(ws, []Step{{State: states[i], Tokens: make([]int, 64)}}))
				steps[i] = Step{State: states[i], Tokens: []int{3}, Out: backend.Logits}
			}
			n := 0
			for b.Loop() {
				if states[0].Pos() >= cfg.MaxPositions {
					for _, s := range states {
						s.Reset()
					}
				}
				if err := m.Forward(ws, steps); err != nil {
					b.Fatal(err)
				}
				n += batch
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "tok/s")
		})
	}
}

// The fused Q|K|V and Gate|Up products give the same logits, bit for bit,
// as seven separate products per layer; shapes that cannot be fused (rows
// not a multiple of the kernels' panel) fall back to the separate ones.
func TestFusedMatchesUnfused(t *testing.T) {
	ragged := tinyConfig()
	ragged.Intermediate = 40
	for _, dt := range []kernels.DType{kernels.F32, kernels.BF16, kernels.Q8} {
		for name, cfg := range map[string]*Config{"tiny": tinyConfig(), "ragged": ragged} {
			w := randomWeights(cfg, 5, dt)
			fuseMatrices = false
			plain, err := NewModel(cfg, w)
			fuseMatrices = true
			require.NoError(t, err)
			fused, err := NewModel(cfg, w)
			require.NoError(t, err)
			require.Nil(t, plain.fused)
			if name == "ragged" {
				require.Nil(t, fused.fused, "40 gate rows are not a multiple of 16: no fusion")
			} else {
				require.NotNil(t, fused.fused)
			}
			ids := randomTokens(rand.New(rand.NewPCG(3, 3)), 40, cfg.Vocab)
			want := runAlone(t, plain, ids, 25)
			got := runAlone(t, fused, ids, 25)
			for i := range want {
				for j := range want[i] {
					if math.Float32bits(got[i][j]) != math.Float32bits(want[i][j]) {
						t.Fatalf("%s %s step %d logit %d: fused %v, separate %v", dt, name, i, j, got[i][j], want[i][j])
					}
				}
			}
		}
	}
}

// A decode step allocates nothing once its buffers have grown: the matrix
// products, the element-wise steps and attention all run on the kernel
// pool through functions bound once per Workspace.
func TestForwardDecodeDoesNotAllocate(t *testing.T) {
	for _, parallelAttention := range []bool{false, true} {
		if parallelAttention {
			old := minParallelAttention
			minParallelAttention = 0
			defer func() { minParallelAttention = old }()
		}
		cfg := tinyConfig()
		cfg.Hidden, cfg.Intermediate, cfg.Heads, cfg.KVHeads, cfg.HeadDim, cfg.MaxPositions = 256, 1024, 8, 2, 32, 512
		m := newTiny(t, cfg, kernels.BF16)
		states := []*State{m.NewState(), m.NewState(), m.NewState()}
		ws := &Workspace{}
		var steps []Step
		for _, s := range states {
			require.NoError(t, m.Forward(ws, []Step{{State: s, Tokens: []int{1, 2, 3, 4, 5, 6, 7, 8}, Out: backend.Logits}}))
			steps = append(steps, Step{State: s, Tokens: []int{9}, Out: backend.Logits})
		}
		require.NoError(t, m.Forward(ws, steps))
		n := testing.AllocsPerRun(40, func() {
			if err := m.Forward(ws, steps); err != nil {
				t.Fatal(err)
			}
		})
		assert.Zero(t, n, "allocations per decode step (parallel attention %v)", parallelAttention)
	}
}

// outIf asks for logits when b holds.
func outIf(b bool) backend.Output {
	if b {
		return backend.Logits
	}
	return backend.NoOutput
}
