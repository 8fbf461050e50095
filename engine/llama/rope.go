package llama

import (
	"fmt"
	"math"
)

// ropeFreqs returns the inverse frequencies of the rotary embedding for a
// head of size headDim, one per rotated pair, in float64. Scaling follows
// transformers' rope_type "default" (sc nil) and "llama3".
func ropeFreqs(headDim int, theta float64, sc *RopeScaling) ([]float64, error) {
	if headDim <= 0 || headDim%2 != 0 {
		return nil, fmt.Errorf("rope: head_dim %d is not a positive even number", headDim)
	}
	if theta <= 0 {
		return nil, fmt.Errorf("rope: rope_theta %g is not positive", theta)
	}
	half := headDim / 2
	inv := make([]float64, half)
	for i := range inv {
		inv[i] = 1 / math.Pow(theta, float64(2*i)/float64(headDim))
	}
	if sc == nil || sc.Type == "" || sc.Type == "default" {
		return inv, nil
	}
	if sc.Type != "llama3" {
		return nil, fmt.Errorf("rope: unsupported rope_scaling type %q (want default or llama3)", sc.Type)
	}
	if sc.Factor <= 0 || sc.OriginalMaxPositionEmbeddings <= 0 || sc.HighFreqFactor <= sc.LowFreqFactor || sc.LowFreqFactor <= 0 {
		return nil, fmt.Errorf("rope: invalid llama3 scaling (factor %g, low_freq_factor %g, high_freq_factor %g, original_max_position_embeddings %d)",
			sc.Factor, sc.LowFreqFactor, sc.HighFreqFactor, sc.OriginalMaxPositionEmbeddings)
	}
	orig := float64(sc.OriginalMaxPositionEmbeddings)
	lowWavelen := orig / sc.LowFreqFactor
	highWavelen := orig / sc.HighFreqFactor
	for i, f := range inv {
		wavelen := 2 * math.Pi / f
		switch {
		case wavelen < highWavelen:
			// High frequency: kept as is.
		case wavelen > lowWavelen:
			inv[i] = f / sc.Factor
		default:
			s := (orig/wavelen - sc.LowFreqFactor) / (sc.HighFreqFactor - sc.LowFreqFactor)
			inv[i] = (1-s)*f/sc.Factor + s*f
		}
	}
	return inv, nil
}

// ropeAngles writes cos and sin of pos*inv[i] for every pair i, computed in
// float64 and rounded once to float32.
func ropeAngles(cos, sin []float32, inv []float64, pos int) {
	p := float64(pos)
	for i, f := range inv {
		s, c := math.Sincos(p * f)
		cos[i] = float32(c)
		sin[i] = float32(s)
	}
}

// ropeApply rotates every head of x (heads x headDim, Hugging Face
// rotate_half layout: element j pairs with j+headDim/2) in place.
func ropeApply(x []float32, heads, headDim int, cos, sin []float32) {
	half := headDim / 2
	for h := range heads {
		v := x[h*headDim : (h+1)*headDim]
		lo, hi := v[:half], v[half:headDim]
		for j := range half {
			a, b := lo[j], hi[j]
			c, s := cos[j], sin[j]
			// Each product is rounded on its own (as in x*cos + rotate_half(x)*sin),
			// never fused into one multiply-add.
			lo[j] = float32(a*c) - float32(b*s)
			hi[j] = float32(b*c) + float32(a*s)
		}
	}
}

// RopeTable returns the rotary angles' cosines and sines of positions 0 to
// n-1 (n x head_dim/2 each, row p for position p), the values the CPU's
// forward pass computes for each row, for backends that look them up.
func RopeTable(c *Config, n int) (cos, sin []float32, err error) {
	inv, err := ropeFreqs(c.HeadDim, c.RopeTheta, c.RopeScaling)
	if err != nil {
		return nil, nil, err
	}
	half := c.HeadDim / 2
	cos, sin = make([]float32, n*half), make([]float32, n*half)
	for p := range n {
		ropeAngles(cos[p*half:(p+1)*half], sin[p*half:(p+1)*half], inv, p)
	}
	return cos, sin, nil
}
