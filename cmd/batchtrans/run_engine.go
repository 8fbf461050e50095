//go:build !fakeengine

package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/batchtrans/batchtrans/engine"
	"github.com/batchtrans/batchtrans/engine/device"
	"github.com/batchtrans/batchtrans/engine/llama"
	"github.com/batchtrans/batchtrans/jobs"
	"github.com/batchtrans/batchtrans/runner"
)

// inspectModel checks the job's model folder the way loading will, from
// the file headers alone: config, every tensor's name, dtype and shape,
// the adapter against the base, and that the tokenizer is there.
func inspectModel(j *jobs.Job) (*llama.Info, error) {
	info, err := llama.Inspect(j.Model.Path, j.Model.Adapter)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(j.Model.Path, "tokenizer.json")); err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	return info, nil
}

// loadTranslator loads the job's model, with its adapter merged, on dev.
// The engine batches up to workers concurrent requests per step, so every
// worker's row can share each weight read. The closer frees the model's
// device memory.
func loadTranslator(ctx context.Context, j *jobs.Job, dev device.Device, workers int, log *slog.Logger) (runner.Translator, func() error, error) {
	m, err := engine.Load(engine.Options{
		Device:     string(dev),
		ModelDir:   j.Model.Path,
		AdapterDir: j.Model.Adapter,
		DType:      j.Model.DType,
		MaxBatch:   workers,
	})
	if err != nil {
		return nil, nil, err
	}
	log.Info("numerics", "numerics", m.Numerics())
	return m, m.Close, nil
}

// prefillFields are the summary's counts of prompt tokens the model ran
// and the ones the shared-prefix cache served instead, and of the forward
// steps and the seconds they took.
func prefillFields(tr runner.Translator) []any {
	m, ok := tr.(*engine.Model)
	if !ok {
		return nil
	}
	st, ss := m.PrefillStats(), m.StepStats()
	return []any{"tokens_prefilled", st.Prefilled, "tokens_reused", st.Reused, "steps", ss.Steps, "forward_s", ss.Forward.Seconds()}
}
