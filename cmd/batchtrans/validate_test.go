package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/batchtrans/batchtrans/engine/llama/synth"
)

// tinyModelJob is a job folder whose model is a small random Llama (with
// the tiny translator's tokenizer, so the folder is complete).
func tinyModelJob(t *testing.T, lines []string, extra string) string {
	t.Helper()
	dir := jobDir(t, "in.jsonl", lines, extra)
	model := filepath.Join(dir, "model")
	require.NoError(t, os.RemoveAll(model))
	require.NoError(t, synth.WriteModel(model, synth.Tiny(), 1))
	tok, err := os.ReadFile(repoFile(t, "examples/models/tiny-translator/base/tokenizer.json"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(model, "tokenizer.json"), tok, 0o644))
	return dir
}

func TestValidatePrintsThePlan(t *testing.T) {
	lines := sampleRows(25)
	lines[3] = `{"broken`
	dir := tinyModelJob(t, lines, "runtime:\n  device: cpu\n")
	r := runReal(t, nil, "validate", filepath.Join(dir, "job.yaml"))
	require.Equal(t, 0, r.code, r.stderr)
	for _, want := range []string{
		"25 rows", "1 unreadable", `translating "text"`, "sku:string", "price:float",
		"2 layers, hidden 32, 4 heads (2 kv), vocab 96", "device:  cpu", "Forcing CPU",
		"translation:string", "error:string", "finish_reason:string", "rows cut at max_new_tokens 256 fail",
	} {
		assert.Contains(t, r.stdout, want)
	}
	_, err := os.Stat(filepath.Join(dir, "out"))
	assert.True(t, os.IsNotExist(err), "validate writes nothing")
}

func TestValidateFindsProblems(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T) string
		code  int
		want  []string
	}{
		{"no text field in the input", func(t *testing.T) string {
			lines := []string{`{"sku":"a","body":"x"}`}
			return tinyModelJob(t, lines, "")
		}, 1, []string{`input.text_field`, `no field "text"`}},
		{"keep names a missing field", func(t *testing.T) string {
			dir := tinyModelJob(t, sampleRows(2), "")
			job, _ := os.ReadFile(filepath.Join(dir, "job.yaml"))
			s := strings.Replace(string(job), "  path: out/result.jsonl\n", "  path: out/result.jsonl\n  keep: [sku, colour]\n", 1)
			require.NoError(t, os.WriteFile(filepath.Join(dir, "job.yaml"), []byte(s), 0o644))
			return dir
		}, 1, []string{`output.keep`, `"colour"`}},
		{"model folder without weights", func(t *testing.T) string {
			return jobDir(t, "in.jsonl", sampleRows(2), "")
		}, 1, []string{"model:"}},
		{"model folder without a tokenizer", func(t *testing.T) string {
			dir := tinyModelJob(t, sampleRows(2), "")
			require.NoError(t, os.Remove(filepath.Join(dir, "model", "tokenizer.json")))
			return dir
		}, 1, []string{"model: tokenizer:", "tokenizer.json"}},
		{"output folder not writable", func(t *testing.T) string {
			dir := tinyModelJob(t, sampleRows(2), "")
			require.NoError(t, os.WriteFile(filepath.Join(dir, "out"), nil, 0o644))
			return dir
		}, 1, []string{"output.path:", "not a folder"}},
		{"device this build lacks", func(t *testing.T) string {
			return tinyModelJob(t, sampleRows(2), "runtime:\n  device: mps\n")
		}, 2, []string{"mps"}},
		{"unknown key", func(t *testing.T) string {
			return tinyModelJob(t, sampleRows(2), "prompt2: x\n")
		}, 2, []string{"job.yaml:14", `"prompt2"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := tt.setup(t)
			r := runReal(t, nil, "validate", filepath.Join(dir, "job.yaml"))
			assert.Equal(t, tt.code, r.code, r.stderr)
			for _, w := range tt.want {
				assert.Contains(t, r.stderr, w)
			}
		})
	}
}
