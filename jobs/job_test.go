package jobs

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/batchtrans/batchtrans/io/dataset"
)

const minimal = `version: 1
input:
  path: data/in.jsonl
  text_field: text
output:
  path: out/in.de.jsonl
model:
  path: models/m
`

func writeJob(t *testing.T, body string) string {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, "job.yaml")
	require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
	return p
}

func TestLoadDefaultsAndPaths(t *testing.T) {
	p := writeJob(t, minimal)
	j, err := Load(p)
	require.NoError(t, err)
	require.NoError(t, j.Validate())
	dir := filepath.Dir(p)
	assert.Equal(t, Paths{filepath.Join(dir, "data/in.jsonl")}, j.Input.Path)
	assert.Equal(t, filepath.Join(dir, "out/in.de.jsonl"), j.Output.Path)
	assert.Equal(t, j.Output.Path+".ckpt", j.Checkpoint.Path)
	assert.Equal(t, "jsonl", j.Input.Format)
	assert.Equal(t, "translation", j.Output.Field)
	assert.Equal(t, "error", j.Output.ErrorField)
	assert.Equal(t, "finish_reason", j.Output.FinishReasonField)
	assert.False(t, j.Generation.AcceptCut, "a cut row fails unless the job accepts it")
	assert.Equal(t, Paths{"data/in.jsonl"}, j.Input.Written, "messages name the input as written")
	assert.Equal(t, "{{.Text}}", j.Prompt.User)
	assert.Equal(t, 256, j.Generation.MaxNewTokens)
	assert.Equal(t, 1.0, *j.Generation.TopP)
	assert.Equal(t, "record", j.OnError)
	assert.Equal(t, "auto", j.Runtime.Device)
	assert.Nil(t, j.Output.Keep, "keep unset means all fields")
}

func TestParseErrorsNameKeyAndLine(t *testing.T) {
	tests := []struct {
		name string
		body string
		want []string
	}{
		{"unknown top-level key", minimal + "extra: 1\n", []string{":9:", `unknown key "extra"`}},
		{"unknown nested key", strings.Replace(minimal, "  text_field: text\n", "  text_field: text\n  txt_field: x\n", 1), []string{":5:", `"input.txt_field"`}},
		{"bad type", minimal + "generation:\n  max_new_tokens: lots\n", []string{"line 10", "lots"}},
		{"section not a mapping", minimal + "runtime: 3\n", []string{":9:", `"runtime" must be a mapping`}},
		{"repeated key", minimal + "on_error: skip\non_error: fail\n", []string{":10:", "repeated"}},
		{"not a mapping", "- a\n- b\n", []string{"must be a mapping"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(writeJob(t, tt.body))
			require.Error(t, err)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	body := `version: 2
input:
  path: in.txt
output:
  path: out.jsonl
  field: x
  error_field: x
  finish_reason_field: x
model:
  path: m
  dtype: f16
prompt:
  user: "{{.Text"
  chat_template: jinja
generation:
  max_new_tokens: -1
  temperature: -1
  top_p: 0
runtime:
  device: tpu
on_error: explode
`
	j, err := Load(writeJob(t, body))
	require.NoError(t, err)
	err = j.Validate()
	require.Error(t, err)
	for _, key := range []string{"version", "input.format", "input.text_field", "output.error_field", "output.finish_reason_field", "model.dtype",
		"prompt.user", "prompt.chat_template", "generation.max_new_tokens", "generation.temperature",
		"generation.top_p", "runtime.device", "on_error"} {
		assert.Contains(t, err.Error(), key+":")
	}
}

func TestKeepEmptyMeansNone(t *testing.T) {
	_, err := Load(writeJob(t, minimal+"  keep: []\n"))
	require.Error(t, err, "keep after model: is a model key")
	body := strings.Replace(minimal, "  path: out/in.de.jsonl\n", "  path: out/in.de.jsonl\n  keep: []\n", 1)
	j, err := Load(writeJob(t, body))
	require.NoError(t, err)
	assert.NotNil(t, j.Output.Keep)
	assert.Empty(t, j.Output.Keep)
}

func TestFingerprintNamesWhatChanged(t *testing.T) {
	p := writeJob(t, minimal)
	dir := filepath.Dir(p)
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "data"), 0o755))
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "models/m"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "data/in.jsonl"), []byte(`{"text":"a"}`+"\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "models/m/config.json"), []byte(`{}`), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "models/m/model.safetensors"), []byte("xx"), 0o644))
	j, err := Load(p)
	require.NoError(t, err)
	base, err := compute(t, j)
	require.NoError(t, err)
	again, err := compute(t, j)
	require.NoError(t, err)
	assert.Empty(t, again.Diff(base))

	tests := []struct {
		name   string
		change func(j *Job)
		want   string
	}{
		{"temperature", func(j *Job) { j.Generation.Temperature = 0.7 }, "generation.temperature changed"},
		{"system prompt", func(j *Job) { j.Prompt.System = "x" }, "prompt.system changed"},
		{"dtype", func(j *Job) { j.Model.DType = "q8" }, "model.dtype changed"},
		{"input", func(j *Job) {
			os.WriteFile(j.Input.Path[0], []byte(`{"text":"b"}`+"\n"), 0o644)
		}, "input file changed"},
		{"weights", func(j *Job) {
			os.WriteFile(filepath.Join(j.Model.Path, "model.safetensors"), []byte("xyz"), 0o644)
		}, "model weights changed"},
		{"config", func(j *Job) {
			os.WriteFile(filepath.Join(j.Model.Path, "config.json"), []byte(`{"a":1}`), 0o644)
		}, "model config files changed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j2, err := Load(p)
			require.NoError(t, err)
			tt.change(j2)
			fp, err := compute(t, j2)
			require.NoError(t, err)
			assert.Contains(t, fp.Describe(base), tt.want)
		})
	}

	// Settings applied when the output is written leave the checkpoint usable.
	j, err = Load(p)
	require.NoError(t, err)
	now, err := compute(t, j)
	require.NoError(t, err)
	for name, change := range map[string]func(j *Job){
		"accept_cut":          func(j *Job) { j.Generation.AcceptCut = true },
		"finish_reason_field": func(j *Job) { j.Output.FinishReasonField = "why" },
		"on_error":            func(j *Job) { j.OnError = OnErrorSkip },
	} {
		t.Run(name, func(t *testing.T) {
			j2, err := Load(p)
			require.NoError(t, err)
			change(j2)
			fp, err := compute(t, j2)
			require.NoError(t, err)
			assert.Empty(t, fp.Diff(now))
		})
	}
}

// compute fingerprints j with its one input file's digest.
func compute(t *testing.T, j *Job) (Fingerprint, error) {
	t.Helper()
	src, err := dataset.OpenLocal(j.Input.Path[0])
	require.NoError(t, err)
	defer src.Close()
	d, err := src.Digest()
	require.NoError(t, err)
	return Compute(j, d)
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(minimal))
	f.Add([]byte("version: 1\ninput: [1, 2]\n"))
	f.Add([]byte("{"))
	f.Fuzz(func(t *testing.T, data []byte) {
		j, err := Parse(data, "fuzz.yaml")
		if err == nil {
			j.Defaults()
			_ = j.Validate()
		}
	})
}

func TestInputPathsAndObjectURLs(t *testing.T) {
	tests := []struct {
		name      string
		input     string
		output    string
		extra     string
		wantIn    func(dir string) Paths
		wantCkpt  func(dir string) string
		wantSync  time.Duration
		wantError string
	}{
		{"one path", "data/in.jsonl", "out/o.jsonl", "",
			func(d string) Paths { return Paths{filepath.Join(d, "data/in.jsonl")} },
			func(d string) string { return filepath.Join(d, "out/o.jsonl.ckpt") }, 30 * time.Second, ""},
		{"a list", "[data/a.csv, /abs/b.csv]", "out/o.csv", "",
			func(d string) Paths { return Paths{filepath.Join(d, "data/a.csv"), "/abs/b.csv"} },
			func(d string) string { return filepath.Join(d, "out/o.csv.ckpt") }, 30 * time.Second, ""},
		{"a glob", "data/part-*.parquet", "out/o.parquet", "",
			func(d string) Paths { return Paths{filepath.Join(d, "data/part-*.parquet")} },
			func(d string) string { return filepath.Join(d, "out/o.parquet.ckpt") }, 30 * time.Second, ""},
		{"object URLs stay as written", `"s3://b/in/*.parquet?region=r"`, `"gs://b/out/o.jsonl"`, "checkpoint:\n  sync_every: 10s\n",
			func(d string) Paths { return Paths{"s3://b/in/*.parquet?region=r"} },
			func(d string) string { return "gs://b/out/o.jsonl.ckpt" }, 10 * time.Second, ""},
		{"a list of mappings", "[{a: 1}]", "out/o.jsonl", "", nil, nil, 0, "a path list holds strings"},
		{"a bad duration", "in.jsonl", "out/o.jsonl", "checkpoint:\n  sync_every: soon\n", nil, nil, 0, "soon"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := fmt.Sprintf("version: 1\ninput:\n  path: %s\n  text_field: text\noutput:\n  path: %s\nmodel:\n  path: m\n%s", tt.input, tt.output, tt.extra)
			p := writeJob(t, body)
			j, err := Load(p)
			if tt.wantError != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantError)
				return
			}
			require.NoError(t, err)
			require.NoError(t, j.Validate())
			d := filepath.Dir(p)
			assert.Equal(t, tt.wantIn(d), j.Input.Path)
			assert.Equal(t, tt.wantCkpt(d), j.Checkpoint.Path)
			assert.Equal(t, tt.wantSync, j.Checkpoint.SyncEvery)
			assert.NotEmpty(t, j.Input.Format, "the format comes from the first path's extension")
		})
	}
}
