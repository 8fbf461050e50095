package safetensors

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// rawFile writes a safetensors file from a header string and data bytes.
func rawFile(t *testing.T, dir, name, header string, data []byte) string {
	t.Helper()
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	b = append(b, header...)
	b = append(b, data...)
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, b, 0o644))
	return p
}

func writeTensors(t *testing.T, path string, specs []Spec, data [][]byte) {
	t.Helper()
	w, err := Create(path, specs, map[string]string{"format": "pt"})
	require.NoError(t, err)
	for _, d := range data {
		_, err := w.Write(d)
		require.NoError(t, err)
	}
	require.NoError(t, w.Close())
}

func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.safetensors")
	f32 := []float32{1, -2.5, 3.25, float32(math.Inf(1)), 1e-30, 0}
	var f32b, bf16b, f16b []byte
	for _, v := range f32 {
		f32b = binary.LittleEndian.AppendUint32(f32b, math.Float32bits(v))
	}
	bf := []uint16{0x3f80, 0xc020, 0x0001, 0x7f80} // 1, -2.5, smallest subnormal, +inf
	for _, v := range bf {
		bf16b = binary.LittleEndian.AppendUint16(bf16b, v)
	}
	hf := []uint16{0x3c00, 0xc100, 0x0001, 0x7bff} // 1, -2.5, 2^-24, 65504
	for _, v := range hf {
		f16b = binary.LittleEndian.AppendUint16(f16b, v)
	}
	writeTensors(t, path, []Spec{
		{Name: "a.f32", DType: F32, Shape: []int{2, 3}},
		{Name: "b.bf16", DType: BF16, Shape: []int{4}},
		{Name: "c.f16", DType: F16, Shape: []int{2, 2}},
		{Name: "d.empty", DType: F32, Shape: []int{0, 5}},
	}, [][]byte{f32b, bf16b, f16b})

	for _, mm := range []bool{true, false} {
		t.Run(map[bool]string{true: "mmap", false: "read"}[mm], func(t *testing.T) {
			f, err := open(path, mm)
			require.NoError(t, err)
			defer f.Close()
			assert.Equal(t, []string{"a.f32", "b.bf16", "c.f16", "d.empty"}, f.Names())
			assert.Equal(t, "pt", f.Metadata()["format"])

			a, err := f.Tensor("a.f32")
			require.NoError(t, err)
			assert.Equal(t, []int{2, 3}, a.Shape)
			got, err := a.F32()
			require.NoError(t, err)
			assert.Equal(t, f32, got)

			b, err := f.Tensor("b.bf16")
			require.NoError(t, err)
			got, err = b.F32()
			require.NoError(t, err)
			assert.Equal(t, []float32{1, -2.5, math.Float32frombits(1 << 16), float32(math.Inf(1))}, got)
			raw := make([]uint16, 4)
			require.NoError(t, b.BF16Into(raw))
			assert.Equal(t, bf, raw)
			assert.Equal(t, bf, b.BF16View(), "in place: the same bits")
			f.Release(b) // still readable afterwards
			got, err = b.F32()
			require.NoError(t, err)
			assert.Equal(t, float32(1), got[0])

			c, err := f.Tensor("c.f16")
			require.NoError(t, err)
			got, err = c.F32()
			require.NoError(t, err)
			assert.Equal(t, []float32{1, -2.5, float32(math.Ldexp(1, -24)), 65504}, got)
			assert.Error(t, c.BF16Into(make([]uint16, 4)), "F16 is not raw BF16")
			assert.Nil(t, c.BF16View(), "F16 is not raw BF16")

			e, err := f.Tensor("d.empty")
			require.NoError(t, err)
			assert.Equal(t, 0, e.NumElements())

			_, err = f.Tensor("nope")
			assert.ErrorContains(t, err, "no tensor nope")
		})
	}
}

// TestF16Exhaustive checks every half-precision bit pattern against the
// definition of the format, computed in float64.
func TestF16Exhaustive(t *testing.T) {
	for h := range 1 << 16 {
		sign := 1.0
		if h&0x8000 != 0 {
			sign = -1
		}
		exp, man := (h>>10)&0x1f, h&0x3ff
		var want float64
		switch {
		case exp == 0x1f && man == 0:
			want = math.Inf(int(sign))
		case exp == 0x1f:
			want = math.NaN()
		case exp == 0:
			want = sign * float64(man) * math.Ldexp(1, -24)
		default:
			want = sign * (1 + float64(man)/1024) * math.Ldexp(1, exp-15)
		}
		got := F16ToF32(uint16(h))
		if math.IsNaN(want) {
			require.True(t, math.IsNaN(float64(got)), "h=%#04x", h)
			continue
		}
		require.Equal(t, want, float64(got), "h=%#04x", h)
		require.Equal(t, math.Signbit(want), math.Signbit(float64(got)), "h=%#04x", h)
	}
}

func TestBadFiles(t *testing.T) {
	dir := t.TempDir()
	eightFloats := make([]byte, 32)
	hdr := func(entries string) string { return "{" + entries + "}" }
	cases := []struct {
		name string
		make func() string
		want []string
	}{
		{"empty file", func() string {
			p := filepath.Join(dir, "empty.safetensors")
			require.NoError(t, os.WriteFile(p, nil, 0o644))
			return p
		}, []string{"empty.safetensors", "shorter than the 8-byte header length"}},
		{"header length past the end", func() string {
			b := binary.LittleEndian.AppendUint64(nil, 1000)
			p := filepath.Join(dir, "hlen.safetensors")
			require.NoError(t, os.WriteFile(p, append(b, "{}"...), 0o644))
			return p
		}, []string{"hlen.safetensors", "runs past the end"}},
		{"header length over the cap", func() string {
			b := binary.LittleEndian.AppendUint64(nil, 1<<40)
			p := filepath.Join(dir, "cap.safetensors")
			require.NoError(t, os.WriteFile(p, append(b, "{}"...), 0o644))
			return p
		}, []string{"cap.safetensors", "exceeds the"}},
		{"invalid json", func() string {
			return rawFile(t, dir, "json.safetensors", `{"a": {"dtype": "F32",`, nil)
		}, []string{"json.safetensors", "invalid safetensors header"}},
		{"not an object", func() string {
			return rawFile(t, dir, "arr.safetensors", `[1, 2]`, nil)
		}, []string{"arr.safetensors", "not a JSON object"}},
		{"trailing bytes", func() string {
			return rawFile(t, dir, "trail.safetensors", `{} xx`, nil)
		}, []string{"trail.safetensors", "trailing bytes"}},
		{"offsets outside the data", func() string {
			return rawFile(t, dir, "out.safetensors", hdr(`"w": {"dtype": "F32", "shape": [16], "data_offsets": [0, 64]}`), eightFloats)
		}, []string{"out.safetensors", "tensor w", "run past the 32-byte data area"}},
		{"truncated file", func() string {
			p := filepath.Join(dir, "trunc.safetensors")
			writeTensors(t, p, []Spec{{Name: "x", DType: F32, Shape: []int{8}}, {Name: "y", DType: F32, Shape: []int{8}}}, [][]byte{eightFloats, eightFloats})
			st, err := os.Stat(p)
			require.NoError(t, err)
			require.NoError(t, os.Truncate(p, st.Size()-5))
			return p
		}, []string{"trunc.safetensors", "tensor y", "truncated file?"}},
		{"overlap", func() string {
			return rawFile(t, dir, "overlap.safetensors", hdr(`"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}, "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}`), eightFloats)
		}, []string{"overlap.safetensors", "a [0, 16)", "b [8, 24)", "overlap"}},
		{"bytes do not match the shape", func() string {
			return rawFile(t, dir, "size.safetensors", hdr(`"w": {"dtype": "BF16", "shape": [3, 4], "data_offsets": [0, 32]}`), eightFloats)
		}, []string{"size.safetensors", "tensor w", "needs 24 bytes", "hold 32"}},
		{"negative dimension", func() string {
			return rawFile(t, dir, "neg.safetensors", hdr(`"w": {"dtype": "F32", "shape": [-1, 8], "data_offsets": [0, 32]}`), eightFloats)
		}, []string{"neg.safetensors", "tensor w", "negative dimension"}},
		{"overflowing shape", func() string {
			return rawFile(t, dir, "ovf.safetensors", hdr(`"w": {"dtype": "F32", "shape": [4294967296, 4294967296, 4], "data_offsets": [0, 32]}`), eightFloats)
		}, []string{"ovf.safetensors", "tensor w", "overflows"}},
		{"fractional dimension", func() string {
			return rawFile(t, dir, "frac.safetensors", hdr(`"w": {"dtype": "F32", "shape": [2.5], "data_offsets": [0, 10]}`), eightFloats)
		}, []string{"frac.safetensors", "tensor w"}},
		{"unknown dtype", func() string {
			return rawFile(t, dir, "dt.safetensors", hdr(`"w": {"dtype": "Q4", "shape": [8], "data_offsets": [0, 32]}`), eightFloats)
		}, []string{"dt.safetensors", "tensor w", `unknown dtype "Q4"`}},
		{"duplicate name", func() string {
			return rawFile(t, dir, "dup.safetensors", hdr(`"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}, "w": {"dtype": "F32", "shape": [4], "data_offsets": [16, 32]}`), eightFloats)
		}, []string{"dup.safetensors", `"w" appears twice`}},
		{"unknown field", func() string {
			return rawFile(t, dir, "field.safetensors", hdr(`"w": {"dtype": "F32", "shape": [8], "data_offsets": [0, 32], "scale": 2}`), eightFloats)
		}, []string{"field.safetensors", "tensor w", "scale"}},
		{"three offsets", func() string {
			return rawFile(t, dir, "off3.safetensors", hdr(`"w": {"dtype": "F32", "shape": [8], "data_offsets": [0, 16, 32]}`), eightFloats)
		}, []string{"off3.safetensors", "tensor w", "has 3 values"}},
		{"decreasing offsets", func() string {
			return rawFile(t, dir, "dec.safetensors", hdr(`"w": {"dtype": "F32", "shape": [0], "data_offsets": [16, 8]}`), eightFloats)
		}, []string{"dec.safetensors", "tensor w", "not an increasing pair"}},
		{"bad metadata", func() string {
			return rawFile(t, dir, "meta.safetensors", hdr(`"__metadata__": {"format": 1}`), nil)
		}, []string{"meta.safetensors", "__metadata__"}},
		{"too many dimensions", func() string {
			return rawFile(t, dir, "rank.safetensors", hdr(`"w": {"dtype": "F32", "shape": [1,1,1,1,1,1,1,1,8], "data_offsets": [0, 32]}`), eightFloats)
		}, []string{"rank.safetensors", "tensor w", "9 dimensions"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.make()
			f, err := Open(p)
			require.Error(t, err)
			assert.Nil(t, f)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestOpenDir(t *testing.T) {
	four := make([]byte, 16)
	mk := func(t *testing.T) string {
		dir := t.TempDir()
		writeTensors(t, filepath.Join(dir, "model-00001-of-00002.safetensors"), []Spec{{Name: "a", DType: F32, Shape: []int{4}}}, [][]byte{four})
		writeTensors(t, filepath.Join(dir, "model-00002-of-00002.safetensors"), []Spec{{Name: "b", DType: F32, Shape: []int{4}}}, [][]byte{four})
		return dir
	}
	index := func(t *testing.T, dir string, m map[string]string) {
		b, err := json.Marshal(map[string]any{"metadata": map[string]any{"total_size": 32}, "weight_map": m})
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, IndexFile), b, 0o644))
	}
	t.Run("sharded", func(t *testing.T) {
		dir := mk(t)
		index(t, dir, map[string]string{"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"})
		s, err := OpenDir(dir)
		require.NoError(t, err)
		defer s.Close()
		assert.Equal(t, []string{"a", "b"}, s.Names())
		assert.Len(t, s.Files(), 2)
		tb, err := s.Tensor("b")
		require.NoError(t, err)
		assert.Equal(t, filepath.Join(dir, "model-00002-of-00002.safetensors"), tb.File)
		assert.Equal(t, tb.File, s.FileOf("b"))
	})
	t.Run("single", func(t *testing.T) {
		dir := t.TempDir()
		writeTensors(t, filepath.Join(dir, SingleFile), []Spec{{Name: "a", DType: F32, Shape: []int{4}}}, [][]byte{four})
		s, err := OpenDir(dir)
		require.NoError(t, err)
		defer s.Close()
		assert.Equal(t, []string{"a"}, s.Names())
	})
	bad := []struct {
		name  string
		index map[string]string
		raw   string
		want  []string
	}{
		{name: "missing from shard", index: map[string]string{"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors", "c": "model-00002-of-00002.safetensors"}, want: []string{"tensor c", "not present in model-00002-of-00002.safetensors"}},
		{name: "wrong shard", index: map[string]string{"a": "model-00002-of-00002.safetensors", "b": "model-00001-of-00002.safetensors"}, want: []string{"tensor a", "not in model-00002-of-00002.safetensors"}},
		{name: "path escape", index: map[string]string{"a": "../model-00001-of-00002.safetensors"}, want: []string{"tensor a", "must be a file in the model folder"}},
		{name: "shard file missing", index: map[string]string{"a": "model-00003-of-00003.safetensors"}, want: []string{"model-00003-of-00003.safetensors"}},
		{name: "unlisted tensor", index: map[string]string{"a": "model-00001-of-00002.safetensors"}, want: nil}, // b is in no listed shard: nothing opened for it
		{name: "empty index", raw: `{"weight_map": {}}`, want: []string{IndexFile, "empty or missing weight_map"}},
		{name: "bad json", raw: `{"weight_map": [}`, want: []string{IndexFile}},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			dir := mk(t)
			if tc.raw != "" {
				require.NoError(t, os.WriteFile(filepath.Join(dir, IndexFile), []byte(tc.raw), 0o644))
			} else {
				index(t, dir, tc.index)
			}
			s, err := OpenDir(dir)
			if tc.want == nil {
				require.NoError(t, err)
				assert.Equal(t, []string{"a"}, s.Names())
				s.Close()
				return
			}
			require.Error(t, err)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
	t.Run("duplicate across files", func(t *testing.T) {
		dir := t.TempDir()
		p1, p2 := filepath.Join(dir, "x.safetensors"), filepath.Join(dir, "y.safetensors")
		writeTensors(t, p1, []Spec{{Name: "a", DType: F32, Shape: []int{4}}}, [][]byte{four})
		writeTensors(t, p2, []Spec{{Name: "a", DType: F32, Shape: []int{4}}}, [][]byte{four})
		_, err := OpenFiles(p1, p2)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "tensor a is in both")
	})
	t.Run("no checkpoint", func(t *testing.T) {
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(dir, "pytorch_model.bin"), []byte("x"), 0o644))
		_, err := OpenDir(dir)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "only safetensors checkpoints are supported")
	})
}

func TestWriterChecksLength(t *testing.T) {
	p := filepath.Join(t.TempDir(), "w.safetensors")
	w, err := Create(p, []Spec{{Name: "a", DType: F32, Shape: []int{2}}}, nil)
	require.NoError(t, err)
	_, err = w.Write(make([]byte, 12))
	assert.ErrorContains(t, err, "past the 8 the header declares")
	_, err = w.Write(make([]byte, 4))
	require.NoError(t, err)
	assert.ErrorContains(t, w.Close(), "4 of 8 data bytes written")
}

// FuzzOpen feeds arbitrary bytes to the header checks: they may fail, never
// panic, and whatever opens must hand out tensors that lie inside the file.
func FuzzOpen(f *testing.F) {
	f.Add([]byte(`{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}`), []byte("12345678"))
	f.Add([]byte(`{"a": {"dtype": "BF16", "shape": [1, 2], "data_offsets": [0, 4]}, "__metadata__": {"k": "v"}}`), []byte("1234"))
	f.Add([]byte(`{}`), []byte(nil))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, header, data []byte) {
		b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
		b = append(append(b, header...), data...)
		p := filepath.Join(dir, "fuzz.safetensors")
		require.NoError(t, os.WriteFile(p, b, 0o644))
		sf, err := Open(p)
		if err != nil {
			assert.True(t, strings.HasPrefix(err.Error(), p), err.Error())
			return
		}
		defer sf.Close()
		for _, n := range sf.Names() {
			tt, err := sf.Tensor(n)
			require.NoError(t, err)
			assert.Len(t, tt.Data, tt.NumElements()*tt.DType.Size())
			if tt.DType.IsFloat() {
				_, err := tt.F32()
				assert.NoError(t, err)
			}
		}
	})
}

// TestUnalignedData reads tensors whose data start at odd addresses, which
// takes the byte-by-byte path.
func TestUnalignedData(t *testing.T) {
	dir := t.TempDir()
	var data []byte
	data = append(data, 0) // 1-byte pad: the next tensors start unaligned
	data = binary.LittleEndian.AppendUint16(data, 0x3f80)
	data = binary.LittleEndian.AppendUint16(data, 0xc020)
	data = binary.LittleEndian.AppendUint32(data, math.Float32bits(-7.25))
	header := `{"pad": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}, "b": {"dtype": "BF16", "shape": [2], "data_offsets": [1, 5]}, "f": {"dtype": "F32", "shape": [1], "data_offsets": [5, 9]}}`
	for (8+len(header))%8 != 0 {
		header += " " // the data area starts 8-aligned, so b and f start odd
	}
	p := rawFile(t, dir, "odd.safetensors", header, data)
	f, err := Open(p)
	require.NoError(t, err)
	defer f.Close()
	b, err := f.Tensor("b")
	require.NoError(t, err)
	got, err := b.F32()
	require.NoError(t, err)
	assert.Equal(t, []float32{1, -2.5}, got)
	raw := make([]uint16, 2)
	require.NoError(t, b.BF16Into(raw))
	assert.Equal(t, []uint16{0x3f80, 0xc020}, raw)
	assert.Nil(t, b.BF16View(), "an odd address is copied, not viewed")
	ft, err := f.Tensor("f")
	require.NoError(t, err)
	got, err = ft.F32()
	require.NoError(t, err)
	assert.Equal(t, []float32{-7.25}, got)
	_, err = f.Tensor("pad")
	require.NoError(t, err)
	pt, _ := f.Tensor("pad")
	_, err = pt.F32()
	assert.ErrorContains(t, err, "dtype U8 does not convert")
}
