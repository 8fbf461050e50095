//go:build fakeengine

package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/batchtrans/batchtrans/engine"
	"github.com/batchtrans/batchtrans/engine/device"
	"github.com/batchtrans/batchtrans/engine/llama"
	"github.com/batchtrans/batchtrans/jobs"
	"github.com/batchtrans/batchtrans/runner"
)

// This file is built only with -tags fakeengine, by the command's tests: it
// swaps the model for a deterministic stand-in for the checks the tiny
// translator cannot serve (the product build runs every other test): a
// kill at each exact point of the group commit and the final merge, and
// memory over tens of thousands of wide rows in seconds. The
// stand-in answers with the user text reversed; BATCHTRANS_FAKE_DELAY (a
// duration) slows each row; text containing TOOLONG fails like an
// over-long prompt, and text containing CUTOFF comes back as cut off at
// max_new_tokens. BATCHTRANS_CRASH_AT=point:n SIGKILLs the process the
// n-th time the runner passes that point (see runner.CrashHook).

func init() {
	spec := os.Getenv("BATCHTRANS_CRASH_AT")
	if spec == "" {
		return
	}
	point, nth, _ := strings.Cut(spec, ":")
	want, err := strconv.Atoi(nth)
	if err != nil || want < 1 {
		want = 1
	}
	var mu sync.Mutex
	seen := 0
	runner.CrashHook = func(p string) {
		if p != point {
			return
		}
		mu.Lock()
		seen++
		hit := seen == want
		mu.Unlock()
		if hit {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // the signal is on its way
		}
	}
}

// inspectModel: the stand-in needs only the model folder to exist.
func inspectModel(j *jobs.Job) (*llama.Info, error) {
	if _, err := os.Stat(j.Model.Path); err != nil {
		return nil, err
	}
	return &llama.Info{}, nil
}

func loadTranslator(ctx context.Context, j *jobs.Job, dev device.Device, workers int, log *slog.Logger) (runner.Translator, func() error, error) {
	if _, err := os.Stat(j.Model.Path); err != nil {
		return nil, nil, fmt.Errorf("load model: %w", err)
	}
	var delay time.Duration
	if s := os.Getenv("BATCHTRANS_FAKE_DELAY"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			return nil, nil, fmt.Errorf("BATCHTRANS_FAKE_DELAY: %w", err)
		}
		delay = d
	}
	return fakeModel{delay: delay}, func() error { return nil }, nil
}

// prefillFields: the test engine has no prefill to count.
func prefillFields(runner.Translator) []any { return nil }

type fakeModel struct{ delay time.Duration }

func (f fakeModel) Generate(ctx context.Context, req engine.Request) (engine.Result, error) {
	if f.delay > 0 {
		select {
		case <-time.After(f.delay):
		case <-ctx.Done():
			return engine.Result{}, ctx.Err()
		}
	}
	text := req.Messages[len(req.Messages)-1].Content
	if strings.Contains(text, "TOOLONG") {
		return engine.Result{}, fmt.Errorf("prompt has 9000 tokens, context holds 8192: %w", engine.ErrPromptTooLong)
	}
	r := []rune(text)
	for i, k := 0, len(r)-1; i < k; i, k = i+1, k-1 {
		r[i], r[k] = r[k], r[i]
	}
	finish := engine.FinishStop
	if strings.Contains(text, "CUTOFF") {
		finish = engine.FinishLength
	}
	return engine.Result{Text: string(r), PromptIDs: make([]int, len(r)+4), OutputIDs: make([]int, 1), FinishReason: finish}, nil
}
