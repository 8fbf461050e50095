package textval

import (
	"encoding/json"
	"math"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestAppendFloat(t *testing.T) {
	tests := []struct {
		in   float64
		want string
	}{
		{0, "0.0"}, {1, "1.0"}, {-2, "-2.0"}, {0.1, "0.1"}, {1e21, "1e+21"}, {1e20, "100000000000000000000.0"},
		{1.5e-7, "1.5e-7"}, {-1e-9, "-1e-9"}, {math.MaxFloat64, "1.7976931348623157e+308"}, {5e-324, "5e-324"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			got, ok := AppendFloat(nil, tt.in)
			require.True(t, ok)
			assert.Equal(t, tt.want, string(got))
			back, err := strconv.ParseFloat(string(got), 64)
			require.NoError(t, err)
			assert.Equal(t, tt.in, back)
			assert.True(t, json.Valid(got))
		})
	}
	for _, f := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		_, ok := AppendFloat(nil, f)
		assert.False(t, ok)
		b, err := AppendJSON(nil, f)
		require.NoError(t, err)
		assert.Equal(t, "null", string(b))
	}
}

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "plain", "q\"b\\s", "\x00\x1f\n\r\t", "<&>", "ünï 😀 \u2028\u2029", "bad \xff utf8"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b := AppendJSONString(nil, s)
		var back string
		require.NoError(t, json.Unmarshal(b, &back), "%q", b)
		want, _ := json.Marshal(s) // encoding/json's reading of the same string
		var ref string
		require.NoError(t, json.Unmarshal(want, &ref))
		assert.Equal(t, ref, back)
		assert.NotContains(t, string(b), "\n")
	})
}

func TestAppendJSON(t *testing.T) {
	tests := []struct {
		in   any
		want string
	}{
		{nil, "null"}, {"x", `"x"`}, {true, "true"}, {int64(-5), "-5"}, {uint64(math.MaxUint64), "18446744073709551615"},
		{2.0, "2.0"}, {json.RawMessage("{ \"a\" : [1, 2] }"), `{"a":[1,2]}`}, {json.Number("1e400"), "1e400"},
		{map[string]any{"b": 1, "a": "x"}, `{"a":"x","b":1}`}, {[]byte("by"), `"by"`},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			got, err := AppendJSON(nil, tt.in)
			require.NoError(t, err)
			assert.Equal(t, tt.want, string(got))
		})
	}
	_, err := AppendJSON(nil, json.RawMessage("{"))
	assert.ErrorContains(t, err, "invalid JSON value")
}
