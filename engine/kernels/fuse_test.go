package kernels

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A fused matrix computes, bit for bit, what its parts compute separately,
// for every dtype, batch size and thread count; the parts keep working on
// the shared storage; fusing again returns the same matrix.
func TestFuseMatchesParts(t *testing.T) {
	rng := rand.New(rand.NewPCG(31, 32))
	for _, dt := range allDTypes {
		const cols = 300
		shapes := []int{48, 16, 21} // Q, K, V-like; the last may be ragged
		var parts, copies []*Matrix
		for _, r := range shapes {
			data := randSlice(rng, r*cols, 1)
			parts = append(parts, NewF32(r, cols, data, dt))
			copies = append(copies, NewF32(r, cols, data, dt))
		}
		f, err := Fuse(parts...)
		require.NoError(t, err)
		require.Equal(t, 48+16+21, f.Rows)
		var sum int64
		for _, m := range copies {
			sum += m.Bytes()
		}
		assert.Equal(t, sum, f.Bytes(), "%s: no padding between parts", dt)
		for _, threads := range []int{1, 3} {
			withThreads(t, threads, func() {
				for _, n := range []int{1, 2, 7, 13, 60} {
					x := randSlice(rng, n*cols, 1)
					got := make([]float32, n*f.Rows)
					MatMul(got, x, n, f)
					off := 0
					for i, m := range copies {
						want := make([]float32, n*m.Rows)
						MatMul(want, x, n, m)
						again := make([]float32, n*m.Rows)
						MatMul(again, x, n, parts[i])
						for b := range n {
							for r := range m.Rows {
								g, w := got[b*f.Rows+off+r], want[b*m.Rows+r]
								if math.Float32bits(g) != math.Float32bits(w) {
									t.Fatalf("%s threads=%d n=%d part %d row %d: fused %v, alone %v", dt, threads, n, i, r, g, w)
								}
								require.Equal(t, math.Float32bits(w), math.Float32bits(again[b*m.Rows+r]), "the part still works")
							}
						}
						off += m.Rows
					}
				}
			})
		}
		g, err := Fuse(parts...)
		require.NoError(t, err)
		assert.Same(t, f, g, "fusing again reuses the first result")
		_, err = Fuse(parts[1], parts[0])
		require.NoError(t, err, "another order is a new fusion")
	}
}

func TestFuseRefuses(t *testing.T) {
	a := NewF32(16, 8, make([]float32, 16*8), BF16)
	for name, ms := range map[string][]*Matrix{
		"none":        nil,
		"cols":        {a, NewF32(16, 9, make([]float32, 16*9), BF16)},
		"dtype":       {a, NewF32(16, 8, make([]float32, 16*8), F32)},
		"ragged head": {NewF32(5, 8, make([]float32, 5*8), BF16), a},
	} {
		_, err := Fuse(ms...)
		assert.Error(t, err, name)
	}
}
