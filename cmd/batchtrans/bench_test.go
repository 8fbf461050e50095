package main

import (
	"bytes"
	"encoding/json"
	"github.com/batchtrans/batchtrans/engine/backend"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/batchtrans/batchtrans/engine/kernels"
	"github.com/batchtrans/batchtrans/engine/llama"
	"github.com/batchtrans/batchtrans/engine/llama/synth"
)

// runBenchCmd runs the command in-process and returns its exit code,
// stdout and stderr.
func runBenchCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	env := &cliEnv{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	err := benchCmd(t.Context(), env, args)
	if err != nil {
		errb.WriteString(err.Error())
	}
	return exitCode(err), out.String(), errb.String()
}

// quick keeps the measured work small.
var quick = []string{"--prefill", "24", "--decode", "3", "--batch", "3"}

func TestBenchSyntheticJSON(t *testing.T) {
	t.Cleanup(func() { kernels.SetThreads(0) })
	for _, dt := range []string{"f32", "bf16", "q8"} {
		t.Run(dt, func(t *testing.T) {
			code, out, errs := runBenchCmd(t, append([]string{"--synthetic", "--size", "small", "--dtype", dt, "--threads", "1", "--json"}, quick...)...)
			require.Equal(t, 0, code, errs)
			lines := strings.Split(strings.TrimSpace(out), "\n")
			require.Len(t, lines, 1, "one JSON object")
			var r map[string]any
			require.NoError(t, json.Unmarshal([]byte(lines[0]), &r))
			for _, k := range []string{"load_s", "prefill_tok_s", "decode_tok_s", "batch_decode_tok_s", "peak_rss_bytes",
				"bandwidth_bytes_s", "decode_bound_tok_s", "weight_bytes", "params"} {
				require.Contains(t, r, k)
				assert.Greater(t, r[k].(float64), 0.0, k)
			}
			if kernels.Impl() != "generic" && kernels.Impl() != "neon" {
				// The compute ceilings: the prefill bound leaves out the
				// LM head, so it is above the batched decode bound.
				for _, k := range []string{"peak_flops", "prefill_bound_tok_s", "batch_decode_bound_tok_s"} {
					assert.Greater(t, r[k].(float64), 0.0, k)
				}
				assert.Greater(t, r["prefill_bound_tok_s"].(float64), r["batch_decode_bound_tok_s"].(float64))
			}
			assert.Equal(t, "synthetic-small", r["model"])
			assert.Equal(t, dt, r["dtype"])
			assert.Equal(t, kernels.Impl(), r["impl"])
			assert.Equal(t, 1.0, r["threads"])
			assert.Equal(t, 24.0, r["prefill_tokens"])
			// A 24-token prefill of the small shape takes milliseconds:
			// all three runs fit the budget.
			assert.Equal(t, 3.0, r["prefill_runs"])
			assert.Equal(t, 3.0, r["decode_tokens"])
			assert.Equal(t, 3.0, r["batch_sequences"])
			spec := benchSizes["small"]()
			var params int64 = int64(spec.Vocab) * int64(spec.Hidden) // tied
			q, kv := spec.Heads*spec.HeadDim, spec.KVHeads*spec.HeadDim
			params += int64(spec.Layers) * int64(2*spec.Hidden+spec.Hidden*(2*q+2*kv)+3*spec.Hidden*spec.Intermediate)
			params += int64(spec.Hidden)
			assert.Equal(t, float64(params), r["params"])
		})
	}
}

func TestBenchModelFolderWithAdapter(t *testing.T) {
	dir := t.TempDir()
	spec := synth.Tiny()
	require.NoError(t, synth.WriteModel(filepath.Join(dir, "model"), spec, 1))
	require.NoError(t, synth.WriteAdapter(filepath.Join(dir, "adapter"), spec,
		synth.AdapterSpec{Rank: 4, Alpha: 8, Targets: synth.AllLinear}, 2))
	prof := filepath.Join(dir, "cpu.pprof")
	code, out, errs := runBenchCmd(t, append([]string{"--model", filepath.Join(dir, "model"), "--adapter", filepath.Join(dir, "adapter"), "--cpuprofile", prof}, quick...)...)
	require.Equal(t, 0, code, errs)
	st, err := os.Stat(prof)
	require.NoError(t, err)
	assert.Positive(t, st.Size(), "the CPU profile is written")
	for _, want := range []string{
		"model            " + filepath.Join(dir, "model"),
		"dtype            bf16",
		"kernels          " + kernels.Impl(),
		"prefill          ", "(one 24-token prompt, warm, median of 3)",
		"decode           ", "(one sequence, 3 tokens)",
		"batched decode   ", "(3 sequences, 3 tokens each)",
		"peak RSS", "memory bandwidth",
	} {
		assert.Contains(t, out, want)
	}
}

// --kernels runs the bench on a slower implementation, for side-by-side
// comparisons in one session.
func TestBenchKernelsFlag(t *testing.T) {
	all := kernels.Impls()
	t.Cleanup(func() { require.NoError(t, kernels.Use(all[len(all)-1])) })
	code, out, errs := runBenchCmd(t, append([]string{"--synthetic", "--size", "small", "--threads", "1", "--json", "--kernels", "generic"}, quick...)...)
	require.Equal(t, 0, code, errs)
	var r map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &r))
	assert.Equal(t, "generic", r["impl"])
}

func TestBenchErrors(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, synth.WriteModel(filepath.Join(dir, "model"), synth.Tiny(), 1)) // 256 positions
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"synthetic and model", []string{"--synthetic", "--model", dir}, 2, "exclude each other"},
		{"adapter alone", []string{"--adapter", dir}, 2, "--adapter needs --model"},
		{"size with model", []string{"--model", dir, "--size", "small"}, 2, "--size shapes a synthetic model"},
		{"size", []string{"--size", "7b"}, 2, `unknown --size "7b"`},
		{"dtype", []string{"--dtype", "f16"}, 2, `unknown dtype "f16"`},
		{"threads", []string{"--threads", "-1"}, 2, "--threads -1"},
		{"kernels", []string{"--kernels", "sse9"}, 2, `no "sse9" implementation on this CPU`},
		{"zero decode", []string{"--decode", "0"}, 2, "must be positive"},
		{"argument", []string{"--size", "small", "extra"}, 2, `unexpected argument "extra"`},
		{"flag", []string{"--fast"}, 2, "fast"},
		{"no model", []string{"--model", filepath.Join(dir, "missing")}, 1, "missing"},
		{"prompt past context", append([]string{"--model", filepath.Join(dir, "model"), "--prefill", "300"}, quick[2:]...), 1, "context of 256 positions"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := runBenchCmd(t, tc.args...)
			assert.Equal(t, tc.code, code, errs)
			assert.Contains(t, errs, tc.want)
			assert.Empty(t, out)
		})
	}
}

// synthTiny is a tiny synthetic model, float32, for the CPU backend.
func synthTiny(t *testing.T) (*llama.Config, *llama.Model) {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, synth.WriteModel(dir, synth.Tiny(), 3))
	cfg, w, err := llama.Load(dir, "", kernels.F32)
	require.NoError(t, err)
	net, err := llama.NewModel(cfg, w)
	require.NoError(t, err)
	return cfg, net
}

// The timed prefills stop once they have taken the budget together, after
// one run at least, and report the median of the runs made.
func TestBenchPrefillRuns(t *testing.T) {
	cfg, net := synthTiny(t)
	for _, tc := range []struct {
		name   string
		budget time.Duration
		runs   int
	}{
		{"past the budget after one", time.Nanosecond, 1},
		{"all within the budget", time.Hour, benchPrefillRuns},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := &bencher{net: llama.NewCPU(net), cfg: cfg, rng: rand.New(rand.NewPCG(1, 2)), prefillBudget: tc.budget}
			d, runs, err := b.timePrefill(32)
			require.NoError(t, err)
			assert.Equal(t, tc.runs, runs)
			assert.Positive(t, d)
			assert.LessOrEqual(t, d, b.wall, "the median is one of the timed runs, or between two")
		})
	}
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		name string
		ds   []time.Duration
		want time.Duration
	}{
		{"one", []time.Duration{5}, 5},
		{"two: their mean", []time.Duration{4, 8}, 6},
		{"three, unsorted: a slow first run left out", []time.Duration{90, 10, 12}, 12},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := slices.Clone(tc.ds)
			assert.Equal(t, tc.want, median(in))
			assert.Equal(t, tc.ds, in, "the input keeps its order")
		})
	}
}

// The bench's decode must really step every sequence: each state advances
// one position per token, and the greedy tokens are the ones a plain
// one-sequence loop over the same forward step picks.
func TestBenchDecodeSteps(t *testing.T) {
	cfg, net := synthTiny(t)
	b := &bencher{net: llama.NewCPU(net), cfg: cfg, rng: rand.New(rand.NewPCG(1, 2))}
	prompts := [][]int{b.prompt(5), b.prompt(9), b.prompt(7)}
	states, err := b.prefill(prompts, 8) // chunked: 8 rows a step
	require.NoError(t, err)
	_, err = b.decode(states, 4)
	require.NoError(t, err)
	for i, p := range prompts {
		assert.Equal(t, len(p)+4, states[i].Pos())
		// Reference: the same prompt alone, whole, then 4 greedy steps.
		var ws llama.Workspace
		s := net.NewState()
		require.NoError(t, net.Forward(&ws, []llama.Step{{State: s, Tokens: p, Out: backend.Logits}}))
		for range 4 {
			tok := s.Token()
			require.NoError(t, net.Forward(&ws, []llama.Step{{State: s, Tokens: []int{tok}, Out: backend.Logits}}))
		}
		assert.Equal(t, s.Logits(), states[i].Logits(), "sequence %d", i)
	}
}
