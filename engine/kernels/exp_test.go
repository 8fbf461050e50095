package kernels

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSiLUMulMatchesGo holds every implementation's SiLUMul bit for bit to
// the plain Go loop, over lengths that leave tails and over arguments that
// math.Exp treats specially (NaN, infinities, beyond +-700, subnormal
// results), which the vector kernels must hand back to it.
func TestSiLUMulMatchesGo(t *testing.T) {
	rng := rand.New(rand.NewPCG(41, 42))
	specials := []float32{0, float32(math.Copysign(0, -1)), 1e-45, -1e-40, 699.9, -699.9, 700, -700, 700.01, -700.01,
		708.5, -708.5, 709.9, -709.9, 745.2, -745.2, 800, -800, 3e38, -3e38,
		float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN())}
	value := func() float32 {
		switch rng.IntN(8) {
		case 0:
			return specials[rng.IntN(len(specials))]
		case 1:
			return math.Float32frombits(rng.Uint32())
		case 2:
			return float32(rng.Float64()*1500 - 750)
		default:
			return float32(rng.NormFloat64() * 4)
		}
	}
	for _, im := range impls() {
		for trial := range 3000 {
			n := rng.IntN(70)
			gate, up := make([]float32, n), make([]float32, n)
			for i := range gate {
				gate[i], up[i] = value(), float32(rng.NormFloat64())
			}
			want := make([]float32, n)
			siluMulGo(want, gate, up)
			got := make([]float32, n)
			inPlace := append([]float32(nil), gate...)
			withImpl(im, func() {
				SiLUMul(got, gate, up)
				SiLUMul(inPlace, inPlace, up)
			})
			for i := range want {
				require.Equal(t, math.Float32bits(want[i]), math.Float32bits(got[i]), "%s trial %d: silu(%v) * %v", im.name, trial, gate[i], up[i])
				require.Equal(t, math.Float32bits(want[i]), math.Float32bits(inPlace[i]), "%s trial %d in place", im.name, trial)
			}
		}
	}
}

// TestExpSubMatchesGo is TestSiLUMulMatchesGo for ExpSub: shifted
// arguments from 0 down past -700, and NaN and infinities.
func TestExpSubMatchesGo(t *testing.T) {
	rng := rand.New(rand.NewPCG(43, 44))
	specials := []float32{0, -1e-45, -699.99, -700, -700.01, -745.1, -746, -1e30,
		float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN())}
	for _, im := range impls() {
		for trial := range 3000 {
			n := rng.IntN(70)
			m := float32(rng.NormFloat64() * 10)
			s := make([]float32, n)
			for i := range s {
				switch rng.IntN(6) {
				case 0:
					s[i] = m + specials[rng.IntN(len(specials))]
				case 1:
					s[i] = m - float32(rng.Float64()*800)
				default:
					s[i] = m - float32(math.Abs(rng.NormFloat64()*5))
				}
			}
			want := append([]float32(nil), s...)
			expSubGo(want, m)
			withImpl(im, func() { ExpSub(s, m) })
			for i := range want {
				require.Equal(t, math.Float32bits(want[i]), math.Float32bits(s[i]), "%s trial %d element %d", im.name, trial, i)
			}
		}
	}
}

func TestExpStepsDoNotAllocate(t *testing.T) {
	gate, up := make([]float32, 100), make([]float32, 100)
	assert.Zero(t, testing.AllocsPerRun(100, func() {
		SiLUMul(gate, gate, up)
		ExpSub(up, 1)
	}))
}

func BenchmarkSiLUMul(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	gate, up := randSlice(rng, 8192, 3), randSlice(rng, 8192, 1)
	dst := make([]float32, len(gate))
	for _, im := range impls() {
		b.Run(im.name, func(b *testing.B) {
			b.SetBytes(int64(4 * len(gate)))
			withImpl(im, func() {
				for b.Loop() {
					SiLUMul(dst, gate, up)
				}
			})
		})
	}
}
