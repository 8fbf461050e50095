//go:build nocuda

package engine

import (
	"errors"

	"github.com/batchtrans/batchtrans/engine/backend"
	"github.com/batchtrans/batchtrans/engine/kernels"
	"github.com/batchtrans/batchtrans/engine/llama"
)

// loadCUDA fails: this build (-tags nocuda, fully static) has no CUDA
// backend.
func loadCUDA(Options, kernels.DType) (*llama.Config, backend.Net, error) {
	return nil, nil, errors.New("load model: this build has no CUDA backend (built with -tags nocuda)")
}
