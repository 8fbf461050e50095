package main

import (
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestStatus(t *testing.T) {
	lines := sampleRows(120)
	lines[10] = `{"sku":"S00010"}`
	dir := textJob(t, "in.jsonl", lines, "")
	job := filepath.Join(dir, "job.yaml")

	r := runReal(t, nil, "status", job)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "not started")

	// Interrupted part way: counts come from the checkpoint.
	cmd := exec.Command(realBinary(t), "run", job, "--no-progress", "--workers", "2")
	require.NoError(t, cmd.Start())
	waitForRows(t, filepath.Join(dir, "out/result.jsonl.ckpt"))
	r = runReal(t, nil, "status", job)
	assert.Contains(t, r.stdout, "running")
	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	cmd.Wait()
	r = runReal(t, nil, "status", job)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "stopped (rerun to resume)")
	assert.NotContains(t, r.stdout, "changed", "the same job, resumable as it is")
	assert.Contains(t, r.stdout, "done of 120")
	assert.Contains(t, r.stdout, "rows/s")

	require.Equal(t, 3, runReal(t, nil, "run", job, "--no-progress").code)
	r = runReal(t, nil, "status", job)
	assert.Contains(t, r.stdout, "state:      complete")
	assert.Contains(t, r.stdout, "120 done of 120 (100.0%), 1 failed, 0 left")

	writeTextJob(t, dir, "in.jsonl", "prompt:\n  user: \"Say: {{.Text}}\"\n")
	r = runReal(t, nil, "status", job)
	assert.Equal(t, 2, r.code, "prompt is repeated: a job-file error")
	writeTextJob(t, dir, "in.jsonl", "generation:\n  seed: 9\n")
	r = runReal(t, nil, "status", job)
	assert.Contains(t, r.stdout, "generation.seed changed")
}
