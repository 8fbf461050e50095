//go:build !nocuda

package engine

import (
	"bufio"
	"encoding/json"
	"os"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/batchtrans/batchtrans/engine/cuda/driver"
)

// heldout returns the English texts of the bundled held-out rows.
func heldout(t *testing.T) []string {
	f, err := os.Open("../examples/data/heldout-de.jsonl")
	require.NoError(t, err)
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var row struct{ En string }
		require.NoError(t, json.Unmarshal(sc.Bytes(), &row))
		out = append(out, row.En)
	}
	require.NoError(t, sc.Err())
	return out
}

// translateAll loads the bundled translator on device with maxBatch
// sequences a step and translates texts concurrently; every fourth row
// samples (temperature 0.8, its own seed), the others are greedy.
func translateAll(t *testing.T, device, dtype string, maxBatch int, texts []string) []Result {
	t.Helper()
	m, err := Load(Options{Device: device, DType: dtype, MaxBatch: maxBatch,
		ModelDir: "../examples/models/tiny-translator/base", AdapterDir: "../examples/models/tiny-translator/adapter-de"})
	require.NoError(t, err)
	defer m.Close()
	out := make([]Result, len(texts))
	var wg sync.WaitGroup
	for i, text := range texts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := Request{
				Messages: []Message{
					{Role: "system", Content: "Translate the user's text from English to German. Reply with the translation only."},
					{Role: "user", Content: text},
				},
				Date: "25 Nov 2026", MaxNewTokens: 48, Seed: uint64(i),
			}
			if i%4 == 3 {
				req.Temperature = 0.8
			}
			res, err := m.Generate(t.Context(), req)
			assert.NoError(t, err)
			out[i] = res
		}()
	}
	wg.Wait()
	return out
}

// TestGPUBatchInvariantGeneration runs the same 64 rows through the whole
// engine on the GPU alone, 7 and 64 at a time, and among 512 rows in
// flight: every output (greedy and sampled) is the same, token for token.
// It also reports how many outputs equal the CPU's in f32 and bf16.
func TestGPUBatchInvariantGeneration(t *testing.T) {
	if r := driver.Probe(); r.Err != nil {
		t.Skipf("no usable CUDA GPU (%v): the GPU tests run on a machine with an NVIDIA GPU (make test-gpu)", r.Err)
	}
	texts := heldout(t)
	targets := texts[:64]
	var many []string
	for len(many) < 512 {
		many = append(many, texts...)
	}
	many = append(append([]string(nil), targets...), many[64:512]...)
	for _, dtype := range []string{"bf16", "f32"} {
		t.Run(dtype, func(t *testing.T) {
			want := translateAll(t, "cuda", dtype, 1, targets)
			for _, tc := range []struct {
				name     string
				maxBatch int
				texts    []string
			}{{"among 7", 7, targets}, {"among 64", 64, targets}, {"among 512", 512, many}} {
				got := translateAll(t, "cuda", dtype, tc.maxBatch, tc.texts)
				for i := range targets {
					assert.Equal(t, want[i].OutputIDs, got[i].OutputIDs, "%s: row %d", tc.name, i)
				}
			}
			cpu := translateAll(t, "cpu", dtype, 16, targets)
			same := 0
			for i := range targets {
				if assert.ObjectsAreEqual(cpu[i].OutputIDs, want[i].OutputIDs) {
					same++
				}
			}
			t.Logf("%s: %d of %d outputs equal the CPU's token for token", dtype, same, len(targets))
		})
	}
}
