package runner_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/batchtrans/batchtrans/engine"
	"github.com/batchtrans/batchtrans/io/dataset"
	_ "github.com/batchtrans/batchtrans/io/jsonl"
	"github.com/batchtrans/batchtrans/jobs"
	"github.com/batchtrans/batchtrans/runner"
	"github.com/batchtrans/batchtrans/runner/checkpoint"
)

// fakeTranslator answers with the user message reversed, so a row's output
// depends only on the row. Text containing "TOOLONG" is a row error,
// "BOOM" an engine failure, "CUT" a translation that max_new_tokens cut
// off. onCall, if set, runs before each answer.
type fakeTranslator struct {
	delay  time.Duration
	calls  atomic.Int64
	onCall func(n int64)
}

type rowErr struct{ msg string }

func (e rowErr) Error() string  { return e.msg }
func (e rowErr) RowError() bool { return true }

func (f *fakeTranslator) Generate(ctx context.Context, req engine.Request) (engine.Result, error) {
	n := f.calls.Add(1)
	if f.onCall != nil {
		f.onCall(n)
	}
	if f.delay > 0 {
		select {
		case <-time.After(f.delay):
		case <-ctx.Done():
			return engine.Result{}, ctx.Err()
		}
	}
	if err := ctx.Err(); err != nil {
		return engine.Result{}, err
	}
	text := req.Messages[len(req.Messages)-1].Content
	switch {
	case strings.Contains(text, "TOOLONG"):
		return engine.Result{}, rowErr{"prompt of 9000 tokens exceeds the context of 8192"}
	case strings.Contains(text, "BOOM"):
		return engine.Result{}, errors.New("engine exploded")
	}
	r := []rune(text)
	for i, k := 0, len(r)-1; i < k; i, k = i+1, k-1 {
		r[i], r[k] = r[k], r[i]
	}
	finish := engine.FinishStop
	if strings.Contains(text, "CUT") {
		finish = engine.FinishLength
	}
	return engine.Result{Text: string(r), PromptIDs: make([]int, len(r)+5), OutputIDs: make([]int, len(r)), FinishReason: finish}, nil
}

// setup writes a job over the given JSONL lines and returns it loaded.
func setup(t testing.TB, lines []string, extra string) *jobs.Job {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "model"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "model", "config.json"), []byte(`{}`), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "in.jsonl"), []byte(strings.Join(lines, "\n")+"\n"), 0o644))
	job := "version: 1\ninput:\n  path: in.jsonl\n  id_field: id\n  text_field: text\noutput:\n  path: out/out.jsonl\nmodel:\n  path: model\nprompt:\n  date: 25 Nov 2026\n" + extra
	p := filepath.Join(dir, "job.yaml")
	require.NoError(t, os.WriteFile(p, []byte(job), 0o644))
	j, err := jobs.Load(p)
	require.NoError(t, err)
	require.NoError(t, j.Validate())
	return j
}

func config(j *jobs.Job, tr runner.Translator, workers int) runner.Config {
	return runner.Config{
		Job: j, Translator: tr, Workers: workers,
		Open: func() (dataset.Reader, error) {
			return dataset.Open(j.Input.Path[0], j.Input.Format, dataset.Options{})
		},
		Create: func(w io.Writer, cols []dataset.Column) (dataset.Writer, error) {
			return dataset.NewWriter(w, j.Output.Format, cols, dataset.Options{})
		},
		Grace: 50 * time.Millisecond,
	}
}

func rows(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf(`{"id":"r%04d","text":"row number %d says héllo","n":%d}`, i, i, i)
	}
	return out
}

func readLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var out []map[string]any
	for _, l := range bytes.Split(bytes.TrimSpace(data), []byte("\n")) {
		var m map[string]any
		require.NoError(t, json.Unmarshal(l, &m), "%s", l)
		out = append(out, m)
	}
	return out
}

func TestRunRecordsBadRows(t *testing.T) {
	in := rows(40)
	in[3] = `{"id":"r0003","text":` // malformed line 4
	in[7] = `{"id":"r0007","body":"no text here"}`
	in[9] = `{"id":"r0009","text":42}`
	in[11] = `{"id":"r0011","text":"TOOLONG text"}`
	j := setup(t, in, "")
	sum, err := runner.Run(t.Context(), config(j, &fakeTranslator{}, 4))
	require.NoError(t, err)
	assert.True(t, sum.Complete)
	assert.Equal(t, int64(40), sum.Rows)
	assert.Equal(t, int64(36), sum.Good)
	assert.Equal(t, int64(4), sum.Failed)

	out := readLines(t, j.Output.Path)
	require.Len(t, out, 40)
	for i, row := range out {
		if i == 3 || i == 7 || i == 9 || i == 11 {
			assert.Nil(t, row["translation"], "row %d", i)
			assert.NotEmpty(t, row["error"], "row %d", i)
			continue
		}
		assert.Equal(t, fmt.Sprintf("r%04d", i), row["id"], "rows stay in input order")
		assert.Equal(t, float64(i), row["n"], "carried fields keep their JSON type")
		assert.Equal(t, reverse(fmt.Sprintf("row number %d says héllo", i)), row["translation"])
		assert.Nil(t, row["error"])
	}
	assert.Contains(t, out[3]["error"], "line 4")
	assert.Contains(t, out[7]["error"], `in.jsonl line 8 (row 7): field "text": missing text field`)
	assert.Contains(t, out[9]["error"], "not a string")
	assert.Contains(t, out[11]["error"], "exceeds the context")
	_, err = os.Stat(j.ErrorsPath())
	assert.True(t, os.IsNotExist(err), "no errors list under on_error: record")
}

func reverse(s string) string {
	r := []rune(s)
	for i, k := 0, len(r)-1; i < k; i, k = i+1, k-1 {
		r[i], r[k] = r[k], r[i]
	}
	return string(r)
}

func TestRunSkipListsErrors(t *testing.T) {
	in := rows(10)
	in[2] = `not json`
	in[5] = `{"id":"r0005"}`
	j := setup(t, in, "on_error: skip\n")
	sum, err := runner.Run(t.Context(), config(j, &fakeTranslator{}, 3))
	require.NoError(t, err)
	assert.Equal(t, int64(2), sum.Skipped)
	out := readLines(t, j.Output.Path)
	require.Len(t, out, 8)
	assert.Equal(t, "r0003", out[2]["id"])
	errs := readLines(t, j.ErrorsPath())
	require.Len(t, errs, 2)
	assert.Equal(t, float64(2), errs[0]["row"])
	assert.Equal(t, float64(3), errs[0]["line"])
	assert.Equal(t, "r0005", errs[1]["id"])
	assert.Contains(t, errs[1]["error"], "line 6")
}

func TestRunFailStopsAndKeepsFinishedRows(t *testing.T) {
	in := rows(30)
	in[20] = `{"id":"r0020","text":"TOOLONG"}`
	j := setup(t, in, "on_error: fail\n")
	_, err := runner.Run(t.Context(), config(j, &fakeTranslator{}, 1))
	require.ErrorIs(t, err, runner.ErrRowFailed)
	assert.Contains(t, err.Error(), "line 21 (row 20)")
	_, err = os.Stat(j.Output.Path)
	assert.True(t, os.IsNotExist(err), "no output for an unfinished job")
	_, st, err := checkpoint.Inspect(j.Checkpoint.Path)
	require.NoError(t, err)
	assert.Equal(t, int64(20), st.Done, "rows before the failure are checkpointed")
	assert.Zero(t, st.Failed)
}

func TestEngineFailureIsFatalNotRecorded(t *testing.T) {
	in := rows(10)
	in[4] = `{"id":"r0004","text":"BOOM"}`
	j := setup(t, in, "")
	_, err := runner.Run(t.Context(), config(j, &fakeTranslator{}, 2))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "engine exploded")
	_, st, err := checkpoint.Inspect(j.Checkpoint.Path)
	require.NoError(t, err)
	assert.Zero(t, st.Failed, "an engine failure is not the row's fault")
}

// TestResumeIsByteIdentical interrupts runs at many points with different
// worker counts (drain and hard cancel) and checks the final output equals
// an uninterrupted run's, byte for byte.
func TestResumeIsByteIdentical(t *testing.T) {
	in := rows(120)
	in[50] = `{"id":"r0050","text":`             // a bad row survives resumes too
	in[70] = `{"id":"r0070","text":"a CUT row"}` // so does a cut one

	tests := []struct {
		name    string
		workers []int
		stopAt  []int64
		hard    bool
	}{
		{"drain", []int{8, 3, 1, 16}, []int64{10, 25, 40}, false},
		{"cancel", []int{2, 16, 5}, []int64{7, 60}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := setup(t, in, "")
			_, err := runner.Run(t.Context(), config(j, &fakeTranslator{}, 1))
			require.NoError(t, err)
			want, err := os.ReadFile(j.Output.Path)
			require.NoError(t, err)
			require.NoError(t, os.Remove(j.Output.Path))
			require.NoError(t, os.Remove(j.Checkpoint.Path))
			for i, stop := range tt.stopAt {
				drain := make(chan struct{})
				ctx, cancel := context.WithCancel(t.Context())
				var once sync.Once
				tr := &fakeTranslator{delay: time.Millisecond, onCall: func(n int64) {
					if n == stop {
						once.Do(func() {
							if tt.hard {
								cancel()
							} else {
								close(drain)
							}
						})
					}
				}}
				cfg := config(j, tr, tt.workers[i])
				cfg.Drain = drain
				_, err := runner.Run(ctx, cfg)
				cancel()
				require.ErrorIs(t, err, runner.ErrInterrupted, "stop %d", i)
				_, err = os.Stat(j.Output.Path)
				require.True(t, os.IsNotExist(err), "no output before the job completes")
			}
			sum, err := runner.Run(t.Context(), config(j, &fakeTranslator{}, tt.workers[len(tt.workers)-1]))
			require.NoError(t, err)
			assert.Positive(t, sum.Resumed)
			got, err := os.ReadFile(j.Output.Path)
			require.NoError(t, err)
			assert.True(t, bytes.Equal(want, got), "resumed output differs from an uninterrupted run's:\n%s", firstDiff(want, got))
		})
	}
}

func TestChangedJobRefusesToResume(t *testing.T) {
	j := setup(t, rows(20), "")
	_, err := runner.Run(t.Context(), config(j, &fakeTranslator{}, 2))
	require.NoError(t, err)

	j.Generation.Temperature = 0.5
	_, err = runner.Run(t.Context(), config(j, &fakeTranslator{}, 2))
	require.ErrorIs(t, err, runner.ErrJobChanged)
	assert.Contains(t, err.Error(), "generation.temperature changed")
	assert.Contains(t, err.Error(), "--restart")

	cfg := config(j, &fakeTranslator{}, 2)
	cfg.Restart = true
	sum, err := runner.Run(t.Context(), cfg)
	require.NoError(t, err)
	assert.Zero(t, sum.Resumed)
	assert.Equal(t, int64(20), sum.Good)

	require.NoError(t, os.WriteFile(j.Input.Path[0], []byte(strings.Join(rows(21), "\n")), 0o644))
	_, err = runner.Run(t.Context(), config(j, &fakeTranslator{}, 2))
	require.ErrorIs(t, err, runner.ErrJobChanged)
	assert.Contains(t, err.Error(), "input file changed")
}

// A checkpoint made under some numerics (a GPU, say) refuses a resume under
// others, saying what it was made with and how to go on.
func TestOtherNumericsRefuseToResume(t *testing.T) {
	j := setup(t, rows(20), "")
	gpu := config(j, &fakeTranslator{}, 2)
	gpu.Numerics = "cuda NVIDIA H200 sm_90, driver 13.0, kernels 59e2332dceb9, dtype bf16"
	_, err := runner.Run(t.Context(), gpu)
	require.NoError(t, err)

	cpu := config(j, &fakeTranslator{}, 2)
	cpu.Numerics = "cpu kernels v2, dtype bf16"
	_, err = runner.Run(t.Context(), cpu)
	require.ErrorIs(t, err, runner.ErrJobChanged)
	assert.Contains(t, err.Error(), "numerics")
	assert.Contains(t, err.Error(), "made with other numerics (cuda NVIDIA H200 sm_90")
	assert.Contains(t, err.Error(), "--device")

	again := config(j, &fakeTranslator{}, 4)
	again.Numerics = gpu.Numerics
	sum, err := runner.Run(t.Context(), again)
	require.NoError(t, err, "the same numerics resume")
	assert.Equal(t, int64(20), sum.Good)

}

func TestSecondRunIsLockedOut(t *testing.T) {
	j := setup(t, rows(20), "")
	started := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	tr := &fakeTranslator{onCall: func(int64) {
		once.Do(func() { close(started) })
		<-release
	}}
	done := make(chan error, 1)
	go func() {
		_, err := runner.Run(t.Context(), config(j, tr, 2))
		done <- err
	}()
	<-started
	_, err := runner.Run(t.Context(), config(j, &fakeTranslator{}, 2))
	require.ErrorIs(t, err, runner.ErrLocked)
	assert.Contains(t, err.Error(), "another run")
	close(release)
	require.NoError(t, <-done)
	_, err = runner.Run(t.Context(), config(j, &fakeTranslator{}, 2))
	require.NoError(t, err, "the lock is free once the first run ends")
}

func TestRerunOfCompleteJobRewritesSameOutput(t *testing.T) {
	j := setup(t, rows(15), "")
	_, err := runner.Run(t.Context(), config(j, &fakeTranslator{}, 2))
	require.NoError(t, err)
	first, _ := os.ReadFile(j.Output.Path)
	tr := &fakeTranslator{}
	sum, err := runner.Run(t.Context(), config(j, tr, 2))
	require.NoError(t, err)
	assert.Zero(t, tr.calls.Load(), "nothing is translated twice")
	assert.Equal(t, int64(15), sum.Resumed)
	second, _ := os.ReadFile(j.Output.Path)
	assert.Equal(t, first, second)
}

func TestRowSeedIsScheduleFree(t *testing.T) {
	assert.Equal(t, runner.RowSeed(7, "a"), runner.RowSeed(7, "a"))
	assert.NotEqual(t, runner.RowSeed(7, "a"), runner.RowSeed(7, "b"))
	assert.NotEqual(t, runner.RowSeed(7, "a"), runner.RowSeed(8, "a"))
}

// firstDiff shows the first differing line of two outputs.
func firstDiff(a, b []byte) string {
	al, bl := bytes.Split(a, []byte("\n")), bytes.Split(b, []byte("\n"))
	for i := range max(len(al), len(bl)) {
		var x, y []byte
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if !bytes.Equal(x, y) {
			return fmt.Sprintf("line %d:\n want %s\n got  %s", i+1, x, y)
		}
	}
	return "(equal)"
}

// runLogged runs the job to the end with a JSON log and returns the
// summary and the log's lines, decoded.
func runLogged(t *testing.T, j *jobs.Job, workers int) (runner.Summary, []map[string]any) {
	t.Helper()
	var buf bytes.Buffer
	cfg := config(j, &fakeTranslator{}, workers)
	cfg.Log = slog.New(slog.NewJSONHandler(&buf, nil))
	sum, err := runner.Run(t.Context(), cfg)
	require.NoError(t, err)
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &m), "%s", l)
		out = append(out, m)
	}
	return sum, out
}

func withMsg(lines []map[string]any, msg string) []map[string]any {
	var out []map[string]any
	for _, l := range lines {
		if l["msg"] == msg {
			out = append(out, l)
		}
	}
	return out
}

// TestFailedRowsAreLogged: each failed row is logged once with its file
// (as the job wrote it), line, row, id, field and reason, and its error
// in the output names the place the same way.
func TestFailedRowsAreLogged(t *testing.T) {
	in := rows(8)
	in[4] = `{"id":"r0004","text":` // line 5: malformed JSON
	in[5] = `{"id":"r0005","body":"no text"}`
	j := setup(t, in, "")
	_, lines := runLogged(t, j, 2)

	failed := withMsg(lines, "row failed")
	require.Len(t, failed, 2, "each failed row is logged once")
	byLine := map[float64]map[string]any{}
	for _, f := range failed {
		assert.Equal(t, "WARN", f["level"])
		assert.Equal(t, "in.jsonl", f["file"], "the input as the job file wrote it")
		byLine[f["line"].(float64)] = f
	}
	require.Contains(t, byLine, float64(5))
	assert.Equal(t, float64(4), byLine[5]["row"])
	assert.Contains(t, byLine[5]["reason"], "malformed JSON")
	assert.NotContains(t, byLine[5], "field", "the whole line is bad")
	require.Contains(t, byLine, float64(6))
	assert.Equal(t, "r0005", byLine[6]["id"])
	assert.Equal(t, "text", byLine[6]["field"])
	assert.Equal(t, "missing text field", byLine[6]["reason"])

	out := readLines(t, j.Output.Path)
	assert.True(t, strings.HasPrefix(out[4]["error"].(string), "in.jsonl line 5 (row 4): malformed JSON"), out[4]["error"])
	assert.Equal(t, `in.jsonl line 6 (row 5): field "text": missing text field`, out[5]["error"])
	assert.NotContains(t, out[4]["error"], j.Input.Path[0], "one form of the file's name, not the absolute path")
}

// TestFailedRowLogIsBounded: past LoggedFailures, failed rows are only
// counted, with one line saying so and where they are recorded.
func TestFailedRowLogIsBounded(t *testing.T) {
	in := rows(300)
	for i := 0; i < len(in); i += 2 {
		in[i] = "not json"
	}
	j := setup(t, in, "")
	sum, lines := runLogged(t, j, 4)
	assert.Equal(t, int64(150), sum.Failed)
	assert.Len(t, withMsg(lines, "row failed"), runner.LoggedFailures)
	var more []map[string]any
	for _, l := range lines {
		if strings.HasPrefix(l["msg"].(string), "more rows failed") {
			more = append(more, l)
		}
	}
	require.Len(t, more, 1)
	assert.Equal(t, "the error field of "+j.Output.Path, more[0]["recorded_in"])
}

// TestCutRows: a translation cut off at max_new_tokens keeps its partial
// text and finish reason "length"; it fails by default, per on_error, and
// counts as good with generation.accept_cut. The setting is applied when
// the output is written, so changing it needs no restart.
func TestCutRows(t *testing.T) {
	in := rows(6)
	in[2] = `{"id":"r0002","text":"a long CUT text"}`
	tests := []struct {
		name                string
		extra               string
		good, failed, skip  int64
		rowErr, translation any
	}{
		{name: "failed by default", good: 5, failed: 1,
			rowErr: `in.jsonl line 3 (row 2): translation cut off at generation.max_new_tokens (256) after "txet TUC gnol a"`, translation: "txet TUC gnol a"},
		{name: "accepted", extra: "generation:\n  accept_cut: true\n", good: 6, translation: "txet TUC gnol a"},
		{name: "skipped", extra: "on_error: skip\n", good: 5, skip: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := setup(t, in, tt.extra)
			sum, err := runner.Run(t.Context(), config(j, &fakeTranslator{}, 2))
			require.NoError(t, err)
			assert.Equal(t, tt.good, sum.Good)
			assert.Equal(t, tt.failed, sum.Failed)
			assert.Equal(t, tt.skip, sum.Skipped)
			assert.Equal(t, int64(1), sum.Cut)
			out := readLines(t, j.Output.Path)
			if tt.skip > 0 {
				require.Len(t, out, 5)
				errs := readLines(t, j.ErrorsPath())
				require.Len(t, errs, 1)
				assert.Contains(t, errs[0]["error"], "cut off at generation.max_new_tokens")
				return
			}
			require.Len(t, out, 6)
			assert.Equal(t, tt.translation, out[2]["translation"], "the partial text is kept")
			assert.Equal(t, tt.rowErr, out[2]["error"])
			assert.Equal(t, "length", out[2]["finish_reason"])
			assert.Equal(t, "stop", out[1]["finish_reason"])
			assert.Nil(t, out[1]["error"])
		})
	}

	t.Run("accepting later needs no restart", func(t *testing.T) {
		j := setup(t, in, "")
		sum, err := runner.Run(t.Context(), config(j, &fakeTranslator{}, 2))
		require.NoError(t, err)
		require.Equal(t, int64(1), sum.Failed)
		j.Generation.AcceptCut = true
		tr := &fakeTranslator{}
		sum, err = runner.Run(t.Context(), config(j, tr, 2))
		require.NoError(t, err)
		assert.Zero(t, tr.calls.Load(), "nothing is translated again")
		assert.Zero(t, sum.Failed)
		assert.Nil(t, readLines(t, j.Output.Path)[2]["error"])
	})

	t.Run("fail stops at a cut row", func(t *testing.T) {
		j := setup(t, in, "on_error: fail\n")
		_, err := runner.Run(t.Context(), config(j, &fakeTranslator{}, 1))
		require.ErrorIs(t, err, runner.ErrRowFailed)
		assert.Contains(t, err.Error(), "line 3 (row 2): translation cut off")
	})

	t.Run("a failed row has no finish reason", func(t *testing.T) {
		j := setup(t, []string{`{"id":"a","text":null}`}, "")
		_, err := runner.Run(t.Context(), config(j, &fakeTranslator{}, 1))
		require.NoError(t, err)
		out := readLines(t, j.Output.Path)
		assert.Contains(t, out[0], "finish_reason")
		assert.Nil(t, out[0]["finish_reason"])
	})
}
