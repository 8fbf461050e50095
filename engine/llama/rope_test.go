package llama

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRopeFreqsLlama3 checks Llama 3.2's inverse frequencies (head_dim 64,
// theta 500000, llama3 scaling factor 32, low 1, high 4, original 8192)
// against values computed with transformers' _compute_llama3_parameters
// formula in float64: pairs 0-14 keep their frequency (wavelength below
// 2048), 15-17 are smoothed, 18 onwards are divided by the factor.
func TestRopeFreqsLlama3(t *testing.T) {
	got, err := ropeFreqs(64, 500000, &RopeScaling{Type: "llama3", Factor: 32, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositionEmbeddings: 8192})
	require.NoError(t, err)
	require.Len(t, got, 32)
	want := map[int]float64{
		0:  1.0,
		5:  0.12868737343265052,
		12: 0.0072926647372171085,
		14: 0.0032114459947525913,
		15: 0.001290547928209264,
		16: 0.00042955679655936815,
		17: 9.70828780262767e-05,
		20: 8.570255489881478e-06,
		31: 9.418306725434909e-08,
	}
	for i, w := range want {
		assert.InEpsilon(t, w, got[i], 1e-13, "pair %d", i)
	}

	plain, err := ropeFreqs(64, 500000, nil)
	require.NoError(t, err)
	assert.InEpsilon(t, 0.0021311195369119653, plain[15], 1e-13)
	assert.InEpsilon(t, 3.0138581521391708e-06, plain[31], 1e-13)
}

func TestRopeApplyRotateHalf(t *testing.T) {
	// head_dim 4: element j pairs with j+2. Pair 0 turns by 90 degrees,
	// pair 1 by 0.
	x := []float32{1, 2, 3, 4, 5, 6, 7, 8}
	ropeApply(x, 2, 4, []float32{0, 1}, []float32{1, 0})
	assert.Equal(t, []float32{-3, 2, 1, 4, -7, 6, 5, 8}, x)

	cos, sin := make([]float32, 2), make([]float32, 2)
	ropeAngles(cos, sin, []float64{1, 0.5}, 2)
	assert.InDelta(t, -0.4161468365, cos[0], 1e-7) // cos(2)
	assert.InDelta(t, 0.9092974268, sin[0], 1e-7)  // sin(2)
	assert.InDelta(t, 0.5403023059, cos[1], 1e-7)  // cos(1)
}
