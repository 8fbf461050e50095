package llama

import (
	"fmt"
	"github.com/batchtrans/batchtrans/engine/backend"
	"math/rand/v2"
	"testing"

	"github.com/batchtrans/batchtrans/engine/kernels"
)

// llama32Shape is Llama-3.2-1B-Instruct's shape.
func llama32Shape() *Config {
	return &Config{
		Vocab: 128256, Hidden: 2048, Intermediate: 8192, Layers: 16, Heads: 32, KVHeads: 8, HeadDim: 64,
		MaxPositions: 131072, RMSNormEps: 1e-5, RopeTheta: 500000,
		RopeScaling:   &RopeScaling{Type: "llama3", Factor: 32, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositionEmbeddings: 8192},
		TiedEmbedding: true, BOS: 128000, EOS: []int{128001, 128008, 128009},
	}
}

// bigWeights fills cfg's shapes with random values in format dt, one
// matrix at a time so that no full f32 copy of the model exists.
func bigWeights(cfg *Config, dt kernels.DType) *Weights {
	rng := rand.New(rand.NewPCG(1, 2))
	mat := func(rows, cols int) *kernels.Matrix {
		d := make([]float32, rows*cols)
		for i := range d {
			d[i] = float32(rng.NormFloat64() * 0.02)
		}
		return kernels.NewF32(rows, cols, d, dt)
	}
	ones := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = 1
		}
		return v
	}
	q, kv := cfg.Heads*cfg.HeadDim, cfg.KVHeads*cfg.HeadDim
	w := &Weights{Embed: mat(cfg.Vocab, cfg.Hidden), Norm: ones(cfg.Hidden)}
	w.LMHead = w.Embed
	for range cfg.Layers {
		w.Layers = append(w.Layers, Layer{
			AttnNorm: ones(cfg.Hidden), MLPNorm: ones(cfg.Hidden),
			Q: mat(q, cfg.Hidden), K: mat(kv, cfg.Hidden), V: mat(kv, cfg.Hidden), O: mat(cfg.Hidden, q),
			Gate: mat(cfg.Intermediate, cfg.Hidden), Up: mat(cfg.Intermediate, cfg.Hidden), Down: mat(cfg.Hidden, cfg.Intermediate),
		})
	}
	return w
}

// BenchmarkLlama32 runs the forward pass of a Llama-3.2-1B-shaped model
// (random weights, built in memory: about 2.5 GB in bf16) for the shapes
// `batchtrans bench` reports: a 512-token prefill, one decoding sequence,
// and 16 sequences decoding together. Select a format with e.g.
// -bench 'Llama32/bf16'.
func BenchmarkLlama32(b *testing.B) {
	cfg := llama32Shape()
	for _, dt := range []kernels.DType{kernels.BF16, kernels.Q8, kernels.F32} {
		b.Run(dt.String(), func(b *testing.B) {
			m, err := NewModel(cfg, bigWeights(cfg, dt))
			if err != nil {
				b.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(3, 4))
			b.Run("prefill512", func(b *testing.B) {
				ws := &Workspace{}
				s := m.NewState()
				prompt := randomTokens(rng, 512, cfg.Vocab)
				n := 0
				for b.Loop() {
					s.Reset()
					if err := m.Forward(ws, []Step{{State: s, Tokens: prompt, Out: backend.Logits}}); err != nil {
						b.Fatal(err)
					}
					n += len(prompt)
				}
				b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "tok/s")
			})
			for _, batch := range []int{1, 16} {
				b.Run(fmt.Sprintf("decode%d", batch), func(b *testing.B) {
					ws := &Workspace{}
					steps := make([]Step, batch)
					for i := range steps {
						s := m.NewState()
						if err := m.Forward(ws, []Step{{State: s, Tokens: randomTokens(rng, 64, cfg.Vocab)}}); err != nil {
							b.Fatal(err)
						}
						steps[i] = Step{State: s, Tokens: []int{rng.IntN(cfg.Vocab)}, Out: backend.Logits}
					}
					n := 0
					for b.Loop() {
						if err := m.Forward(ws, steps); err != nil {
							b.Fatal(err)
						}
						n += batch
					}
					b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "tok/s")
				})
			}
		})
	}
}
