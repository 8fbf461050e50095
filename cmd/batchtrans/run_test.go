package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/batchtrans/batchtrans/io/dataset"
	_ "github.com/batchtrans/batchtrans/io/formats"
	"github.com/batchtrans/batchtrans/runner/checkpoint"
)

// The command's tests run the real binary. Two builds are made, once per
// test process and shared by every test: the product build (realBinary),
// which runs the bundled tiny translator through the real engine, and a
// build with -tags fakeengine (fakeBinary) whose model is a deterministic
// stand-in (see run_fakeengine.go) for the checks that need exact crash
// points or tens of thousands of wide rows in seconds.

// builtBinary is one build of the command, made on first use.
type builtBinary struct {
	tags string
	once sync.Once
	path string
	err  error
}

var (
	realBin = &builtBinary{}
	fakeBin = &builtBinary{tags: "fakeengine"}
)

func (b *builtBinary) get(t *testing.T) string {
	t.Helper()
	b.once.Do(func() {
		dir, err := os.MkdirTemp("", "batchtrans-bin-")
		if err != nil {
			b.err = err
			return
		}
		b.path = filepath.Join(dir, "batchtrans")
		args := []string{"build", "-o", b.path}
		if b.tags != "" {
			args = append(args, "-tags", b.tags)
		}
		cmd := exec.Command("go", append(args, ".")...)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("build %s: %v\n%s", b.tags, err, out)
		}
	})
	require.NoError(t, b.err)
	return b.path
}

// realBinary is the product build of the command.
func realBinary(t *testing.T) string { return realBin.get(t) }

// fakeBinary is the build whose model is the stand-in of run_fakeengine.go.
func fakeBinary(t *testing.T) string { return fakeBin.get(t) }

func TestMain(m *testing.M) {
	code := m.Run()
	for _, b := range []*builtBinary{realBin, fakeBin} {
		if b.path != "" {
			os.RemoveAll(filepath.Dir(b.path))
		}
	}
	os.Exit(code)
}

type binResult struct {
	code           int
	stdout, stderr string
}

// runBin runs the fake-engine build; runReal the product build.
func runBin(t *testing.T, env []string, args ...string) binResult {
	t.Helper()
	return runExe(t, fakeBinary(t), env, args...)
}

func runReal(t *testing.T, env []string, args ...string) binResult {
	t.Helper()
	return runExe(t, realBinary(t), env, args...)
}

func runExe(t *testing.T, exe string, env []string, args ...string) binResult {
	t.Helper()
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), env...)
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

// textJob makes a job folder for the product build: the tiny translator
// over the input lines (nil: no input file) of rows like sampleRows',
// translating "text", with ids from "sku" and 8 new tokens a row. extra is
// appended to the job file, but for a leading generation block, whose
// settings join the job's own.
func textJob(t *testing.T, input string, lines []string, extra string) string {
	t.Helper()
	dir := t.TempDir()
	if lines != nil {
		require.NoError(t, os.WriteFile(filepath.Join(dir, input), []byte(strings.Join(lines, "\n")+"\n"), 0o644))
	}
	writeTextJob(t, dir, input, extra)
	return dir
}

func writeTextJob(t *testing.T, dir, input, extra string) {
	t.Helper()
	var gen string
	if rest, ok := strings.CutPrefix(extra, "generation:\n"); ok {
		for rest != "" && strings.HasPrefix(rest, "  ") {
			line, after, _ := strings.Cut(rest, "\n")
			gen, rest = gen+line+"\n", after
		}
		extra = rest
	}
	realJob{input: input, output: "out/result.jsonl", text: "text", id: "sku", maxNewTokens: 8, gen: gen, extra: extra}.write(t, dir)
}

// jobDir makes a job folder for the fake-engine build, with a model folder, the input lines and a
// job file; extra is appended to the job file.
func jobDir(t *testing.T, input string, lines []string, extra string) string {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "model"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "model", "config.json"), []byte(`{}`), 0o644))
	if lines != nil {
		require.NoError(t, os.WriteFile(filepath.Join(dir, input), []byte(strings.Join(lines, "\n")+"\n"), 0o644))
	}
	writeJobFile(t, dir, input, extra)
	return dir
}

func writeJobFile(t *testing.T, dir, input, extra string) {
	job := fmt.Sprintf(`version: 1
input:
  path: %s
  text_field: text
output:
  path: out/result.jsonl
model:
  path: model
prompt:
  system: "Translate from {{.Source}} to {{.Target}}."
  source: English
  target: German
  date: 25 Nov 2026
%s`, input, extra)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "job.yaml"), []byte(job), 0o644))
}

func sampleRows(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf(`{"sku":"S%05d","text":"product %d is a fine thing","price":%d.5}`, i, i, i)
	}
	return out
}

func outputRows(t *testing.T, path string) []map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var rows []map[string]any
	for _, l := range bytes.Split(bytes.TrimSpace(data), []byte("\n")) {
		var m map[string]any
		require.NoError(t, json.Unmarshal(l, &m))
		rows = append(rows, m)
	}
	return rows
}

func TestRunJSONLogs(t *testing.T) {
	dir := textJob(t, "in.jsonl", sampleRows(5), "")
	r := runReal(t, nil, "run", "--log-format", "json", filepath.Join(dir, "job.yaml"))
	require.Equal(t, 0, r.code, r.stderr)
	var sawSummary bool
	for _, l := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &m), "every log line is JSON: %s", l)
		if m["msg"] == "summary" {
			sawSummary = true
			assert.Equal(t, float64(5), m["good"])
			// The rows share the chat template's prefix: the model runs
			// fewer prompt tokens than the prompts hold.
			in, prefilled, reused := m["tokens_in"].(float64), m["tokens_prefilled"].(float64), m["tokens_reused"].(float64)
			t.Logf("tokens_in %v, prefilled %v, reused %v", in, prefilled, reused)
			assert.Positive(t, reused)
			assert.Less(t, prefilled, in)
		}
	}
	assert.True(t, sawSummary)
}

func TestRunBadInput(t *testing.T) {
	tests := []struct {
		name     string
		setup    func(t *testing.T) string // returns the job folder
		code     int
		stderr   []string
		checkOut func(t *testing.T, rows []map[string]any)
	}{
		{
			name: "unknown job key",
			setup: func(t *testing.T) string {
				return textJob(t, "in.jsonl", sampleRows(3), "generation:\n  temprature: 0.5\n")
			},
			code: 2, stderr: []string{"job.yaml:20", `"generation.temprature"`},
		},
		{
			name: "bad value type",
			setup: func(t *testing.T) string {
				return textJob(t, "in.jsonl", sampleRows(3), "runtime:\n  workers: many\n")
			},
			code: 2, stderr: []string{"line 22", "many"},
		},
		{
			name: "invalid job values all reported",
			setup: func(t *testing.T) string {
				return textJob(t, "in.jsonl", sampleRows(3), "generation:\n  top_p: 2\non_error: explode\n")
			},
			code: 2, stderr: []string{"on_error:", "generation.top_p:"},
		},
		{
			name:   "missing input file",
			setup:  func(t *testing.T) string { return textJob(t, "nowhere.jsonl", nil, "") },
			code:   1,
			stderr: []string{"input.path", "nowhere.jsonl", "no such file"},
		},
		{
			name: "malformed JSONL line",
			setup: func(t *testing.T) string {
				rows := sampleRows(10)
				rows[4] = `{"sku":"S00004","text":"broken`
				return textJob(t, "in.jsonl", rows, "")
			},
			code: 3, stderr: []string{"1 of 10 rows failed"},
			checkOut: func(t *testing.T, rows []map[string]any) {
				require.Len(t, rows, 10)
				assert.Contains(t, rows[4]["error"], "line 5")
				assert.Nil(t, rows[4]["translation"])
				for i, r := range rows {
					if i != 4 {
						assert.NotNil(t, r["translation"], "row %d still translated", i)
					}
				}
			},
		},
		{
			name: "row without the text field",
			setup: func(t *testing.T) string {
				rows := sampleRows(6)
				rows[2] = `{"sku":"S00002","title":"no text"}`
				return textJob(t, "in.jsonl", rows, "")
			},
			code: 3,
			checkOut: func(t *testing.T, rows []map[string]any) {
				require.Len(t, rows, 6)
				assert.Contains(t, rows[2]["error"], `in.jsonl line 3 (row 2): field "text": missing text field`)
			},
		},
		{
			name: "prompt too long, skip",
			setup: func(t *testing.T) string {
				rows := sampleRows(6)
				rows[1] = fmt.Sprintf(`{"sku":"S00001","text":%q}`, strings.Repeat("far too long ", 400))
				return textJob(t, "in.jsonl", rows, "on_error: skip\n")
			},
			code: 3, stderr: []string{"result.jsonl.errors.jsonl"},
			checkOut: func(t *testing.T, rows []map[string]any) {
				require.Len(t, rows, 5)
				assert.Equal(t, "S00002", rows[1]["sku"])
			},
		},
		{
			name: "bad row under fail",
			setup: func(t *testing.T) string {
				rows := sampleRows(6)
				rows[3] = `{"sku":"S00003","text":null}`
				return textJob(t, "in.jsonl", rows, "on_error: fail\n")
			},
			code: 1, stderr: []string{"row failed", "line 4 (row 3)", `field "text"`},
		},
		{
			name: "truncated parquet",
			setup: func(t *testing.T) string {
				dir := textJob(t, "in.parquet", nil, "")
				writeParquet(t, filepath.Join(dir, "in.parquet"), 100)
				data, err := os.ReadFile(filepath.Join(dir, "in.parquet"))
				require.NoError(t, err)
				require.NoError(t, os.WriteFile(filepath.Join(dir, "in.parquet"), data[:len(data)*2/3], 0o644))
				return dir
			},
			code: 1, stderr: []string{"in.parquet"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := tt.setup(t)
			r := runReal(t, nil, "run", filepath.Join(dir, "job.yaml"), "--no-progress")
			assert.Equal(t, tt.code, r.code, r.stderr)
			for _, s := range tt.stderr {
				assert.Contains(t, r.stderr, s)
			}
			assert.NotContains(t, r.stderr, "panic")
			if tt.checkOut != nil {
				tt.checkOut(t, outputRows(t, filepath.Join(dir, "out/result.jsonl")))
			}
		})
	}
}

// writeParquet writes n sample rows as Parquet through the format package.
func writeParquet(t *testing.T, path string, n int) {
	t.Helper()
	f, err := os.Create(path)
	require.NoError(t, err)
	defer f.Close()
	cols := []dataset.Column{{Name: "sku", Kind: dataset.String}, {Name: "text", Kind: dataset.String}, {Name: "price", Kind: dataset.Float}}
	w, err := dataset.NewWriter(f, "parquet", cols, dataset.Options{})
	require.NoError(t, err)
	for i := range n {
		require.NoError(t, w.Write([]dataset.Field{
			{Name: "sku", Value: fmt.Sprintf("S%05d", i)},
			{Name: "text", Value: fmt.Sprintf("product %d is a fine thing", i)},
			{Name: "price", Value: float64(i) + 0.5},
		}))
	}
	require.NoError(t, w.Close())
}

func TestChangedJobAndRestart(t *testing.T) {
	dir := textJob(t, "in.jsonl", sampleRows(10), "")
	job := filepath.Join(dir, "job.yaml")
	require.Equal(t, 0, runReal(t, nil, "run", job, "--no-progress").code)

	writeTextJob(t, dir, "in.jsonl", "generation:\n  max_new_tokens: 12\n")
	r := runReal(t, nil, "run", job, "--no-progress")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "generation.max_new_tokens changed")
	assert.Contains(t, r.stderr, "--restart")

	r = runReal(t, nil, "run", job, "--no-progress", "--restart")
	assert.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, "resumed=0")
}

func TestSecondConcurrentRunRefused(t *testing.T) {
	dir := textJob(t, "in.jsonl", sampleRows(400), "")
	job := filepath.Join(dir, "job.yaml")
	first := exec.Command(realBinary(t), "run", job, "--no-progress", "--workers", "1")
	require.NoError(t, first.Start())
	t.Cleanup(func() { first.Process.Kill(); first.Wait() })
	waitForFile(t, filepath.Join(dir, "out/result.jsonl.ckpt"))

	r := runReal(t, nil, "run", job, "--no-progress")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "another run of this job is in progress")
	assert.Contains(t, r.stderr, fmt.Sprint(first.Process.Pid))
}

func waitForFile(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if st, err := os.Stat(path); err == nil && st.Size() > 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s did not appear", path)
}

// waitForRows waits until the checkpoint at path holds a finished row, so
// a run interrupted afterwards has something to resume.
func waitForRows(t *testing.T, path string) {
	t.Helper()
	require.Eventually(t, func() bool {
		_, st, err := checkpoint.Inspect(path)
		return err == nil && st.Done > 0
	}, 30*time.Second, 5*time.Millisecond, "no row finished in %s", path)
}

func TestSignalsDrainAndResume(t *testing.T) {
	for _, tt := range []struct {
		sig  syscall.Signal
		code int
		name string
	}{{syscall.SIGINT, 130, "SIGINT"}, {syscall.SIGTERM, 143, "SIGTERM"}} {
		t.Run(tt.name, func(t *testing.T) {
			dir := textJob(t, "in.jsonl", sampleRows(80), "")
			job := filepath.Join(dir, "job.yaml")
			cmd := exec.Command(realBinary(t), "run", job, "--no-progress", "--workers", "4")
			var se bytes.Buffer
			cmd.Stderr = &se
			require.NoError(t, cmd.Start())
			waitForRows(t, filepath.Join(dir, "out/result.jsonl.ckpt"))
			require.NoError(t, cmd.Process.Signal(tt.sig))
			err := cmd.Wait()
			ee, ok := err.(*exec.ExitError)
			require.True(t, ok, "exit status: %v\n%s", err, se.String())
			assert.Equal(t, tt.code, ee.ExitCode(), se.String())
			assert.Contains(t, se.String(), "interrupted by "+tt.name)
			assert.Contains(t, se.String(), "batchtrans run "+job)
			_, err = os.Stat(filepath.Join(dir, "out/result.jsonl"))
			assert.True(t, os.IsNotExist(err))

			r := runReal(t, nil, "run", job, "--no-progress")
			require.Equal(t, 0, r.code, r.stderr)
			assert.NotContains(t, r.stderr, "resumed=0")
			assert.Len(t, outputRows(t, filepath.Join(dir, "out/result.jsonl")), 80)
		})
	}
}

// TestMemoryIsFlatInRowCount runs the same wide-row job at 1,500 and
// 15,000 rows (about 6.5 and 65 MB of input) and compares peak RSS:
// holding rows or results for the whole input would add over 60 MB.
func TestMemoryIsFlatInRowCount(t *testing.T) {
	// peak is the largest peak RSS of the runs that make the output: one
	// run, or with shards both shards' runs and the merge.
	peak := func(n int, sharded bool) int64 {
		dir := jobDir(t, "in.jsonl", nil, "generation:\n  max_new_tokens: 1\n")
		f, err := os.Create(filepath.Join(dir, "in.jsonl"))
		require.NoError(t, err)
		filler := strings.Repeat("wide carried text ", 120)
		for i := range n {
			fmt.Fprintf(f, `{"sku":"S%07d","text":"row %d %s","note":"%s"}`+"\n", i, i, filler, filler)
		}
		require.NoError(t, f.Close())
		job := filepath.Join(dir, "job.yaml")
		runs := [][]string{{"run", job, "--no-progress"}}
		if sharded {
			runs = [][]string{{"run", job, "--no-progress", "--shard", "0/2"}, {"run", job, "--no-progress", "--shard", "1/2"}, {"merge", job}}
		}
		var most int64
		for _, args := range runs {
			cmd := exec.Command(fakeBinary(t), args...)
			out, err := cmd.CombinedOutput()
			require.NoError(t, err, "%s", out)
			ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
			require.True(t, ok)
			most = max(most, ru.Maxrss) // KiB on Linux
		}
		return most
	}
	for _, sharded := range []bool{false, true} {
		t.Run(fmt.Sprintf("sharded=%v", sharded), func(t *testing.T) {
			small, large := peak(1500, sharded), peak(15000, sharded)
			t.Logf("peak RSS: %d KiB for 1,500 rows, %d KiB for 15,000 rows", small, large)
			assert.Less(t, large, small+30*1024, "peak RSS grows with the row count")
		})
	}
}

// TestCrashAtExactPoints kills the run at each named point of the group
// commit and the final merge, then resumes: the output must equal an
// uninterrupted run's and no temporary file may be left behind.
func TestCrashAtExactPoints(t *testing.T) {
	rows := sampleRows(300)
	rows[42] = `{"sku":"S00042"}`
	rows[77] = `{"sku":"S00077","text":"a CUTOFF row"}`
	ref := jobDir(t, "in.jsonl", rows, "")
	require.Equal(t, 3, runBin(t, nil, "run", filepath.Join(ref, "job.yaml"), "--no-progress").code)
	want, err := os.ReadFile(filepath.Join(ref, "out/result.jsonl"))
	require.NoError(t, err)

	for _, point := range []string{"commit.before-sync:1", "commit.after-sync:1", "commit.before-sync:3",
		"merge.first-row:1", "merge.before-rename:1", "merge.after-rename:1"} {
		t.Run(point, func(t *testing.T) {
			dir := jobDir(t, "in.jsonl", rows, "")
			job := filepath.Join(dir, "job.yaml")
			r := runBin(t, []string{"BATCHTRANS_CRASH_AT=" + point, "BATCHTRANS_FAKE_DELAY=1ms"}, "run", job, "--no-progress", "--workers", "4")
			require.Equal(t, -1, r.code, "killed by the hook: %s", r.stderr)
			r = runBin(t, nil, "run", job, "--no-progress", "--workers", "7")
			require.Equal(t, 3, r.code, r.stderr)
			got, err := os.ReadFile(filepath.Join(dir, "out/result.jsonl"))
			require.NoError(t, err)
			// Errors name the input as the job file wrote it, the same in every folder.
			assert.Equal(t, string(want), string(got))
			entries, err := os.ReadDir(filepath.Join(dir, "out"))
			require.NoError(t, err)
			for _, e := range entries {
				assert.NotContains(t, e.Name(), ".tmp-", "temporary output left behind")
			}
		})
	}
}
