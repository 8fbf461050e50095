package llama

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/batchtrans/batchtrans/engine/kernels"
	"github.com/batchtrans/batchtrans/engine/llama/synth"
	"github.com/batchtrans/batchtrans/engine/safetensors"
)

// rewrite replaces a safetensors file by edit's view of its tensors.
func rewrite(t *testing.T, path string, edit func(specs []safetensors.Spec, data [][]byte) ([]safetensors.Spec, [][]byte)) {
	t.Helper()
	f, err := safetensors.Open(path)
	require.NoError(t, err)
	var specs []safetensors.Spec
	var data [][]byte
	for _, n := range f.Names() {
		tt, err := f.Tensor(n)
		require.NoError(t, err)
		specs = append(specs, safetensors.Spec{Name: n, DType: tt.DType, Shape: tt.Shape})
		data = append(data, append([]byte(nil), tt.Data...))
	}
	require.NoError(t, f.Close())
	specs, data = edit(specs, data)
	w, err := safetensors.Create(path, specs, map[string]string{"format": "pt"})
	require.NoError(t, err)
	for _, d := range data {
		_, err := w.Write(d)
		require.NoError(t, err)
	}
	require.NoError(t, w.Close())
}

// dropTensor removes one tensor from a safetensors file.
func dropTensor(t *testing.T, path, name string) {
	t.Helper()
	found := false
	rewrite(t, path, func(sp []safetensors.Spec, d [][]byte) ([]safetensors.Spec, [][]byte) {
		for i := range sp {
			if sp[i].Name == name {
				found = true
				return append(sp[:i], sp[i+1:]...), append(d[:i], d[i+1:]...)
			}
		}
		return sp, d
	})
	require.True(t, found, "no tensor %s in %s", name, path)
}

func editJSON(t *testing.T, path string, edit func(m map[string]any)) {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	edit(m)
	b, err = json.Marshal(m)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, b, 0o644))
}

func tinyModel(t *testing.T, s synth.Spec) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "model")
	require.NoError(t, synth.WriteModel(dir, s, 1))
	return dir
}

func tinyAdapter(t *testing.T, s synth.Spec, a synth.AdapterSpec) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "adapter")
	require.NoError(t, synth.WriteAdapter(dir, s, a, 2))
	return dir
}

func matrixValues(m *kernels.Matrix) []float32 {
	out := make([]float32, m.Rows*m.Cols)
	for r := range m.Rows {
		m.Row(r, out[r*m.Cols:(r+1)*m.Cols])
	}
	return out
}

func tensorF32(t *testing.T, path, name string) []float32 {
	t.Helper()
	f, err := safetensors.Open(path)
	require.NoError(t, err)
	defer f.Close()
	tt, err := f.Tensor(name)
	require.NoError(t, err)
	v, err := tt.F32()
	require.NoError(t, err)
	return v
}

// TestMergeArithmetic checks W + scale*(B@A) against a float64 computation
// from the files, for plain and rsLoRA scales, rank_pattern and alpha_pattern,
// f32 and bf16 adapters, and checkpoint dtypes bf16, f16 and f32.
func TestMergeArithmetic(t *testing.T) {
	cases := []struct {
		name   string
		model  safetensors.DType
		a      synth.AdapterSpec
		module string  // a merged module to check
		scale  float64 // its expected scale
	}{
		{"plain bf16 base f32 adapter", safetensors.BF16, synth.AdapterSpec{Rank: 4, Alpha: 8, Targets: []string{"q_proj", "v_proj"}, BStd: 0.05}, "model.layers.1.self_attn.v_proj", 2},
		{"rslora bf16 adapter f16 base", safetensors.F16, synth.AdapterSpec{Rank: 4, Alpha: 8, RSLoRA: true, Targets: synth.AllLinear, DType: safetensors.BF16, BStd: 0.05}, "model.layers.0.mlp.down_proj", 4},
		{"rank and alpha pattern f32 base", safetensors.F32, synth.AdapterSpec{
			Rank: 4, Alpha: 8, Targets: synth.AllLinear, BStd: 0.05,
			RankPattern: map[string]int{"layers.1.mlp.up_proj": 2},
			Extra:       map[string]any{"alpha_pattern": map[string]any{"up_proj": 1}},
		}, "model.layers.1.mlp.up_proj", 0.5},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := synth.Tiny()
			s.DType = tc.model
			mdir := tinyModel(t, s)
			adir := tinyAdapter(t, s, tc.a)
			_, w, err := Load(mdir, adir, kernels.F32)
			require.NoError(t, err)
			_, w16, err := Load(mdir, adir, kernels.BF16)
			require.NoError(t, err)
			_, base, err := Load(mdir, "", kernels.F32)
			require.NoError(t, err)

			name := tc.module + ".weight"
			got, _ := tensorOf(t, w, name)
			got16, _ := tensorOf(t, w16, name)
			orig, _ := tensorOf(t, base, name)
			apath := filepath.Join(adir, "adapter_model.safetensors")
			A := tensorF32(t, apath, "base_model.model."+tc.module+".lora_A.weight")
			B := tensorF32(t, apath, "base_model.model."+tc.module+".lora_B.weight")
			rows, cols := got.Rows, got.Cols
			r := len(A) / cols
			W0, W, W16 := matrixValues(orig), matrixValues(got), matrixValues(got16)
			changed := 0
			for i := range rows {
				for j := range cols {
					var d float64
					for k := range r {
						d += float64(B[i*r+k]) * float64(A[k*cols+j])
					}
					want := float64(W0[i*cols+j]) + tc.scale*d
					require.InDelta(t, want, float64(W[i*cols+j]), 1e-5, "[%d][%d]", i, j)
					require.Equal(t, kernels.F32ToBF16(W[i*cols+j]), kernels.F32ToBF16(W16[i*cols+j]), "bf16 [%d][%d] is the f32 merge rounded once", i, j)
					if W[i*cols+j] != W0[i*cols+j] {
						changed++
					}
				}
			}
			assert.Greater(t, changed, rows*cols/2, "the adapter must change the weights")
			// An untargeted module is the base weight, bit for bit.
			if len(tc.a.Targets) == 2 {
				k, _ := tensorOf(t, w, "model.layers.0.self_attn.k_proj.weight")
				k0, _ := tensorOf(t, base, "model.layers.0.self_attn.k_proj.weight")
				assert.Equal(t, matrixValues(k0), matrixValues(k))
			}
		})
	}
}

func TestBF16WithoutMergeIsRaw(t *testing.T) {
	s := synth.Tiny()
	mdir := tinyModel(t, s)
	_, w, err := Load(mdir, "", kernels.BF16)
	require.NoError(t, err)
	f, err := safetensors.OpenDir(mdir)
	require.NoError(t, err)
	defer f.Close()
	tt, err := f.Tensor("model.layers.1.mlp.down_proj.weight")
	require.NoError(t, err)
	raw := make([]uint16, tt.NumElements())
	require.NoError(t, tt.BF16Into(raw))
	m := w.Layers[1].Down
	require.Equal(t, kernels.BF16, m.DType)
	vals := matrixValues(m)
	for i, b := range raw {
		require.Equal(t, kernels.BF16ToF32(b), vals[i])
	}
	assert.NotSame(t, w.Embed, w.LMHead, "untied")
}

func TestTiesAndModulesToSave(t *testing.T) {
	s := synth.Tiny()
	s.Tied = true
	s.Shards = 3
	mdir := tinyModel(t, s)
	_, w, err := Load(mdir, "", kernels.BF16)
	require.NoError(t, err)
	assert.Same(t, w.Embed, w.LMHead, "tied embeddings share one matrix")

	withSaved := func(t *testing.T, tensor string) (string, []float32) {
		adir := tinyAdapter(t, s, synth.AdapterSpec{Rank: 2, Alpha: 4, Targets: []string{"q_proj"}, Extra: map[string]any{"modules_to_save": []string{strings.TrimSuffix(strings.TrimPrefix(tensor, "model."), ".weight")}}})
		vals := make([]float32, s.Vocab*s.Hidden)
		for i := range vals {
			vals[i] = float32(i%7) * 0.25
		}
		rewrite(t, filepath.Join(adir, "adapter_model.safetensors"), func(sp []safetensors.Spec, d [][]byte) ([]safetensors.Spec, [][]byte) {
			return append(sp, safetensors.Spec{Name: "base_model.model." + tensor, DType: safetensors.F32, Shape: []int{s.Vocab, s.Hidden}}),
				append(d, synth.Encode(nil, vals, safetensors.F32))
		})
		return adir, vals
	}
	t.Run("lm_head saved breaks the tie", func(t *testing.T) {
		adir, vals := withSaved(t, "lm_head.weight")
		_, w2, err := Load(mdir, adir, kernels.F32)
		require.NoError(t, err)
		assert.NotSame(t, w2.Embed, w2.LMHead)
		assert.Equal(t, vals, matrixValues(w2.LMHead))
		assert.Equal(t, matrixValues(w.Embed), matrixValues(w2.Embed), "the input embedding keeps the base weights")
	})
	t.Run("embed_tokens saved breaks the tie", func(t *testing.T) {
		adir, vals := withSaved(t, "model.embed_tokens.weight")
		_, w2, err := Load(mdir, adir, kernels.F32)
		require.NoError(t, err)
		assert.NotSame(t, w2.Embed, w2.LMHead)
		assert.Equal(t, vals, matrixValues(w2.Embed))
		assert.Equal(t, matrixValues(w.Embed), matrixValues(w2.LMHead), "the output layer keeps the base weights")
	})
}

func TestTargetSelection(t *testing.T) {
	s := synth.Tiny()
	mdir := tinyModel(t, s)
	cases := []struct {
		name  string
		extra map[string]any
		ok    bool
		want  string
	}{
		{"regex full match", map[string]any{"target_modules": `.*\.(q_proj|v_proj)`}, true, ""},
		{"regex must match whole name", map[string]any{"target_modules": `q_proj|v_proj`}, false, "matches no module"},
		{"all-linear", map[string]any{"target_modules": "all-linear"}, true, ""},
		{"list without v_proj", map[string]any{"target_modules": []string{"q_proj"}}, false, "v_proj is not selected by target_modules"},
		{"layers_to_transform", map[string]any{"layers_to_transform": []int{0}}, false, "layers.1.self_attn.q_proj is not selected"},
		{"exclude_modules", map[string]any{"exclude_modules": []string{"v_proj"}}, false, "v_proj is not selected"},
		{"fan_in_fan_out on Linear is ignored as PEFT does", map[string]any{"fan_in_fan_out": true}, true, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			adir := tinyAdapter(t, s, synth.AdapterSpec{Rank: 2, Alpha: 4, Targets: []string{"q_proj", "v_proj"}, Extra: tc.extra})
			_, _, err := Load(mdir, adir, kernels.F32)
			if tc.ok {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

// TestRefusals builds a broken model or adapter folder per case; each must
// fail with a message naming the file and the tensor or field, and none may
// panic.
func TestRefusals(t *testing.T) {
	s := synth.Tiny()
	okAdapter := synth.AdapterSpec{Rank: 4, Alpha: 8, Targets: []string{"q_proj", "v_proj"}}
	cases := []struct {
		name  string
		model func(t *testing.T, dir string) // edits a fresh model folder
		adapt func(t *testing.T, dir string) // edits a fresh adapter folder (nil: no adapter)
		dt    kernels.DType
		want  []string
	}{
		{name: "truncated checkpoint", model: func(t *testing.T, dir string) {
			p := filepath.Join(dir, "model.safetensors")
			st, err := os.Stat(p)
			require.NoError(t, err)
			require.NoError(t, os.Truncate(p, st.Size()-100))
		}, want: []string{"model.safetensors", "lm_head.weight", "truncated"}},
		{name: "missing tensor", model: func(t *testing.T, dir string) {
			dropTensor(t, filepath.Join(dir, "model.safetensors"), "model.layers.1.mlp.up_proj.weight")
		}, want: []string{"model.layers.1.mlp.up_proj.weight is missing"}},
		{name: "untied without lm_head", model: func(t *testing.T, dir string) {
			dropTensor(t, filepath.Join(dir, "model.safetensors"), "lm_head.weight")
		}, want: []string{"lm_head.weight is missing", "tie_word_embeddings is false"}},
		{name: "shape does not fit config", model: func(t *testing.T, dir string) {
			editJSON(t, filepath.Join(dir, "config.json"), func(m map[string]any) { m["intermediate_size"] = 64 })
		}, want: []string{"model.safetensors", "model.layers.0.mlp.down_proj.weight", "shape [32 48]", "implies [32 64]"}},
		{name: "more layers than config", model: func(t *testing.T, dir string) {
			editJSON(t, filepath.Join(dir, "config.json"), func(m map[string]any) { m["num_hidden_layers"] = 1 })
		}, want: []string{"model.layers.1.", "num_hidden_layers 1"}},
		{name: "bias tensor", model: func(t *testing.T, dir string) {
			rewrite(t, filepath.Join(dir, "model.safetensors"), func(sp []safetensors.Spec, d [][]byte) ([]safetensors.Spec, [][]byte) {
				return append(sp, safetensors.Spec{Name: "model.layers.0.self_attn.q_proj.bias", DType: safetensors.BF16, Shape: []int{32}}), append(d, make([]byte, 64))
			})
		}, want: []string{"model.layers.0.self_attn.q_proj.bias", "biases are not supported"}},
		{name: "integer tensor", model: func(t *testing.T, dir string) {
			rewrite(t, filepath.Join(dir, "model.safetensors"), func(sp []safetensors.Spec, d [][]byte) ([]safetensors.Spec, [][]byte) {
				for i := range sp {
					if sp[i].Name == "model.norm.weight" {
						sp[i].DType = safetensors.I16
					}
				}
				return sp, d
			})
		}, want: []string{"model.norm.weight", "dtype I16"}},
		{name: "unknown in-memory dtype", dt: kernels.DType(9), want: []string{"unknown dtype"}},
		{name: "DoRA", adapt: func(t *testing.T, dir string) {
			editJSON(t, filepath.Join(dir, "adapter_config.json"), func(m map[string]any) { m["use_dora"] = true })
		}, want: []string{"adapter_config.json", "use_dora", "not supported"}},
		{name: "DoRA magnitude tensor", adapt: func(t *testing.T, dir string) {
			rewrite(t, filepath.Join(dir, "adapter_model.safetensors"), func(sp []safetensors.Spec, d [][]byte) ([]safetensors.Spec, [][]byte) {
				return append(sp, safetensors.Spec{Name: "base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector", DType: safetensors.F32, Shape: []int{32}}), append(d, make([]byte, 128))
			})
		}, want: []string{"adapter_model.safetensors", "lora_magnitude_vector", "DoRA"}},
		{name: "pickle adapter", adapt: func(t *testing.T, dir string) {
			require.NoError(t, os.Rename(filepath.Join(dir, "adapter_model.safetensors"), filepath.Join(dir, "adapter_model.bin")))
		}, want: []string{"adapter_model.bin", "pickle"}},
		{name: "no adapter weights", adapt: func(t *testing.T, dir string) {
			require.NoError(t, os.Remove(filepath.Join(dir, "adapter_model.safetensors")))
		}, want: []string{"adapter_model.safetensors", "missing"}},
		{name: "target module missing in base", adapt: func(t *testing.T, dir string) {
			editJSON(t, filepath.Join(dir, "adapter_config.json"), func(m map[string]any) { m["target_modules"] = []string{"q_proj", "v_proj", "c_attn"} })
		}, want: []string{"adapter_config.json", `target module "c_attn" is not in the base model`}},
		{name: "shape misfit", adapt: func(t *testing.T, dir string) {
			editJSON(t, filepath.Join(dir, "adapter_config.json"), func(m map[string]any) { m["r"] = 8 })
		}, want: []string{"adapter_model.safetensors", "lora_A.weight", "shape [4 32]", "rank 8"}},
		{name: "adapter for a wider model", adapt: func(t *testing.T, dir string) {
			wide := synth.Tiny()
			wide.Hidden = 64
			require.NoError(t, synth.WriteAdapter(dir, wide, okAdapter, 3))
		}, want: []string{"adapter_model.safetensors", "model.layers.0.self_attn.q_proj.lora_A.weight", "does not fit"}},
		{name: "adapter for a deeper model", adapt: func(t *testing.T, dir string) {
			deep := synth.Tiny()
			deep.Layers = 4
			require.NoError(t, synth.WriteAdapter(dir, deep, okAdapter, 3))
		}, want: []string{"adapter_model.safetensors", "layers.2.", "for layer 2 but the base model has 2 layers"}},
		{name: "unknown lora key", adapt: func(t *testing.T, dir string) {
			rewrite(t, filepath.Join(dir, "adapter_model.safetensors"), func(sp []safetensors.Spec, d [][]byte) ([]safetensors.Spec, [][]byte) {
				return append(sp, safetensors.Spec{Name: "base_model.model.model.layers.0.self_attn.q_proj.lora_C.weight", DType: safetensors.F32, Shape: []int{1}}), append(d, make([]byte, 4))
			})
		}, want: []string{"adapter_model.safetensors", "lora_C.weight", "unknown LoRA tensor"}},
		{name: "key without the PEFT prefix", adapt: func(t *testing.T, dir string) {
			rewrite(t, filepath.Join(dir, "adapter_model.safetensors"), func(sp []safetensors.Spec, d [][]byte) ([]safetensors.Spec, [][]byte) {
				return append(sp, safetensors.Spec{Name: "transformer.h.0.attn.c_attn.lora_A.weight", DType: safetensors.F32, Shape: []int{1}}), append(d, make([]byte, 4))
			})
		}, want: []string{"transformer.h.0.attn.c_attn.lora_A.weight", "unknown key"}},
		{name: "replacement the base lacks", adapt: func(t *testing.T, dir string) {
			rewrite(t, filepath.Join(dir, "adapter_model.safetensors"), func(sp []safetensors.Spec, d [][]byte) ([]safetensors.Spec, [][]byte) {
				return append(sp, safetensors.Spec{Name: "base_model.model.score.weight", DType: safetensors.F32, Shape: []int{2, 32}}), append(d, make([]byte, 256))
			})
		}, want: []string{"base_model.model.score.weight", "no tensor score.weight"}},
		{name: "missing lora_B", adapt: func(t *testing.T, dir string) {
			dropTensor(t, filepath.Join(dir, "adapter_model.safetensors"), "base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight")
		}, want: []string{"model.layers.1.self_attn.v_proj has no lora_B"}},
		{name: "not LoRA", adapt: func(t *testing.T, dir string) {
			editJSON(t, filepath.Join(dir, "adapter_config.json"), func(m map[string]any) { m["peft_type"] = "IA3" })
		}, want: []string{"adapter_config.json", `peft_type "IA3"`}},
		{name: "lora_bias", adapt: func(t *testing.T, dir string) {
			editJSON(t, filepath.Join(dir, "adapter_config.json"), func(m map[string]any) { m["lora_bias"] = true })
		}, want: []string{"adapter_config.json", "lora_bias"}},
		{name: "bad rank", adapt: func(t *testing.T, dir string) {
			editJSON(t, filepath.Join(dir, "adapter_config.json"), func(m map[string]any) { m["r"] = 0 })
		}, want: []string{"adapter_config.json", "r must be a positive integer"}},
		{name: "unsupported pattern regex", adapt: func(t *testing.T, dir string) {
			editJSON(t, filepath.Join(dir, "adapter_config.json"), func(m map[string]any) { m["rank_pattern"] = map[string]any{"q_proj(?=x)": 2} })
		}, want: []string{"adapter_config.json", "rank_pattern key"}},
		{name: "corrupt adapter header", adapt: func(t *testing.T, dir string) {
			require.NoError(t, os.WriteFile(filepath.Join(dir, "adapter_model.safetensors"), []byte("\x10\x00\x00\x00\x00\x00\x00\x00{\"a\": 1}"), 0o644))
		}, want: []string{"adapter_model.safetensors", "invalid safetensors header"}},
		{name: "adapter config not json", adapt: func(t *testing.T, dir string) {
			require.NoError(t, os.WriteFile(filepath.Join(dir, "adapter_config.json"), []byte("{"), 0o644))
		}, want: []string{"adapter_config.json"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mdir := tinyModel(t, s)
			if tc.model != nil {
				tc.model(t, mdir)
			}
			adir := ""
			if tc.adapt != nil {
				adir = tinyAdapter(t, s, okAdapter)
				tc.adapt(t, adir)
			}
			cfg, w, err := Load(mdir, adir, tc.dt)
			require.Error(t, err)
			assert.Nil(t, cfg)
			assert.Nil(t, w)
			for _, want := range tc.want {
				assert.Contains(t, err.Error(), want)
			}
			if tc.dt == kernels.F32 {
				// validate finds the same problem without loading weights,
				// except for data the headers cannot show.
				_, ierr := Inspect(mdir, adir)
				require.Error(t, ierr)
			}
		})
	}
}

// TestQ8 loads the merged model into the kernels' int8 format: every weight
// within its block's quantization step of the f32 merge.
func TestQ8(t *testing.T) {
	s := synth.Tiny()
	mdir := tinyModel(t, s)
	adir := tinyAdapter(t, s, synth.AdapterSpec{Rank: 4, Alpha: 8, Targets: synth.AllLinear, BStd: 0.05})
	_, w8, err := Load(mdir, adir, kernels.Q8)
	require.NoError(t, err)
	_, w32, err := Load(mdir, adir, kernels.F32)
	require.NoError(t, err)
	for _, pair := range [][2]*kernels.Matrix{{w8.Layers[1].Up, w32.Layers[1].Up}, {w8.Embed, w32.Embed}, {w8.LMHead, w32.LMHead}} {
		require.Equal(t, kernels.Q8, pair[0].DType)
		q, f := matrixValues(pair[0]), matrixValues(pair[1])
		maxAbs := 0.0
		for _, v := range f {
			maxAbs = math.Max(maxAbs, math.Abs(float64(v)))
		}
		for i := range f {
			require.InDelta(t, float64(f[i]), float64(q[i]), maxAbs/127/2+1e-6, "element %d", i)
		}
	}
}

func TestSyntheticNumbers(t *testing.T) {
	// The synthetic writer's values are what the loader reads, in every dtype.
	for _, dt := range []safetensors.DType{safetensors.BF16, safetensors.F16, safetensors.F32} {
		vals := []float32{0, 1, -1.5, 0.1, 3e-5, -1e-7, 60000}
		raw := synth.Encode(nil, vals, dt)
		p := filepath.Join(t.TempDir(), "x.safetensors")
		w, err := safetensors.Create(p, []safetensors.Spec{{Name: "x", DType: dt, Shape: []int{len(vals)}}}, nil)
		require.NoError(t, err)
		_, err = w.Write(raw)
		require.NoError(t, err)
		require.NoError(t, w.Close())
		got := tensorF32(t, p, "x")
		for i, v := range vals {
			tol := map[safetensors.DType]float64{safetensors.BF16: 1.0 / 256, safetensors.F16: 1.0 / 2048, safetensors.F32: 0}[dt]
			assert.InDelta(t, float64(v), float64(got[i]), tol*math.Abs(float64(v))+1e-7, "%s %v", dt, v)
		}
	}
}
