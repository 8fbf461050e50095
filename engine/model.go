package engine

import (
	"fmt"
	"time"

	"github.com/batchtrans/batchtrans/engine/kernels"
	"github.com/batchtrans/batchtrans/engine/llama"
	"github.com/batchtrans/batchtrans/engine/tokenizer"
)

// Model is a loaded model ready to generate: tokenizer, chat template,
// network. It is immutable after Load apart from its step loop's queue, and
// safe for concurrent use; see Generate.
type Model struct {
	cfg   *llama.Config
	net   *llama.Model
	codec codec
	sched *scheduler

	tok      *tokenizer.Tokenizer
	dtype    kernels.DType
	loadTime time.Duration
}

// Config returns the model's config; callers must not modify it.
func (m *Model) Config() *llama.Config { return m.cfg }

// newModel wires a network and a codec into a Model with its scheduler.
func newModel(net *llama.Model, c codec, maxBatch, stepTokens int) (*Model, error) {
	if maxBatch <= 0 {
		maxBatch = DefaultMaxBatch
	}
	if stepTokens <= 0 {
		stepTokens = DefaultStepTokens
	}
	if stepTokens < maxBatch+1 {
		return nil, fmt.Errorf("engine: %d tokens per step cannot serve a batch of %d and a prefill", stepTokens, maxBatch)
	}
	m := &Model{cfg: net.Config(), net: net, codec: c}
	m.sched = &scheduler{m: m, maxBatch: maxBatch, stepTokens: stepTokens, cache: newPrefixCache(prefixCacheEntries, prefixCacheBytes)}
	return m, nil
}
