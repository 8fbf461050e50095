package engine

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/batchtrans/batchtrans/engine/backend"
	"github.com/batchtrans/batchtrans/engine/kernels"
	"github.com/batchtrans/batchtrans/engine/llama"
	"github.com/batchtrans/batchtrans/engine/tokenizer"
)

// Model is a loaded model ready to generate: tokenizer, chat template, and
// the network on its backend (the CPU or a GPU). It is immutable after Load
// apart from its step loop's queue, and safe for concurrent use; see
// Generate. Close releases the backend's device memory.
type Model struct {
	cfg   *llama.Config
	net   backend.Net
	codec codec
	sched *scheduler

	tok      *tokenizer.Tokenizer
	dtype    kernels.DType
	loadTime time.Duration
	device   string // "cpu" or "cuda"

	// broken holds the device failure (backend.ErrDevice) that ended the
	// model, if one did: requests then fail at once.
	broken atomic.Pointer[error]
	closed atomic.Bool
}

// Numerics names what makes the model's output bits (the backend's and
// the dtype's): a job's checkpoint records it, so that a resume under
// other numerics is refused rather than mixed.
func (m *Model) Numerics() string { return m.net.Numerics() + ", dtype " + m.dtype.String() }

// Device is the device the model runs on: "cpu" or "cuda".
func (m *Model) Device() string { return m.device }

// Close frees the device memory of the prefix cache and the weights.
// Generate must not be running or called afterwards.
func (m *Model) Close() error {
	if m.closed.Swap(true) {
		return nil
	}
	if m.sched.cache != nil {
		m.sched.cache.clear()
	}
	return m.net.Close()
}

// Config returns the model's config; callers must not modify it.
func (m *Model) Config() *llama.Config { return m.cfg }

// newModel wires a network and a codec into a Model with its scheduler.
func newModel(cfg *llama.Config, net backend.Net, c codec, maxBatch, stepTokens int) (*Model, error) {
	if maxBatch <= 0 {
		maxBatch = DefaultMaxBatch
	}
	if stepTokens <= 0 {
		stepTokens = DefaultStepTokens
	}
	if stepTokens < maxBatch+1 {
		return nil, fmt.Errorf("engine: %d tokens per step cannot serve a batch of %d and a prefill", stepTokens, maxBatch)
	}
	m := &Model{cfg: cfg, net: net, codec: c}
	m.sched = &scheduler{m: m, maxBatch: maxBatch, stepTokens: stepTokens, cache: newPrefixCache(prefixCacheEntries, prefixCacheBytes)}
	return m, nil
}
