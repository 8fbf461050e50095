package kernels

import (
	"math"
	"math/big"
	"math/rand/v2"
	"testing"
)

// fma32Ref is x*y + z rounded once to float32, in exact arithmetic.
func fma32Ref(x, y, z float32) float32 {
	if v := float64(x)*float64(y) + float64(z); math.IsNaN(v) || math.IsInf(v, 0) {
		return float32(v)
	}
	p := new(big.Float).SetPrec(0).SetMode(big.ToNearestEven)
	p.SetPrec(1000).Mul(big.NewFloat(float64(x)), big.NewFloat(float64(y)))
	p.Add(p, big.NewFloat(float64(z)))
	f, _ := p.Float32()
	if f == 0 {
		// big.Float has no signed zero of a sum: IEEE gives +0 for
		// x*y + z == 0 exactly unless both terms are -0.
		return float32(float64(x)*float64(y) + float64(z))
	}
	return f
}

// TestFMA32 holds fma32 to exact arithmetic over random bits, values near
// one another (cancellation), halfway cases and subnormal results.
func TestFMA32(t *testing.T) {
	// x*y is a float32 halfway case plus 2^-35; z takes 2^-35 and a bit
	// more off it, which a float64 sum loses: rounded twice, the result
	// would tie away from the exact one.
	x, y, z := float32(0x1.001p0), float32(0x1.001002p0), float32(-0x1.000002p-35)
	if got, naive := fma32(x, y, z), float32(math.FMA(float64(x), float64(y), float64(z))); got != 0x1.002002p0 || naive == got {
		t.Fatalf("halfway case: fma32 %x, float64 FMA rounded twice %x, want 0x1.002002p0", got, naive)
	}
	rng := rand.New(rand.NewPCG(51, 52))
	val := func() float32 {
		switch rng.IntN(4) {
		case 0:
			return math.Float32frombits(rng.Uint32())
		case 1:
			return float32(rng.NormFloat64() * math.Pow(2, float64(rng.IntN(300)-150)))
		default:
			return float32(rng.NormFloat64())
		}
	}
	for i := range 300000 {
		x, y, z := val(), val(), val()
		if i%3 == 0 {
			// z near -x*y: cancellation and halfway cases.
			z = -float32(float64(x) * float64(y))
			z = math.Float32frombits(math.Float32bits(z) + uint32(rng.IntN(5)) - 2)
		}
		got, want := fma32(x, y, z), fma32Ref(x, y, z)
		if !sameBits(got, want) {
			t.Fatalf("fma32(%g, %g, %g) = %g (%#x), want %g (%#x)", x, y, z, got, math.Float32bits(got), want, math.Float32bits(want))
		}
	}
}

// TestF32ImplsBitwise holds every implementation's float32 products and
// dots to the generic ones bit for bit: all of them add each product with
// one rounding (fused), in order of k per output, the dots per lane in the
// same tree.
func TestF32ImplsBitwise(t *testing.T) {
	rng := rand.New(rand.NewPCG(53, 54))
	for _, sh := range []struct{ rows, cols int }{{16, 32}, {41, 72}, {70, 301}, {21, 2100}} {
		w := NewF32(sh.rows, sh.cols, randSlice(rng, sh.rows*sh.cols, 1), F32)
		for _, n := range []int{1, 3, 4, 6, 12, 17, 37} {
			requireImplsMatchGeneric(t, w, randSlice(rng, n*sh.cols, 1), n)
		}
	}
	for _, k := range []int{8, 64, 72, 2048} {
		a, b := randSlice(rng, k, 1), randSlice(rng, 5*k, 1)
		want := dot8Go(a, b[:k])
		outs := make([]float32, 5)
		for _, im := range impls() {
			if got := im.dot(a, b[:k]); math.Float32bits(got) != math.Float32bits(want) {
				t.Fatalf("%s dot k=%d: %v, generic %v", im.name, k, got, want)
			}
			if im.dotRows == nil {
				continue
			}
			im.dotRows(a, b, k, outs)
			for r, got := range outs {
				if w := dot8Go(a, b[r*k:(r+1)*k]); math.Float32bits(got) != math.Float32bits(w) {
					t.Fatalf("%s dotRows k=%d row %d: %v, generic %v", im.name, k, r, got, w)
				}
			}
		}
	}
}
