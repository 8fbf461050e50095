package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// copyTinyModel copies the tiny-b test model (config, weights, tokenizer) into a
// fresh folder that a test may corrupt.
func copyTinyModel(t *testing.T) string {
	t.Helper()
	src := repoFile(t, "engine/llama/testdata/models/tiny-b")
	dst := filepath.Join(t.TempDir(), "model")
	require.NoError(t, os.CopyFS(dst, os.DirFS(src)))
	return dst
}

// editSafetensorsHeader rewrites the JSON header of a safetensors file with
// edit and keeps the data area as it is, so that only the table lies.
func editSafetensorsHeader(t *testing.T, path string, edit func(h map[string]map[string]any)) {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	n := binary.LittleEndian.Uint64(b[:8])
	var h map[string]map[string]any
	require.NoError(t, json.Unmarshal(b[8:8+n], &h))
	data := b[8+n:]
	edit(h)
	hb, err := json.Marshal(h)
	require.NoError(t, err)
	for (8+len(hb))%8 != 0 {
		hb = append(hb, ' ')
	}
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(hb)))
	out = append(append(out, hb...), data...)
	require.NoError(t, os.WriteFile(path, out, 0o644))
}

// tensorOffsets returns a tensor's data_offsets from a decoded header.
func tensorOffsets(t *testing.T, e map[string]any) (int64, int64) {
	t.Helper()
	o, ok := e["data_offsets"].([]any)
	require.True(t, ok, "data_offsets %v", e["data_offsets"])
	return int64(o[0].(float64)), int64(o[1].(float64))
}

// TestHostileModelFolders runs `batchtrans translate --model DIR` on model
// folders broken the ways a downloaded or tampered folder can be: each must
// be refused with exit 1 and a message naming the file at fault, before any
// text is produced and without a panic.
func TestHostileModelFolders(t *testing.T) {
	const norm, norm2 = "model.layers.0.input_layernorm.weight", "model.layers.0.post_attention_layernorm.weight"
	cases := []struct {
		name    string
		corrupt func(t *testing.T, model, adapter string)
		file    string   // names the file that must appear in the message
		want    []string // further fragments of the message
		adapter bool     // pass --adapter
	}{
		{
			name: "header length beyond the file",
			corrupt: func(t *testing.T, model, _ string) {
				p := filepath.Join(model, "model.safetensors")
				b, err := os.ReadFile(p)
				require.NoError(t, err)
				binary.LittleEndian.PutUint64(b[:8], 1<<40)
				require.NoError(t, os.WriteFile(p, b, 0o644))
			},
			file: "model.safetensors", want: []string{"header length"},
		},
		{
			name: "file cut inside the header",
			corrupt: func(t *testing.T, model, _ string) {
				require.NoError(t, os.Truncate(filepath.Join(model, "model.safetensors"), 100))
			},
			file: "model.safetensors",
		},
		{
			name: "offsets outside the data",
			corrupt: func(t *testing.T, model, _ string) {
				editSafetensorsHeader(t, filepath.Join(model, "model.safetensors"), func(h map[string]map[string]any) {
					b, e := tensorOffsets(t, h[norm])
					h[norm]["data_offsets"] = []int64{b + 1<<30, e + 1<<30}
				})
			},
			file: "model.safetensors", want: []string{"data_offsets"},
		},
		{
			name: "shape disagrees with the byte count",
			corrupt: func(t *testing.T, model, _ string) {
				editSafetensorsHeader(t, filepath.Join(model, "model.safetensors"), func(h map[string]map[string]any) {
					h[norm]["shape"] = []int{65}
				})
			},
			file: "model.safetensors", want: []string{"shape"},
		},
		{
			name: "shape with a huge dimension",
			corrupt: func(t *testing.T, model, _ string) {
				editSafetensorsHeader(t, filepath.Join(model, "model.safetensors"), func(h map[string]map[string]any) {
					h[norm]["shape"] = []int64{1 << 31, 1 << 31, 1 << 31}
				})
			},
			file: "model.safetensors", want: []string{"shape"},
		},
		{
			name: "overlapping tensors",
			corrupt: func(t *testing.T, model, _ string) {
				editSafetensorsHeader(t, filepath.Join(model, "model.safetensors"), func(h map[string]map[string]any) {
					b, e := tensorOffsets(t, h[norm])
					b2, e2 := tensorOffsets(t, h[norm2])
					require.Equal(t, e-b, e2-b2, "the two norms have the same size")
					h[norm2]["data_offsets"] = []int64{b, e}
				})
			},
			file: "model.safetensors", want: []string{"overlap"},
		},
		{
			name: "config with a billion layers",
			corrupt: func(t *testing.T, model, _ string) {
				editJSONFile(t, filepath.Join(model, "config.json"), func(m map[string]any) { m["num_hidden_layers"] = 1_000_000_000 })
			},
			file: "config.json", want: []string{"num_hidden_layers"},
		},
		{
			name: "config with absurd sizes within each limit",
			corrupt: func(t *testing.T, model, _ string) {
				editJSONFile(t, filepath.Join(model, "config.json"), func(m map[string]any) {
					m["hidden_size"], m["intermediate_size"], m["vocab_size"] = 65536, 1<<20, 1<<22
					m["num_attention_heads"], m["num_hidden_layers"] = 64, 1024
				})
			},
			file: "config.json", want: []string{"parameters"},
		},
		{
			name: "config that is not JSON",
			corrupt: func(t *testing.T, model, _ string) {
				require.NoError(t, os.WriteFile(filepath.Join(model, "config.json"), []byte(`{"num_hidden_layers": 3,`), 0o644))
			},
			file: "config.json",
		},
		{
			name: "broken tokenizer.json",
			corrupt: func(t *testing.T, model, _ string) {
				p := filepath.Join(model, "tokenizer.json")
				b, err := os.ReadFile(p)
				require.NoError(t, err)
				require.NoError(t, os.WriteFile(p, b[:len(b)/2], 0o644))
			},
			file: "tokenizer.json",
		},
		{
			name: "tokenizer.json with a merge of unknown tokens",
			corrupt: func(t *testing.T, model, _ string) {
				editJSONFile(t, filepath.Join(model, "tokenizer.json"), func(m map[string]any) {
					mdl := m["model"].(map[string]any)
					mdl["merges"] = append(mdl["merges"].([]any), []any{"nosuchtoken", "another"})
				})
			},
			file: "tokenizer.json", want: []string{"merge"},
		},
		{
			name: "pickle adapter only",
			corrupt: func(t *testing.T, _, adapter string) {
				src := repoFile(t, "engine/llama/testdata/adapters/b-rslora/adapter_config.json")
				b, err := os.ReadFile(src)
				require.NoError(t, err)
				require.NoError(t, os.WriteFile(filepath.Join(adapter, "adapter_config.json"), b, 0o644))
				// A pickle that would run a shell command if it were unpickled.
				pickle := "\x80\x04\x95\x1f\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x8c\x06system\x93\x8c\x07touch x\x85R."
				require.NoError(t, os.WriteFile(filepath.Join(adapter, "adapter_model.bin"), []byte(pickle), 0o644))
			},
			file: "adapter_model.bin", want: []string{"pickle"}, adapter: true,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			model := copyTinyModel(t)
			adapter := filepath.Join(t.TempDir(), "adapter")
			require.NoError(t, os.Mkdir(adapter, 0o755))
			c.corrupt(t, model, adapter)
			args := []string{"translate", "--model", model, "--max-new-tokens", "2", "--date", "25 Nov 2026"}
			if c.adapter {
				args = append(args, "--adapter", adapter)
			}
			work := t.TempDir()
			r := runExeIn(t, work, args, "hello world")
			t.Logf("stderr: %s", r.stderr)
			assert.Equal(t, 1, r.code, "stderr: %s", r.stderr)
			assert.Empty(t, r.stdout, "a refused model must print no translation")
			dir := model
			if c.adapter {
				dir = adapter
			}
			assert.Contains(t, r.stderr, filepath.Join(dir, c.file), "the message names the file")
			for _, w := range c.want {
				assert.Contains(t, r.stderr, w)
			}
			assert.NotContains(t, r.stderr, "panic")
			assert.NotContains(t, r.stderr, "goroutine ")
			_, err := os.Stat(filepath.Join(work, "x"))
			assert.ErrorIs(t, err, os.ErrNotExist, "nothing in the model folder may run")
		})
	}
	t.Run("the unbroken copy translates", func(t *testing.T) {
		r := runExeIn(t, t.TempDir(), []string{"translate", "--model", copyTinyModel(t), "--max-new-tokens", "2", "--date", "25 Nov 2026"}, "hello world")
		require.Equal(t, 0, r.code, "stderr: %s", r.stderr)
		assert.NotEmpty(t, strings.TrimSpace(r.stdout))
	})
}

// editJSONFile decodes a JSON object file, lets edit change it and writes
// it back.
func editJSONFile(t *testing.T, path string, edit func(m map[string]any)) {
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

// runExeIn runs the product build in dir with text as its last argument,
// so that anything a model file managed to run would land in dir.
func runExeIn(t *testing.T, dir string, args []string, text string) binResult {
	t.Helper()
	cmd := exec.Command(realBinary(t), append(args, text)...)
	cmd.Dir = dir
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return binResult{code, so.String(), se.String()}
}
