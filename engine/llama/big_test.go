package llama

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/batchtrans/batchtrans/engine/kernels"
	"github.com/batchtrans/batchtrans/engine/llama/synth"
	"github.com/batchtrans/batchtrans/internal/procstat"
)

// bigResult is what one load of the full-size model measured.
type bigResult struct {
	DType       string  `json:"dtype"`
	LoadSeconds float64 `json:"load_s"`
	LoadCPU     float64 `json:"load_cpu_s"` // user+system CPU time of the load
	WeightBytes int64   `json:"weight_bytes"`
	PeakRSS     int64   `json:"peak_rss_bytes"` // VmHWM after load
	PeakRSSGen  int64   `json:"peak_rss_after_generate_bytes"`
	Tokens      []int   `json:"tokens"`
}

// TestBigLlama32Shape loads a Llama-3.2-1B-shaped checkpoint (1.24 B random
// bf16 weights, real shapes and file layout) with an r=16 adapter on all
// seven linear modules, in f32 and in bf16, and checks peak memory against
// the goal of 1.2x the in-memory weight bytes. Each load runs in its own
// process so that its peak RSS is its own. It writes 2.5 GB and needs about
// 6 GB of memory, so it runs only with BATCHTRANS_BIG=1; BATCHTRANS_BIG_DIR
// keeps the generated model between runs.
func TestBigLlama32Shape(t *testing.T) {
	if os.Getenv("BATCHTRANS_BIG") != "1" {
		t.Skip("set BATCHTRANS_BIG=1 to load a 1.24 B-parameter model (2.5 GB on disk, ~6 GB RAM)")
	}
	root := os.Getenv("BATCHTRANS_BIG_DIR")
	if root == "" {
		root = t.TempDir()
	}
	mdir, adir, err := synth.BigFolders(root)
	require.NoError(t, err)
	for _, dt := range []string{"f32", "bf16"} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestBigChild$", "-test.v")
		cmd.Env = append(os.Environ(), "BATCHTRANS_BIG_CHILD="+strings.Join([]string{mdir, adir, dt}, "\n"))
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		var res bigResult
		found := false
		for _, line := range strings.Split(string(out), "\n") {
			if s, ok := strings.CutPrefix(strings.TrimSpace(line), "BIGRESULT "); ok {
				require.NoError(t, json.Unmarshal([]byte(s), &res))
				found = true
			}
		}
		require.True(t, found, "%s", out)
		ratio := float64(res.PeakRSS) / float64(res.WeightBytes)
		t.Logf("%s: load+merge %.2fs wall, %.2fs CPU; weights %.3f GB, peak RSS %.3f GB (%.3fx), after generating %d tokens %.3f GB",
			dt, res.LoadSeconds, res.LoadCPU, float64(res.WeightBytes)/1e9, float64(res.PeakRSS)/1e9, ratio, len(res.Tokens), float64(res.PeakRSSGen)/1e9)
		assert.LessOrEqual(t, ratio, 1.2, "%s: peak RSS over 1.2x the weight bytes", dt)
		// NewModel stacks Q|K|V and Gate|Up into new storage: the old
		// must be reused, not kept, so generating stays near the same peak.
		assert.LessOrEqual(t, float64(res.PeakRSSGen)/float64(res.WeightBytes), 1.2,
			"%s: peak RSS after NewModel and two tokens over 1.2x the weight bytes", dt)
	}
}

// TestBigChild is the measured process of TestBigLlama32Shape.
func TestBigChild(t *testing.T) {
	arg := os.Getenv("BATCHTRANS_BIG_CHILD")
	if arg == "" {
		t.Skip("run by TestBigLlama32Shape")
	}
	parts := strings.Split(arg, "\n")
	require.Len(t, parts, 3)
	dt, err := kernels.ParseDType(parts[2])
	require.NoError(t, err)
	start := time.Now()
	cfg, w, err := Load(parts[0], parts[1], dt)
	require.NoError(t, err)
	res := bigResult{DType: parts[2], LoadSeconds: time.Since(start).Seconds(), LoadCPU: cpuSeconds(t), PeakRSS: vmHWM(t)}
	res.WeightBytes = w.Embed.Bytes()
	if w.LMHead != w.Embed {
		res.WeightBytes += w.LMHead.Bytes()
	}
	for _, l := range w.Layers {
		for _, m := range []*kernels.Matrix{l.Q, l.K, l.V, l.O, l.Gate, l.Up, l.Down} {
			res.WeightBytes += m.Bytes()
		}
		res.WeightBytes += int64(len(l.AttnNorm)+len(l.MLPNorm)) * 4
	}
	res.WeightBytes += int64(len(w.Norm)) * 4

	m, err := NewModel(cfg, w)
	require.NoError(t, err)
	res.Tokens, _ = greedyIDs(t, m, []int{128000, 9906, 11, 1917}, 2)
	res.PeakRSSGen = vmHWM(t)
	b, err := json.Marshal(res)
	require.NoError(t, err)
	fmt.Printf("BIGRESULT %s\n", b)
}

// vmHWM is this process's peak resident set size.
func vmHWM(t *testing.T) int64 {
	n, err := procstat.PeakRSS()
	if err != nil {
		t.Skipf("peak RSS needs /proc: %v", err)
	}
	return n
}

// cpuSeconds is this process's user+system CPU time so far.
func cpuSeconds(t *testing.T) float64 {
	d, err := procstat.CPUTime()
	if err != nil {
		t.Skipf("CPU time needs /proc: %v", err)
	}
	return d.Seconds()
}
