package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/batchtrans/batchtrans/runner"
)

// What an operator reads on stderr: failed rows, cut rows, early checks.

// TestRunLogsFailedRows: each failed row is logged once with the file as
// the job wrote it, its line, row, id, field and reason, in text and JSON
// logs alike; the output's error field names the file the same way.
func TestRunLogsFailedRows(t *testing.T) {
	rows := sampleRows(6)
	rows[4] = `{"sku":"S00004","text":"broken`
	rows[5] = `{"sku":"S00005","title":"no text"}`
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			dir := jobDir(t, "in.jsonl", rows, "")
			r := runBin(t, nil, "run", filepath.Join(dir, "job.yaml"), "--no-progress", "--log-format", format)
			require.Equal(t, 3, r.code, r.stderr)
			var failed []string
			for _, l := range strings.Split(r.stderr, "\n") {
				if strings.Contains(l, "row failed") {
					failed = append(failed, l)
				}
			}
			require.Len(t, failed, 2, r.stderr)
			if format == "text" {
				assert.Contains(t, failed[0]+failed[1], `file=in.jsonl line=5 row=4 reason="malformed JSON`)
				assert.Contains(t, failed[0]+failed[1], `file=in.jsonl line=6 row=5 id=5 field=text reason="missing text field"`)
			} else {
				got := map[float64]map[string]any{}
				for _, l := range failed {
					var m map[string]any
					require.NoError(t, json.Unmarshal([]byte(l), &m))
					assert.Equal(t, "in.jsonl", m["file"])
					got[m["line"].(float64)] = m
				}
				assert.Equal(t, float64(4), got[5]["row"])
				assert.Contains(t, got[5]["reason"], "malformed JSON")
				assert.Equal(t, "text", got[6]["field"])
				assert.Equal(t, float64(5), got[6]["row"])
			}
			assert.Contains(t, r.stderr, "2 of 6 rows failed; each is recorded in the error field of "+filepath.Join(dir, "out/result.jsonl"))

			out := outputRows(t, filepath.Join(dir, "out/result.jsonl"))
			assert.True(t, strings.HasPrefix(out[4]["error"].(string), "in.jsonl line 5 (row 4): malformed JSON"), out[4]["error"])
			assert.Equal(t, `in.jsonl line 6 (row 5): field "text": missing text field`, out[5]["error"])
		})
	}
}

// TestRunFailedRowLogIsBounded: a thousand bad rows log the first
// runner.LoggedFailures, then only counts; the summary says how many and
// where they are recorded.
func TestRunFailedRowLogIsBounded(t *testing.T) {
	rows := sampleRows(2000)
	for i := 0; i < len(rows); i += 2 {
		rows[i] = "not json"
	}
	dir := jobDir(t, "in.jsonl", rows, "on_error: skip\n")
	r := runBin(t, nil, "run", filepath.Join(dir, "job.yaml"), "--no-progress", "--log-format", "json")
	require.Equal(t, 3, r.code, r.stderr)
	var failed int
	var summary map[string]any
	for _, l := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) != nil {
			continue // the final error line is plain text
		}
		switch {
		case m["msg"] == "row failed":
			failed++
		case m["msg"] == "summary":
			summary = m
		}
	}
	assert.Equal(t, runner.LoggedFailures, failed)
	assert.Less(t, len(r.stderr), 20_000, "the log stays short")
	require.NotNil(t, summary)
	assert.Equal(t, float64(1000), summary["skipped"])
	errorsFile := filepath.Join(dir, "out/result.jsonl.errors.jsonl")
	assert.Equal(t, errorsFile, summary["failures_in"])
	assert.Contains(t, r.stderr, "1000 of 2000 rows failed; each is recorded in "+errorsFile)
}

// TestRunChecksBeforeLoading: run does validate's cheap checks before it
// loads any weights, so a bad input or output is reported without waiting
// for the model, even when the model folder is broken too.
func TestRunChecksBeforeLoading(t *testing.T) {
	badParquet := func(t *testing.T, dir string) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, "in.parquet"), []byte("PAR1 this is not parquet"), 0o644))
	}
	// noWeights points the job at a copy of the tiny translator without
	// its weights: loading it would fail with a model error.
	noWeights := func(t *testing.T, dir string) {
		m := filepath.Join(dir, "model")
		require.NoError(t, os.CopyFS(m, os.DirFS(repoFile(t, "examples/models/tiny-translator/base"))))
		require.NoError(t, os.Remove(filepath.Join(m, "model.safetensors")))
		job, err := os.ReadFile(filepath.Join(dir, "job.yaml"))
		require.NoError(t, err)
		s := strings.Replace(string(job), repoFile(t, "examples/models/tiny-translator/base"), m, 1)
		require.NoError(t, os.WriteFile(filepath.Join(dir, "job.yaml"), []byte(s), 0o644))
	}
	tests := []struct {
		name   string
		input  string
		lines  []string
		setup  func(t *testing.T, dir string)
		extra  string
		stderr []string
	}{
		{name: "input not parquet", input: "in.parquet", setup: badParquet, stderr: []string{"open input", "in.parquet"}},
		{name: "input not parquet, model without weights", input: "in.parquet",
			setup:  func(t *testing.T, dir string) { badParquet(t, dir); noWeights(t, dir) },
			stderr: []string{"open input", "in.parquet", "model:"}},
		{name: "no text field", input: "in.jsonl", lines: []string{`{"sku":"a","body":"x"}`},
			stderr: []string{"input.text_field", `no field "text"`}},
		{name: "output folder not writable", input: "in.jsonl", lines: sampleRows(2),
			setup: func(t *testing.T, dir string) {
				require.NoError(t, os.WriteFile(filepath.Join(dir, "out"), []byte("a file, not a folder"), 0o644))
			},
			stderr: []string{"output.path", "not a folder"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := textJob(t, tt.input, tt.lines, tt.extra)
			if tt.setup != nil {
				tt.setup(t, dir)
			}
			r := runReal(t, nil, "run", filepath.Join(dir, "job.yaml"), "--no-progress")
			assert.Equal(t, 1, r.code, r.stderr)
			for _, s := range tt.stderr {
				assert.Contains(t, r.stderr, s)
			}
			assert.NotContains(t, r.stderr, "model loaded", "the checks come before the weights")
		})
	}
}

// TestRunCutRows: with the real model and a limit of two new tokens,
// every translation is cut off: by default each row fails (exit 3) with
// its partial text, finish_reason "length" and an error saying where it
// stops; accepting cut rows afterwards rewrites the output without
// translating again.
func TestRunCutRows(t *testing.T) {
	dir := textJob(t, "in.jsonl", sampleRows(4), "generation:\n  max_new_tokens: 2\n  accept_cut: false\n")
	job := filepath.Join(dir, "job.yaml")
	r := runReal(t, nil, "run", job, "--no-progress")
	require.Equal(t, 3, r.code, r.stderr)
	assert.Contains(t, r.stderr, "4 of 4 rows failed (4 cut off at generation.max_new_tokens")
	assert.Contains(t, r.stderr, "cut=4")
	assert.Contains(t, r.stderr, "translation cut off at generation.max_new_tokens (2)")
	out := outputRows(t, filepath.Join(dir, "out/result.jsonl"))
	require.Len(t, out, 4)
	for i, row := range out {
		assert.Equal(t, "length", row["finish_reason"], "row %d", i)
		assert.NotEmpty(t, row["translation"], "row %d keeps its partial text", i)
		assert.Equal(t, fmt.Sprintf("in.jsonl line %d (row %d): translation cut off at generation.max_new_tokens (2) after %q", i+1, i, row["translation"]), row["error"])
	}

	r = runReal(t, nil, "status", job)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "4 done of 4 (100.0%), 4 failed, 0 left")
	assert.Contains(t, r.stdout, "4 cut off at generation.max_new_tokens, counted as failed")

	writeTextJob(t, dir, "in.jsonl", "generation:\n  max_new_tokens: 2\n  accept_cut: true\n")
	r = runReal(t, nil, "run", job, "--no-progress")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, "resumed=4", "no restart and nothing translated again")
	for i, row := range outputRows(t, filepath.Join(dir, "out/result.jsonl")) {
		assert.Equal(t, "length", row["finish_reason"], "row %d", i)
		assert.Nil(t, row["error"], "row %d", i)
	}
}
