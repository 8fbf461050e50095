package sample

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestGreedy(t *testing.T) {
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	cases := []struct {
		name   string
		logits []float32
		want   int
	}{
		{"max", []float32{1, 3, 2}, 1},
		{"tie takes lowest", []float32{1, 3, 3, 0}, 1},
		{"negative", []float32{-5, -2, -9}, 1},
		{"nan skipped", []float32{nan, 1, 2}, 2},
		{"inf", []float32{1, inf, 2}, 1},
		{"all -inf", []float32{float32(math.Inf(-1)), float32(math.Inf(-1))}, 0},
		{"all nan", []float32{nan, nan}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, Greedy(tc.logits))
		})
	}
}

// probLogits returns logits whose softmax is probs.
func probLogits(probs ...float64) []float32 {
	out := make([]float32, len(probs))
	for i, p := range probs {
		out[i] = float32(math.Log(p))
	}
	return out
}

// counts draws n tokens and returns how often each id came.
func counts(s *Sampler, logits []float32, n int) map[int]int {
	c := map[int]int{}
	for range n {
		c[s.Sample(logits)]++
	}
	return c
}

func TestSampleDistribution(t *testing.T) {
	logits := probLogits(0.5, 0.3, 0.15, 0.05)
	cases := []struct {
		name string
		p    Params
		want []float64 // expected frequency per id
	}{
		{"temperature 1", Params{Temperature: 1}, []float64{0.5, 0.3, 0.15, 0.05}},
		{"top-k 2", Params{Temperature: 1, TopK: 2}, []float64{0.625, 0.375, 0, 0}},
		{"top-p 0.75", Params{Temperature: 1, TopP: 0.75}, []float64{0.625, 0.375, 0, 0}},
		{"top-p 0.85", Params{Temperature: 1, TopP: 0.85}, []float64{0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0}},
		{"top-p tiny keeps one", Params{Temperature: 1, TopP: 0.01}, []float64{1, 0, 0, 0}},
		{"top-k 3 then top-p 0.9", Params{Temperature: 1, TopK: 3, TopP: 0.9}, []float64{0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0}},
		{"temperature 0.5 sharpens", Params{Temperature: 0.5}, sharpen([]float64{0.5, 0.3, 0.15, 0.05}, 2)},
		{"greedy", Params{}, []float64{1, 0, 0, 0}},
		{"top-k 1", Params{Temperature: 5, TopK: 1}, []float64{1, 0, 0, 0}},
	}
	const n = 20000
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := counts(New(tc.p, 42), logits, n)
			for id, w := range tc.want {
				f := float64(got[id]) / n
				if w == 0 {
					assert.Zero(t, got[id], "id %d must never be drawn", id)
					continue
				}
				sd := math.Sqrt(w * (1 - w) / n)
				assert.InDelta(t, w, f, 5*sd+1e-9, "id %d frequency", id)
			}
		})
	}
}

func sharpen(p []float64, pow float64) []float64 {
	var sum float64
	out := make([]float64, len(p))
	for i, v := range p {
		out[i] = math.Pow(v, pow)
		sum += out[i]
	}
	for i := range out {
		out[i] /= sum
	}
	return out
}

func TestSampleSeeded(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	logits := make([]float32, 500)
	for i := range logits {
		logits[i] = float32(rng.NormFloat64() * 2)
	}
	p := Params{Temperature: 1.3, TopK: 50, TopP: 0.95}
	draw := func(seed uint64) []int {
		s := New(p, seed)
		out := make([]int, 64)
		for i := range out {
			out[i] = s.Sample(logits)
		}
		return out
	}
	assert.Equal(t, draw(7), draw(7), "same seed, same tokens")
	assert.NotEqual(t, draw(7), draw(8), "different seeds, different tokens")
}

// referenceSample is the plain algorithm: sort every token, softmax,
// top-k, top-p, one uniform draw.
func referenceSample(rng *rand.Rand, p Params, logits []float32) int {
	type c struct {
		id int
		v  float32
	}
	cs := make([]c, 0, len(logits))
	for i, v := range logits {
		cs = append(cs, c{i, v / p.Temperature})
	}
	filtered := p.TopK > 0 || (p.TopP > 0 && p.TopP < 1)
	slices.SortStableFunc(cs, func(a, b c) int {
		if !filtered {
			return 0 // no filter: draw in id order
		}
		switch {
		case a.v > b.v:
			return -1
		case a.v < b.v:
			return 1
		}
		return 0
	})
	if p.TopK > 0 && p.TopK < len(cs) {
		cs = cs[:p.TopK]
	}
	top := cs[0].v
	for _, x := range cs {
		top = max(top, x.v)
	}
	pr := make([]float64, len(cs))
	var sum float64
	for i := range cs {
		pr[i] = math.Exp(float64(cs[i].v - top))
		sum += pr[i]
	}
	if p.TopP > 0 && p.TopP < 1 {
		var cum float64
		for i := range pr {
			cum += pr[i]
			if cum >= float64(p.TopP)*sum {
				pr = pr[:i+1]
				break
			}
		}
		sum = cum
	}
	u := rng.Float64() * sum
	var cum float64
	for i := range pr {
		cum += pr[i]
		if u < cum {
			return cs[i].id
		}
	}
	return cs[len(pr)-1].id
}

func TestSampleMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	shapes := []struct {
		name string
		gen  func(i int) float32
	}{
		{"normal", func(int) float32 { return float32(rng.NormFloat64() * 3) }},
		{"peaked", func(i int) float32 {
			if i == 17 {
				return 15 // nucleus reaches into the long flat tail
			}
			return float32(rng.NormFloat64() * 0.1)
		}},
		{"flat", func(int) float32 { return 0.5 }},
	}
	params := []Params{
		{Temperature: 1, TopP: 0.9},
		{Temperature: 0.7, TopP: 0.999999},
		{Temperature: 1, TopK: 40},
		{Temperature: 2, TopK: 10, TopP: 0.5},
		{Temperature: 1},
	}
	for _, sh := range shapes {
		logits := make([]float32, 2000)
		for i := range logits {
			logits[i] = sh.gen(i)
		}
		for _, p := range params {
			t.Run(fmt.Sprintf("%s/%+v", sh.name, p), func(t *testing.T) {
				s := New(p, 11)
				ref := rand.New(rand.NewPCG(11, 0x9e3779b97f4a7c15))
				for i := range 20 {
					require.Equal(t, referenceSample(ref, p, logits), s.Sample(logits), "draw %d", i)
				}
			})
		}
	}
}

func TestValidate(t *testing.T) {
	assert.NoError(t, Params{Temperature: 0.8, TopK: 5, TopP: 0.9}.Validate())
	assert.ErrorContains(t, Params{TopP: 1.5}.Validate(), "top_p")
	assert.ErrorContains(t, Params{TopK: -1}.Validate(), "top_k")
	assert.ErrorContains(t, Params{Temperature: float32(math.NaN())}.Validate(), "temperature")
}

func BenchmarkSample(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	logits := make([]float32, 128256)
	for i := range logits {
		logits[i] = float32(rng.NormFloat64() * 3)
	}
	for _, p := range []Params{{}, {Temperature: 0.8, TopP: 0.9}, {Temperature: 0.8, TopK: 40}} {
		b.Run(fmt.Sprintf("%+v", p), func(b *testing.B) {
			s := New(p, 1)
			for b.Loop() {
				s.Sample(logits)
			}
		})
	}
}
