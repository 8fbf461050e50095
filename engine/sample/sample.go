package sample

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// Params choose how a token is drawn from the logits. The zero value (and
// any Temperature <= 0) is greedy.
type Params struct {
	Temperature float32 // <= 0: greedy
	TopK        int     // <= 0: off
	TopP        float32 // <= 0 or >= 1: off
}

// Validate reports parameters that make no sense.
func (p Params) Validate() error {
	if math.IsNaN(float64(p.Temperature)) || math.IsInf(float64(p.Temperature), 0) {
		return fmt.Errorf("sample: temperature %v is not a finite number", p.Temperature)
	}
	if math.IsNaN(float64(p.TopP)) || p.TopP < 0 || p.TopP > 1 {
		return fmt.Errorf("sample: top_p %v is outside [0, 1]", p.TopP)
	}
	if p.TopK < 0 {
		return fmt.Errorf("sample: top_k %d is negative", p.TopK)
	}
	return nil
}

// Greedy returns the index of the largest logit; among equal logits the
// lowest index wins (as torch.argmax does). NaN logits are never chosen
// unless all are NaN, in which case it returns 0.
func Greedy(logits []float32) int {
	best, bestV := 0, float32(math.Inf(-1))
	found := false
	for i, v := range logits {
		if v > bestV || (!found && v == bestV) {
			best, bestV, found = i, v, true
		}
	}
	return best
}

// Sampler draws tokens for one sequence. It keeps its scratch between
// calls, so steady-state sampling does not allocate. Not safe for
// concurrent use.
type Sampler struct {
	p     Params
	rng   *rand.Rand
	cands []cand
	sub   []cand
}

type cand struct {
	id int
	w  float64 // scaled logit, then softmax weight relative to the best token
}

// New returns a sampler for p whose random stream is fixed by seed.
func New(p Params, seed uint64) *Sampler {
	return &Sampler{p: p, rng: rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))}
}

// Sample picks the next token from logits. The filters apply in the order
// Hugging Face's generate uses: temperature, then top-k, then top-p; the
// token is then drawn from the renormalised survivors with one uniform
// draw from the sampler's stream (in id order when no filter is on, best
// first otherwise).
func (s *Sampler) Sample(logits []float32) int {
	p := s.p
	if p.Temperature <= 0 {
		return Greedy(logits)
	}
	inv := 1 / p.Temperature
	maxV := float32(math.Inf(-1))
	for _, v := range logits {
		if v > maxV {
			maxV = v
		}
	}
	if math.IsInf(float64(maxV), 0) || math.IsNaN(float64(maxV)) {
		return Greedy(logits)
	}
	maxV *= inv
	// Scaled logits first (top-k picks on them), then softmax weights in
	// float64, max subtracted.
	c := s.cands[:0]
	for i, v := range logits {
		if v == v { // not NaN
			c = append(c, cand{i, float64(v * inv)})
		}
	}
	s.cands = c
	if p.TopK > 0 && p.TopK < len(c) {
		c = topK(c, p.TopK)
	}
	var sum float64
	for i := range c {
		c[i].w = math.Exp(c[i].w - float64(maxV))
		sum += c[i].w
	}
	if p.TopP > 0 && p.TopP < 1 {
		c, sum = s.nucleus(c, sum, float64(p.TopP))
	} else if p.TopK > 0 {
		slices.SortFunc(c, byWeight)
		sum = 0
		for _, x := range c {
			sum += x.w
		}
	}
	u := s.rng.Float64() * sum
	var cum float64
	for _, x := range c {
		cum += x.w
		if u < cum {
			return x.id
		}
	}
	return c[len(c)-1].id
}

// nucleus returns the smallest best-first prefix of c whose weight reaches
// topP of full (at least one token), as TopPLogitsWarper keeps, and that
// prefix's weight. It sorts only the tokens heavy enough to matter: if the
// tokens above a cut already reach topP, every lighter token is out.
func (s *Sampler) nucleus(c []cand, full, topP float64) ([]cand, float64) {
	best := 0.0
	for _, x := range c {
		best = max(best, x.w)
	}
	sub := c
	for cut := best * 1e-3; cut > best*1e-300; cut *= 1e-3 {
		s.sub = s.sub[:0]
		var w float64
		for _, x := range c {
			if x.w >= cut {
				s.sub = append(s.sub, x)
				w += x.w
			}
		}
		if w >= topP*full {
			sub = s.sub
			break
		}
	}
	slices.SortFunc(sub, byWeight)
	var cum float64
	for i, x := range sub {
		cum += x.w
		if cum >= topP*full {
			return sub[:i+1], cum
		}
	}
	return sub, cum
}

// topK moves the k heaviest candidates (ties: lower id) to the front of c,
// using a min-heap of size k, and returns them.
func topK(c []cand, k int) []cand {
	h := c[:k]
	// worse reports whether a ranks below b.
	worse := func(a, b cand) bool { return a.w < b.w || (a.w == b.w && a.id > b.id) }
	down := func(i int) {
		for {
			l := 2*i + 1
			if l >= k {
				return
			}
			m := l
			if r := l + 1; r < k && worse(h[r], h[l]) {
				m = r
			}
			if !worse(h[m], h[i]) {
				return
			}
			h[i], h[m] = h[m], h[i]
			i = m
		}
	}
	for i := k/2 - 1; i >= 0; i-- {
		down(i)
	}
	for _, x := range c[k:] {
		if worse(h[0], x) {
			h[0] = x
			down(0)
		}
	}
	return h
}

// byWeight orders heaviest first, ties by lower id.
func byWeight(a, b cand) int {
	if c := cmp.Compare(b.w, a.w); c != 0 {
		return c
	}
	return cmp.Compare(a.id, b.id)
}
