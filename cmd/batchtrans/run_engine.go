//go:build !fakeengine

package main

import (
	"context"
	"log/slog"

	"github.com/batchtrans/batchtrans/engine"
	"github.com/batchtrans/batchtrans/engine/device"
	"github.com/batchtrans/batchtrans/jobs"
	"github.com/batchtrans/batchtrans/runner"
)

// loadTranslator loads the job's model, with its adapter merged, for dev
// (the CPU in this build). The engine batches up to workers concurrent
// requests per step, so every worker's row can share each weight read.
func loadTranslator(ctx context.Context, j *jobs.Job, dev device.Device, workers int, log *slog.Logger) (runner.Translator, func() error, error) {
	m, err := engine.Load(engine.Options{
		ModelDir:   j.Model.Path,
		AdapterDir: j.Model.Adapter,
		DType:      j.Model.DType,
		MaxBatch:   workers,
	})
	if err != nil {
		return nil, nil, err
	}
	return m, func() error { return nil }, nil
}

// prefillFields are the summary's counts of prompt tokens the model ran
// and the ones the shared-prefix cache served instead.
func prefillFields(tr runner.Translator) []any {
	m, ok := tr.(*engine.Model)
	if !ok {
		return nil
	}
	st := m.PrefillStats()
	return []any{"tokens_prefilled", st.Prefilled, "tokens_reused", st.Reused}
}
