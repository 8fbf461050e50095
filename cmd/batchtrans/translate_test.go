package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/batchtrans/batchtrans/engine/device"
)

const tinyModel = "../../engine/llama/testdata/models/tiny-a"

// refCases reads the transformers reference generations for tiny-a.
func refCases(t *testing.T) []struct {
	Messages []struct {
		Content string `json:"content"`
	} `json:"messages"`
	PromptIDs []int     `json:"prompt_ids"`
	OutputIDs []int     `json:"output_ids"`
	Margins   []float64 `json:"margins"`
} {
	f, err := os.Open("../../engine/llama/testdata/ref/tiny-a.json.gz")
	require.NoError(t, err)
	defer f.Close()
	zr, err := gzip.NewReader(f)
	require.NoError(t, err)
	var doc struct {
		Cases []struct {
			Messages []struct {
				Content string `json:"content"`
			} `json:"messages"`
			PromptIDs []int     `json:"prompt_ids"`
			OutputIDs []int     `json:"output_ids"`
			Margins   []float64 `json:"margins"`
		} `json:"cases"`
	}
	require.NoError(t, json.NewDecoder(zr).Decode(&doc))
	return doc.Cases
}

// runTranslateCmd runs the command in-process and returns its exit code,
// stdout and stderr.
func runTranslateCmd(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	env := &cliEnv{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	err := translateCmd(t.Context(), env, args)
	if err != nil {
		errb.WriteString(err.Error())
	}
	return exitCode(err), out.String(), errb.String()
}

func TestTranslateJSONMatchesTransformers(t *testing.T) {
	cases := refCases(t)
	base := []string{"--model", tinyModel, "--dtype", "f32", "--date", "25 Nov 2026", "--max-new-tokens", "24", "--json"}
	for _, i := range []int{2, 3} { // case 3 meets EOS at its second token
		c := cases[i]
		t.Run(c.Messages[1].Content, func(t *testing.T) {
			code, stdout, stderr := runTranslateCmd(t, "", append(base, c.Messages[1].Content)...)
			require.Equal(t, 0, code, stderr)
			var got translateJSON
			require.NoError(t, json.Unmarshal([]byte(stdout), &got))
			assert.Equal(t, c.PromptIDs, got.PromptIDs, "default system prompt, pinned date, chat template")
			assert.Equal(t, len(got.PromptIDs), got.PromptTokens)
			assert.Equal(t, len(got.OutputIDs), got.CompletionTokens)
			for j, mg := range c.Margins {
				require.Greater(t, mg, 1e-3, "fixture step %d is a near-tie", j)
				if j >= len(got.OutputIDs) {
					break
				}
				assert.Equal(t, c.OutputIDs[j], got.OutputIDs[j], "token %d", j)
			}
			if i == 3 {
				assert.Equal(t, "stop", got.FinishReason)
				assert.Equal(t, c.OutputIDs[:2], got.OutputIDs)
			} else {
				assert.Equal(t, "length", got.FinishReason)
				assert.Len(t, got.OutputIDs, 24)
			}

			// Plain output is the same text; stdin works as the text source.
			code, plain, stderr := runTranslateCmd(t, c.Messages[1].Content+"\n", base[:len(base)-1]...)
			require.Equal(t, 0, code, stderr)
			assert.Equal(t, got.Text+"\n", plain)
		})
	}
}

func TestTranslateInteractive(t *testing.T) {
	cases := refCases(t)
	in := cases[2].Messages[1].Content + "\n\n" + cases[4].Messages[1].Content + "\n"
	code, stdout, stderr := runTranslateCmd(t, in, "--model", tinyModel, "--dtype", "f32", "--date", "25 Nov 2026", "--max-new-tokens", "4", "--json", "--interactive")
	require.Equal(t, 0, code, stderr)
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	require.Len(t, lines, 2, "one object per non-empty line")
	for k, i := range []int{2, 4} {
		var got translateJSON
		require.NoError(t, json.Unmarshal([]byte(lines[k]), &got))
		assert.Equal(t, cases[i].PromptIDs, got.PromptIDs)
		assert.Equal(t, cases[i].OutputIDs[:4], got.OutputIDs)
	}
}

func TestTranslateErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope")
	cases := []struct {
		name  string
		stdin string
		args  []string
		code  int
		msg   string
	}{
		{"no model", "", []string{"hi"}, 2, "--model is required"},
		{"unknown flag", "", []string{"--model", tinyModel, "--bogus"}, 2, "bogus"},
		{"bad date", "", []string{"--model", tinyModel, "--date", "2026-11-25", "hi"}, 2, `--date "2026-11-25"`},
		{"bad max tokens", "", []string{"--model", tinyModel, "--max-new-tokens", "0", "hi"}, 2, "--max-new-tokens"},
		{"no cuda here", "", []string{"--model", tinyModel, "--device", "cuda", "hi"}, 2, "device cuda"},
		{"unknown device", "", []string{"--model", tinyModel, "--device", "tpu", "hi"}, 2, `unknown device "tpu"`},
		{"no text", "", []string{"--model", tinyModel}, 2, "no text"},
		{"interactive with text", "", []string{"--model", tinyModel, "--interactive", "hi"}, 2, "--interactive"},
		{"missing model", "", []string{"--model", missing, "hi"}, 1, missing},
		{"bad dtype", "", []string{"--model", tinyModel, "--dtype", "f16", "hi"}, 1, `unknown dtype "f16"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "no cuda here" && device.System().Probe().HasNVIDIA() {
				t.Skip("this machine has an NVIDIA GPU: covered by the device package's faked machines")
			}
			code, _, stderr := runTranslateCmd(t, tc.stdin, tc.args...)
			assert.Equal(t, tc.code, code)
			assert.Contains(t, stderr, tc.msg)
		})
	}
}

func TestTranslateForcedCPULogLine(t *testing.T) {
	code, _, stderr := runTranslateCmd(t, "", "--model", tinyModel, "--device", "cpu", "--max-new-tokens", "2", "--date", "25 Nov 2026", "hi")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stderr, "[INFO] Forcing CPU for inference (user requested)\n")
}

func TestPrintDevices(t *testing.T) {
	cases := []struct {
		name string
		info device.Info
		want []string
	}{
		{"apple silicon", device.Info{OS: "darwin", Arch: "arm64", CPUs: 8, CPUModel: "Apple M1", AppleSilicon: true},
			[]string{"os: darwin/arm64", "apple silicon: yes", "auto picks: cpu\n  [WARNING] MPS detected but has 4GB tensor limit\n  [WARNING] Defaulting to CPU for stability\n"}},
		{"nvidia", device.Info{OS: "linux", Arch: "amd64", CPUs: 16, NVIDIADriver: "550.54.15", GPUs: []string{"NVIDIA L4"},
			CUDA: &device.CUDAInfo{Library: "/usr/lib64/libcuda.so.1", Driver: "12.4", GPUs: []device.GPU{{Name: "NVIDIA L4", Memory: 24 << 30, CC: "8.9"}}}},
			[]string{"nvidia gpu: NVIDIA L4", "cuda gpu 0: NVIDIA L4, 24576 MiB, compute capability 8.9",
				"auto picks: cuda\n  [INFO] Using CUDA: 1 GPU: NVIDIA L4 (24 GiB, compute 8.9), CUDA driver 12.4\n"}},
		{"nvidia without a driver library", device.Info{OS: "linux", Arch: "amd64", CPUs: 16, NVIDIADriver: "550.54.15", GPUs: []string{"NVIDIA L4"},
			CUDA: &device.CUDAInfo{Err: "no NVIDIA driver library: tried libcuda.so.1"}},
			[]string{"cuda: not usable: no NVIDIA driver library", "auto picks: cpu\n  [INFO] CUDA not used (no NVIDIA driver library: tried libcuda.so.1); using CPU\n"}},
		{"plain linux", device.Info{OS: "linux", Arch: "amd64", CPUs: 2},
			[]string{"nvidia gpu: none", "auto picks: cpu\n"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.info.CUDA != nil && !device.HasCUDABackend {
				t.Skip("the CUDA driver's answers exist only in builds with the CUDA backend")
			}
			var b bytes.Buffer
			require.NoError(t, printDevices(&b, tc.info))
			for _, w := range tc.want {
				assert.Contains(t, b.String(), w)
			}
		})
	}
	var out bytes.Buffer
	env := &cliEnv{stdout: &out, stderr: io.Discard}
	require.NoError(t, devicesCmd(t.Context(), env, nil))
	assert.Contains(t, out.String(), "auto picks: cpu")
	assert.Equal(t, exitUsage, exitCode(devicesCmd(t.Context(), env, []string{"extra"})))
}

func TestTranslateInteractiveInterrupted(t *testing.T) {
	pr, pw := io.Pipe()
	defer pw.Close()
	sigs := make(chan os.Signal, 1)
	out := &syncBuffer{}
	env := &cliEnv{stdin: pr, stdout: out, stderr: io.Discard, log: slog.New(slog.NewTextHandler(io.Discard, nil)), signals: sigs}
	done := make(chan error, 1)
	go func() {
		done <- translateCmd(t.Context(), env, []string{"--model", tinyModel, "--max-new-tokens", "2", "--date", "25 Nov 2026", "--interactive"})
	}()
	_, err := pw.Write([]byte("Hello, world!\n"))
	require.NoError(t, err)
	// The first line is translated; then the loop waits for input and a
	// SIGINT ends it with the interrupt exit code.
	require.Eventually(t, func() bool { return strings.Contains(out.String(), "\n") }, 30*time.Second, 10*time.Millisecond)
	sigs <- syscall.SIGINT
	select {
	case err := <-done:
		assert.Equal(t, exitInterrupted, exitCode(err))
	case <-time.After(30 * time.Second):
		t.Fatal("interactive loop did not stop on SIGINT")
	}
}

// syncBuffer is a bytes.Buffer safe to read while a command writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
