package kernels

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// bf16TestValues returns n values for the BF16 tests: mostly normal values
// of a wide spread of magnitudes (so that the order of the adds shows in
// the bits), and, one in odds each, a value at an edge of the products'
// range, a special value, or random bits.
func bf16TestValues(rng *rand.Rand, n, odds int) []float32 {
	edges := []float32{
		0, float32(math.Copysign(0, -1)), 0x1p-56, -0x1p-56, 0x1.fep-57, 0x1.ffp-57, 0x1.fep63, -0x1.fep63,
		0x1.ff8p63, 0x1p64, 1e-45, -1e-39, 1e-38, math.MaxFloat32, float32(math.Inf(1)), float32(math.Inf(-1)),
		float32(math.NaN()), 1, -1, 0x1p-24, 3,
	}
	v := make([]float32, n)
	for i := range v {
		switch r := rng.IntN(odds); {
		case r == 0:
			v[i] = edges[rng.IntN(len(edges))]
		case r == 1:
			v[i] = math.Float32frombits(rng.Uint32())
		default:
			v[i] = float32(rng.NormFloat64() * math.Pow(2, float64(rng.IntN(24)-12)))
		}
	}
	return v
}

// sameBits is bit equality with every NaN equal to every other (which NaN
// an operation returns differs between CPUs).
func sameBits(a, b float32) bool {
	return math.Float32bits(a) == math.Float32bits(b) || isNaN32(a) && isNaN32(b)
}

// TestBF16ImplsBitwise holds every implementation's BF16 products bit for
// bit to the pair-step reference (bf16PairRef), over values of every
// magnitude, the edges of the products' range, zeros of both signs,
// infinities, NaNs and random bits, for batches that take every kernel
// (gemv, 12- and 4-row tiles, widened segments) and odd column counts.
func TestBF16ImplsBitwise(t *testing.T) {
	rng := rand.New(rand.NewPCG(41, 42))
	for _, sh := range []struct{ rows, cols, odds int }{
		{16, 32, 1000}, {70, 301, 50}, {33, 2048, 1000}, {48, 514, 8}, {20, 9, 3}, {64, 8192, 5000},
	} {
		w := NewF32(sh.rows, sh.cols, bf16TestValues(rng, sh.rows*sh.cols, sh.odds), BF16)
		rows := make([][]uint16, sh.rows)
		row := make([]float32, sh.cols)
		kp := bf16Cols(sh.cols)
		for r := range rows {
			w.Row(r, row)
			rows[r] = make([]uint16, kp)
			for k, v := range row {
				rows[r][k] = F32ToBF16(v) // exact: Row widens bf16
			}
		}
		for _, n := range []int{1, 3, 4, 9, 12, 16, 37} {
			x := bf16TestValues(rng, n*sh.cols, sh.odds)
			want := make([]float32, n*sh.rows)
			xb := make([]uint16, kp)
			for b := range n {
				clear(xb)
				roundBF16Go(xb[:sh.cols], x[b*sh.cols:(b+1)*sh.cols])
				for r := range sh.rows {
					want[b*sh.rows+r] = bf16PairRef(rows[r], xb)
				}
			}
			for _, im := range impls() {
				got := make([]float32, n*sh.rows)
				matmulWith(im, got, x, n, w)
				for i := range got {
					if !sameBits(got[i], want[i]) {
						t.Fatalf("%s %dx%d n=%d element %d: %v (%#08x), reference %v (%#08x)", im.name, sh.rows, sh.cols, n, i,
							got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
					}
				}
			}
		}
	}
}

// TestBF16OrderShows checks that TestBF16ImplsBitwise's values would catch
// a kernel adding a pair in the other order or summing the pair before
// adding it: on them both differ from the reference.
func TestBF16OrderShows(t *testing.T) {
	rng := rand.New(rand.NewPCG(43, 44))
	const k = 300
	differ := map[string]int{}
	for range 200 {
		w, x := make([]uint16, k), make([]uint16, k)
		roundBF16Go(w, bf16TestValues(rng, k, 1000))
		roundBF16Go(x, bf16TestValues(rng, k, 1000))
		want := bf16PairRef(w, x)
		var even, summed float32
		for m := 0; m < k; m += 2 {
			p1 := float32(BF16ToF32(w[m+1]) * BF16ToF32(x[m+1]))
			p0 := float32(BF16ToF32(w[m]) * BF16ToF32(x[m]))
			even = even + p0 + p1
			summed += p0 + p1
		}
		if !sameBits(even, want) {
			differ["even first"]++
		}
		if !sameBits(summed, want) {
			differ["pair summed first"]++
		}
	}
	assert.Greater(t, differ["even first"], 20)
	assert.Greater(t, differ["pair summed first"], 20)
}

// TestRoundActBF16 checks the rounding and the range of the activations.
func TestRoundActBF16(t *testing.T) {
	for _, c := range []struct {
		in   float32
		want uint16
	}{
		{1, 0x3f80}, {-2, 0xc000}, {0x1.01p0, 0x3f80}, {0x1.03p0, 0x3f82}, {0x1.018p0, 0x3f81},
		{0x1p-56, 0x2380}, {-0x1p-56, 0xa380}, {0x1.fep-57, 0}, {-0x1.fep-57, 0x8000}, {0x1.ffp-57, 0x2380},
		{1e-40, 0}, {0x1.fep63, 0x5f7f}, {0x1.ff8p63, 0x7f80}, {-0x1p64, 0xff80}, {math.MaxFloat32, 0x7f80},
		{float32(math.Inf(-1)), 0xff80},
	} {
		assert.Equal(t, c.want, roundActBF16(c.in), "%g", c.in)
	}
	nan := roundActBF16(float32(math.NaN()))
	require.True(t, isNaN32(BF16ToF32(nan)))
}

// TestBF16Layout checks the pair packing against Row and the padding of an
// odd column count.
func TestBF16Layout(t *testing.T) {
	data := []uint16{0x3f80, 0x4000, 0x4040, 0x4080, 0x40a0, 0x40c0}
	m := NewBF16(2, 3, data)
	require.Len(t, m.bf16, PanelRows*4)
	assert.Equal(t, []uint16{0x3f80, 0x4000}, m.bf16[0:2])
	assert.Equal(t, []uint16{0x4080, 0x40a0}, m.bf16[2:4])
	assert.Equal(t, []uint16{0x4040, 0}, m.bf16[2*PanelRows:2*PanelRows+2])
	row := make([]float32, 3)
	m.Row(1, row)
	assert.Equal(t, []float32{4, 5, 6}, row)
}
