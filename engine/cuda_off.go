package engine

import (
	"errors"

	"github.com/batchtrans/batchtrans/engine/backend"
	"github.com/batchtrans/batchtrans/engine/kernels"
	"github.com/batchtrans/batchtrans/engine/llama"
)

func loadCUDA(Options, kernels.DType) (*llama.Config, backend.Net, error) {
	return nil, nil, errors.New("load model: this build has no CUDA backend")
}
