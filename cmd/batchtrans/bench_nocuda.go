//go:build nocuda

package main

import (
	"errors"

	"github.com/batchtrans/batchtrans/engine/backend"
)

// gpuCeilings fails: this build has no CUDA backend.
func gpuCeilings(backend.Net, *benchResult) error {
	return errors.New("this build has no CUDA backend")
}
