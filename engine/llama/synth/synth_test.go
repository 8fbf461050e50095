package synth_test

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/batchtrans/batchtrans/engine/llama"
	"github.com/batchtrans/batchtrans/engine/llama/synth"
	"github.com/batchtrans/batchtrans/engine/safetensors"
)

func TestWriteModelReadsBack(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*synth.Spec)
	}{
		{"single file, 5.x dialect", func(s *synth.Spec) {}},
		{"sharded, 4.x dialect, llama3 rope, tied, explicit head_dim", func(s *synth.Spec) {
			s.Shards, s.Dialect, s.Llama3Rope, s.Tied, s.HeadDim = 3, 4, true, true, 16
			s.EOS = []int{2, 3}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := synth.Tiny()
			tc.edit(&s)
			dir := t.TempDir()
			require.NoError(t, synth.WriteModel(dir, s, 7))
			cfg, err := llama.LoadConfig(dir)
			require.NoError(t, err)
			hd := s.HeadDim
			if hd == 0 {
				hd = s.Hidden / s.Heads
			}
			assert.Equal(t, s.Vocab, cfg.Vocab)
			assert.Equal(t, s.Layers, cfg.Layers)
			assert.Equal(t, s.KVHeads, cfg.KVHeads)
			assert.Equal(t, hd, cfg.HeadDim)
			assert.Equal(t, s.Tied, cfg.TiedEmbedding)
			assert.Equal(t, s.EOS, cfg.EOS)
			assert.Equal(t, s.Llama3Rope, cfg.RopeScaling != nil)

			set, err := safetensors.OpenDir(dir)
			require.NoError(t, err)
			defer set.Close()
			want := s.Tensors()
			assert.Len(t, set.Names(), len(want))
			assert.Len(t, set.Files(), max(1, s.Shards))
			for _, tt := range want {
				dt, shape, err := set.Info(tt.Name)
				require.NoError(t, err)
				assert.Equal(t, safetensors.BF16, dt)
				assert.Equal(t, tt.Shape, shape)
			}
			norm, err := set.Tensor("model.norm.weight")
			require.NoError(t, err)
			v, err := norm.F32()
			require.NoError(t, err)
			for _, x := range v {
				assert.InDelta(t, 1, x, 0.2)
			}
			info, err := llama.Inspect(dir, "")
			require.NoError(t, err)
			assert.Equal(t, cfg.ParamCount(), info.Params)
		})
	}
}

func TestDeterministic(t *testing.T) {
	s := synth.Tiny()
	a, b, c := t.TempDir(), t.TempDir(), t.TempDir()
	require.NoError(t, synth.WriteModel(a, s, 1))
	require.NoError(t, synth.WriteModel(b, s, 1))
	require.NoError(t, synth.WriteModel(c, s, 2))
	read := func(d string) []byte {
		x, err := os.ReadFile(filepath.Join(d, "model.safetensors"))
		require.NoError(t, err)
		return x
	}
	assert.True(t, bytes.Equal(read(a), read(b)), "same seed, same bytes")
	assert.False(t, bytes.Equal(read(a), read(c)), "another seed, other weights")
}

func TestWriteAdapter(t *testing.T) {
	s := synth.Tiny()
	mdir, adir := t.TempDir(), t.TempDir()
	require.NoError(t, synth.WriteModel(mdir, s, 1))
	require.NoError(t, synth.WriteAdapter(adir, s, synth.AdapterSpec{Rank: 4, Alpha: 8, Targets: synth.AllLinear, DType: safetensors.BF16, RankPattern: map[string]int{"layers.0.mlp.down_proj": 2}}, 3))
	info, err := llama.Inspect(mdir, adir)
	require.NoError(t, err)
	require.NotNil(t, info.Adapter)
	assert.Equal(t, 7*s.Layers, info.Adapter.Modules)
	assert.Equal(t, "BF16", info.Adapter.DType)
	f, err := safetensors.Open(filepath.Join(adir, "adapter_model.safetensors"))
	require.NoError(t, err)
	defer f.Close()
	_, shape, err := f.Info("base_model.model.model.layers.0.mlp.down_proj.lora_A.weight")
	require.NoError(t, err)
	assert.Equal(t, []int{2, s.Intermediate}, shape)
	b, err := f.Tensor("base_model.model.model.layers.1.self_attn.o_proj.lora_B.weight")
	require.NoError(t, err)
	v, err := b.F32()
	require.NoError(t, err)
	nonzero := 0
	for _, x := range v {
		if x != 0 {
			nonzero++
		}
	}
	assert.Greater(t, nonzero, len(v)*9/10, "lora_B must be non-zero")

	assert.Error(t, synth.WriteAdapter(t.TempDir(), s, synth.AdapterSpec{Rank: 4, Targets: []string{"c_attn"}}, 1))
}

// TestEncodeF16 checks the f32 -> f16 rounding against the nearest of the
// two neighbouring halves, ties to even.
func TestEncodeF16(t *testing.T) {
	vals := []float32{0, 1, -1, 0.1, 1.0 / 3, 65504, 65519, 1e-5, 6e-8, 3e-8, 2.98e-8, 1e-9, -2.5e-6, 1000.5, 1024.5, 2049}
	for i := range 2000 {
		vals = append(vals, float32(math.Ldexp(float64(i%97)/97+1, i%40-24)))
	}
	for _, v := range vals {
		raw := synth.Encode(nil, []float32{v}, safetensors.F16)
		h := uint16(raw[0]) | uint16(raw[1])<<8
		got := float64(safetensors.F16ToF32(h))
		// The neighbours of h cannot be closer to v.
		for _, n := range []uint16{h - 1, h + 1} {
			if h&0x7fff == 0 && n == h-1 || n&0x7c00 == 0x7c00 {
				continue
			}
			other := float64(safetensors.F16ToF32(n))
			d1, d2 := math.Abs(got-float64(v)), math.Abs(other-float64(v))
			require.True(t, d1 < d2 || (d1 == d2 && h&1 == 0), "v=%g got %g (%#04x), neighbour %g", v, got, h, other)
		}
	}
}
