//go:build !nocuda

package engine

import (
	"fmt"

	"github.com/batchtrans/batchtrans/engine/backend"
	"github.com/batchtrans/batchtrans/engine/cuda"
	"github.com/batchtrans/batchtrans/engine/kernels"
	"github.com/batchtrans/batchtrans/engine/llama"
)

// loadCUDA builds the CUDA backend on every visible GPU, its step buffers
// sized for the scheduler's batch and step.
func loadCUDA(opts Options, dt kernels.DType) (*llama.Config, backend.Net, error) {
	if dt == kernels.Q8 {
		return nil, nil, fmt.Errorf("load model: dtype q8 runs on the CPU only; use bf16 or f32 with device cuda")
	}
	net, err := cuda.Load(cuda.Options{
		ModelDir: opts.ModelDir, AdapterDir: opts.AdapterDir, BF16: dt == kernels.BF16,
		MaxRows: opts.StepTokens, MaxOutputs: opts.MaxBatch, KVBytes: opts.GPUKVBytes,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("load model: %w", err)
	}
	return net.Config(), net, nil
}
