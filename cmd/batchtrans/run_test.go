package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
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
)

// The tests in run_test.go, validate_test.go and status_test.go run the
// real binary, built once with -tags fakeengine: the model is swapped for a
// deterministic stand-in (see run_fakeengine.go) so that the job file,
// checkpoint, signals and exit codes are tested end to end in seconds.

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

func fakeBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "batchtrans-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "batchtrans")
		out, err := exec.Command("go", "build", "-tags", "fakeengine", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("build: %v\n%s", err, out)
		}
	})
	require.NoError(t, binErr)
	return binPath
}

type binResult struct {
	code           int
	stdout, stderr string
}

func runBin(t *testing.T, env []string, args ...string) binResult {
	t.Helper()
	cmd := exec.Command(fakeBinary(t), args...)
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

// jobDir makes a job folder with a model folder, the input lines and a
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

func TestRunHappyPath(t *testing.T) {
	dir := jobDir(t, "in.jsonl", sampleRows(50), "")
	r := runBin(t, nil, "run", filepath.Join(dir, "job.yaml"), "--no-progress", "--workers", "4")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, "summary")
	rows := outputRows(t, filepath.Join(dir, "out/result.jsonl"))
	require.Len(t, rows, 50)
	for i, row := range rows {
		assert.Equal(t, fmt.Sprintf("S%05d", i), row["sku"])
		assert.Equal(t, fmt.Sprintf("%d.5", i), fmt.Sprint(row["price"]))
		assert.Equal(t, reverseString(fmt.Sprintf("product %d is a fine thing", i)), row["translation"])
		assert.Nil(t, row["error"])
	}
}

func reverseString(s string) string {
	r := []rune(s)
	for i, k := 0, len(r)-1; i < k; i, k = i+1, k-1 {
		r[i], r[k] = r[k], r[i]
	}
	return string(r)
}

func TestRunJSONLogs(t *testing.T) {
	dir := jobDir(t, "in.jsonl", sampleRows(5), "")
	r := runBin(t, nil, "run", "--log-format", "json", filepath.Join(dir, "job.yaml"))
	require.Equal(t, 0, r.code, r.stderr)
	var sawSummary bool
	for _, l := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &m), "every log line is JSON: %s", l)
		if m["msg"] == "summary" {
			sawSummary = true
			assert.Equal(t, float64(5), m["good"])
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
				return jobDir(t, "in.jsonl", sampleRows(3), "generation:\n  temprature: 0.5\n")
			},
			code: 2, stderr: []string{"job.yaml:15", `"generation.temprature"`},
		},
		{
			name: "bad value type",
			setup: func(t *testing.T) string {
				return jobDir(t, "in.jsonl", sampleRows(3), "runtime:\n  workers: many\n")
			},
			code: 2, stderr: []string{"line 15", "many"},
		},
		{
			name: "invalid job values all reported",
			setup: func(t *testing.T) string {
				return jobDir(t, "in.jsonl", sampleRows(3), "on_error: explode\ngeneration:\n  top_p: 2\n")
			},
			code: 2, stderr: []string{"on_error:", "generation.top_p:"},
		},
		{
			name:   "missing input file",
			setup:  func(t *testing.T) string { return jobDir(t, "nowhere.jsonl", nil, "") },
			code:   1,
			stderr: []string{"input.path", "nowhere.jsonl", "no such file"},
		},
		{
			name: "malformed JSONL line",
			setup: func(t *testing.T) string {
				rows := sampleRows(10)
				rows[4] = `{"sku":"S00004","text":"broken`
				return jobDir(t, "in.jsonl", rows, "")
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
				return jobDir(t, "in.jsonl", rows, "")
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
				rows[1] = `{"sku":"S00001","text":"TOOLONG"}`
				return jobDir(t, "in.jsonl", rows, "on_error: skip\n")
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
				return jobDir(t, "in.jsonl", rows, "on_error: fail\n")
			},
			code: 1, stderr: []string{"row failed", "line 4 (row 3)", `field "text"`},
		},
		{
			name: "truncated parquet",
			setup: func(t *testing.T) string {
				dir := jobDir(t, "in.parquet", nil, "")
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
			r := runBin(t, nil, "run", filepath.Join(dir, "job.yaml"), "--no-progress")
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

func writeCSV(t *testing.T, path string, n int) {
	var b strings.Builder
	b.WriteString("sku,text,price\n")
	for i := range n {
		fmt.Fprintf(&b, "S%05d,product %d is a fine thing,%d.5\n", i, i, i)
	}
	require.NoError(t, os.WriteFile(path, []byte(b.String()), 0o644))
}

func TestSameTranslationsFromEveryInputFormat(t *testing.T) {
	var got [][]any
	for _, format := range []string{"jsonl", "csv", "parquet"} {
		dir := jobDir(t, "in."+format, nil, "")
		switch format {
		case "jsonl":
			require.NoError(t, os.WriteFile(filepath.Join(dir, "in.jsonl"), []byte(strings.Join(sampleRows(40), "\n")), 0o644))
		case "csv":
			writeCSV(t, filepath.Join(dir, "in.csv"), 40)
		case "parquet":
			writeParquet(t, filepath.Join(dir, "in.parquet"), 40)
		}
		r := runBin(t, nil, "run", filepath.Join(dir, "job.yaml"), "--no-progress")
		require.Equal(t, 0, r.code, "%s: %s", format, r.stderr)
		var tr []any
		for _, row := range outputRows(t, filepath.Join(dir, "out/result.jsonl")) {
			tr = append(tr, row["translation"], row["sku"])
		}
		got = append(got, tr)
	}
	assert.Equal(t, got[0], got[1], "csv")
	assert.Equal(t, got[0], got[2], "parquet")
}

func TestChangedJobAndRestart(t *testing.T) {
	dir := jobDir(t, "in.jsonl", sampleRows(10), "")
	job := filepath.Join(dir, "job.yaml")
	require.Equal(t, 0, runBin(t, nil, "run", job, "--no-progress").code)

	writeJobFile(t, dir, "in.jsonl", "generation:\n  max_new_tokens: 8\n")
	r := runBin(t, nil, "run", job, "--no-progress")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "generation.max_new_tokens changed")
	assert.Contains(t, r.stderr, "--restart")

	r = runBin(t, nil, "run", job, "--no-progress", "--restart")
	assert.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, "resumed=0")
}

func TestSecondConcurrentRunRefused(t *testing.T) {
	dir := jobDir(t, "in.jsonl", sampleRows(400), "")
	job := filepath.Join(dir, "job.yaml")
	first := exec.Command(fakeBinary(t), "run", job, "--no-progress", "--workers", "2")
	first.Env = append(os.Environ(), "BATCHTRANS_FAKE_DELAY=20ms")
	require.NoError(t, first.Start())
	t.Cleanup(func() { first.Process.Kill(); first.Wait() })
	waitForFile(t, filepath.Join(dir, "out/result.jsonl.ckpt"))

	r := runBin(t, nil, "run", job, "--no-progress")
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

func TestSignalsDrainAndResume(t *testing.T) {
	for _, tt := range []struct {
		sig  syscall.Signal
		code int
		name string
	}{{syscall.SIGINT, 130, "SIGINT"}, {syscall.SIGTERM, 143, "SIGTERM"}} {
		t.Run(tt.name, func(t *testing.T) {
			dir := jobDir(t, "in.jsonl", sampleRows(300), "")
			job := filepath.Join(dir, "job.yaml")
			cmd := exec.Command(fakeBinary(t), "run", job, "--no-progress", "--workers", "4")
			cmd.Env = append(os.Environ(), "BATCHTRANS_FAKE_DELAY=10ms")
			var se bytes.Buffer
			cmd.Stderr = &se
			require.NoError(t, cmd.Start())
			waitForFile(t, filepath.Join(dir, "out/result.jsonl.ckpt"))
			time.Sleep(100 * time.Millisecond)
			require.NoError(t, cmd.Process.Signal(tt.sig))
			err := cmd.Wait()
			ee, ok := err.(*exec.ExitError)
			require.True(t, ok, "exit status: %v\n%s", err, se.String())
			assert.Equal(t, tt.code, ee.ExitCode(), se.String())
			assert.Contains(t, se.String(), "interrupted by "+tt.name)
			assert.Contains(t, se.String(), "batchtrans run "+job)
			_, err = os.Stat(filepath.Join(dir, "out/result.jsonl"))
			assert.True(t, os.IsNotExist(err))

			r := runBin(t, nil, "run", job, "--no-progress")
			require.Equal(t, 0, r.code, r.stderr)
			assert.NotContains(t, r.stderr, "resumed=0")
			assert.Len(t, outputRows(t, filepath.Join(dir, "out/result.jsonl")), 300)
		})
	}
}

// TestKillAnywhereResumesByteIdentical SIGKILLs real runs at random
// moments, resumes each time with a different worker count, and checks the
// final output is byte-identical to an uninterrupted run's.
func TestKillAnywhereResumesByteIdentical(t *testing.T) {
	rows := sampleRows(4000)
	rows[700] = `{"sku":"S00700","text":` // a bad row must survive kills too
	rows[2900] = `{"sku":"S02900","text":"TOOLONG"}`
	dir := jobDir(t, "in.jsonl", rows, "")
	job := filepath.Join(dir, "job.yaml")
	out := filepath.Join(dir, "out/result.jsonl")
	r := runBin(t, nil, "run", job, "--no-progress", "--workers", "1")
	require.Equal(t, 3, r.code, r.stderr)
	want, err := os.ReadFile(out)
	require.NoError(t, err)
	require.NoError(t, os.Remove(out))
	require.NoError(t, os.Remove(out+".ckpt"))

	rng := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	workers := []string{"1", "3", "8", "16", "32"}
	kills := 0
	for attempt := 0; kills < 12 && attempt < 40; attempt++ {
		cmd := exec.Command(fakeBinary(t), "run", job, "--no-progress", "--workers", workers[attempt%len(workers)])
		cmd.Env = append(os.Environ(), "BATCHTRANS_FAKE_DELAY=5ms")
		var before int64
		if st, err := os.Stat(out + ".ckpt"); err == nil {
			before = st.Size()
		}
		require.NoError(t, cmd.Start())
		// Kill at a random moment after this run has committed some rows,
		// so every run makes progress whatever the machine's speed.
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
			if st, err := os.Stat(out + ".ckpt"); err == nil && st.Size() > before+300 {
				break
			}
		}
		time.Sleep(time.Duration(rng.IntN(80)) * time.Millisecond)
		require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
		err := cmd.Wait()
		if ee, ok := err.(*exec.ExitError); ok && !ee.Exited() {
			kills++
		}
		if _, err := os.Stat(out); err == nil {
			break // it finished before the kill
		}
	}
	t.Logf("killed %d runs", kills)
	assert.GreaterOrEqual(t, kills, 10)
	before := runBin(t, nil, "status", job)
	t.Logf("after the kills:\n%s", before.stdout)
	r = runBin(t, nil, "run", job, "--no-progress", "--workers", "5")
	require.Equal(t, 3, r.code, r.stderr)
	assert.NotContains(t, r.stderr, "resumed=0", "the kills left finished rows to resume")
	got, err := os.ReadFile(out)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(want, got), "output after kills differs from an uninterrupted run's")
	status := runBin(t, nil, "status", job)
	assert.Contains(t, status.stdout, "4000 done of 4000")
	assert.Contains(t, status.stdout, "2 failed")
}

// TestMemoryIsFlatInRowCount runs the same wide-row job at 1,500 and
// 15,000 rows (about 6.5 and 65 MB of input) and compares peak RSS:
// holding rows or results for the whole input would add over 60 MB.
func TestMemoryIsFlatInRowCount(t *testing.T) {
	peak := func(n int) int64 {
		dir := jobDir(t, "in.jsonl", nil, "generation:\n  max_new_tokens: 1\n")
		f, err := os.Create(filepath.Join(dir, "in.jsonl"))
		require.NoError(t, err)
		filler := strings.Repeat("wide carried text ", 120)
		for i := range n {
			fmt.Fprintf(f, `{"sku":"S%07d","text":"row %d %s","note":"%s"}`+"\n", i, i, filler, filler)
		}
		require.NoError(t, f.Close())
		cmd := exec.Command(fakeBinary(t), "run", filepath.Join(dir, "job.yaml"), "--no-progress")
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
		require.True(t, ok)
		return ru.Maxrss // KiB on Linux
	}
	small, large := peak(1500), peak(15000)
	t.Logf("peak RSS: %d KiB for 1,500 rows, %d KiB for 15,000 rows", small, large)
	assert.Less(t, large, small+30*1024, "peak RSS grows with the row count")
}

// TestCrashAtExactPoints kills the run at each named point of the group
// commit and the final merge, then resumes: the output must equal an
// uninterrupted run's and no temporary file may be left behind.
func TestCrashAtExactPoints(t *testing.T) {
	rows := sampleRows(300)
	rows[42] = `{"sku":"S00042"}`
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
			// The error text names the input by its path, which differs per folder.
			assert.Equal(t, strings.ReplaceAll(string(want), ref, dir), string(got))
			entries, err := os.ReadDir(filepath.Join(dir, "out"))
			require.NoError(t, err)
			for _, e := range entries {
				assert.NotContains(t, e.Name(), ".tmp-", "temporary output left behind")
			}
		})
	}
}
