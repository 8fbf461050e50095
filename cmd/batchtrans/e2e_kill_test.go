package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/batchtrans/batchtrans/engine/kernels"
)

// TestE2EKillAnywhereResumesByteIdentical SIGKILLs real runs of the tiny
// translator at random moments spread over the job (during model load,
// translation, group commits and the final merge) and resumes each time
// with another worker count and kernel set; the finished output must be
// byte-identical to an uninterrupted run's, with no row lost or doubled.
func TestE2EKillAnywhereResumesByteIdentical(t *testing.T) {
	const nRows = 96
	rows := heldoutRows(t, nRows)
	dir := t.TempDir()
	writeHeldRows(t, filepath.Join(dir, "in.jsonl"), "jsonl", rows)
	// Two bad rows must survive the kills too: a line that is not JSON and
	// a text longer than the model's context.
	data, err := os.ReadFile(filepath.Join(dir, "in.jsonl"))
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	lines[17] = `{"id":"broken","en":`
	lines[60] = fmt.Sprintf(`{"id":"long","en":%q}`, strings.Repeat("very long text ", 300))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "in.jsonl"), []byte(strings.Join(lines, "\n")+"\n"), 0o644))
	job := realJob{input: "in.jsonl", output: "out/result.jsonl", maxNewTokens: 16}.write(t, dir)
	out := filepath.Join(dir, "out/result.jsonl")
	ckpt := out + ".ckpt"

	r := runReal(t, nil, "run", job, "--no-progress", "--workers", "4")
	require.Equal(t, 3, r.code, r.stderr)
	assert.Contains(t, r.stderr, "2 of 96 rows failed")
	want, err := os.ReadFile(out)
	require.NoError(t, err)
	st, err := os.Stat(ckpt)
	require.NoError(t, err)
	fullCkpt := st.Size()
	require.NoError(t, os.Remove(out))
	require.NoError(t, os.Remove(ckpt))

	// Kill points: the i-th run is killed once the checkpoint has grown
	// past a random size in the i-th of 12 slices of its final size, plus
	// up to 40 ms, so the kills spread over the whole job and land at any
	// moment of a row's life; the first run is killed at a random moment
	// of its start-up instead.
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 7))
	const slices12 = 12
	workers := []string{"1", "2", "3", "5", "8", "16"}
	// Each resume also takes the next of this CPU's kernel sets, as a job
	// moved to another machine would: every set gives the same bits.
	impls := kernels.Impls()
	t.Logf("kernel sets: %v", impls)
	var kills, finished int
	var killedAt []int64
	for i := 0; i < slices12 && finished == 0; i++ {
		target := int64((float64(i) + rng.Float64()) / slices12 * float64(fullCkpt))
		cmd := exec.Command(realBinary(t), "run", job, "--no-progress", "--workers", workers[i%len(workers)])
		cmd.Env = append(os.Environ(), "BATCHTRANS_KERNELS="+impls[i%len(impls)])
		var se bytes.Buffer
		cmd.Stderr = &se
		exited := make(chan struct{})
		require.NoError(t, cmd.Start())
		go func() { cmd.Wait(); close(exited) }()
		if i == 0 {
			time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
		} else {
		wait:
			for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); {
				if st, err := os.Stat(ckpt); err == nil && st.Size() >= target {
					break
				}
				select {
				case <-exited:
					break wait
				case <-time.After(3 * time.Millisecond):
				}
			}
			time.Sleep(time.Duration(rng.IntN(40)) * time.Millisecond)
		}
		cmd.Process.Signal(syscall.SIGKILL)
		<-exited
		ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
		switch {
		case ws.Signaled() && ws.Signal() == syscall.SIGKILL:
			kills++
			size := int64(0)
			if st, err := os.Stat(ckpt); err == nil {
				size = st.Size()
			}
			killedAt = append(killedAt, size)
		case ws.Exited():
			require.Equal(t, 3, ws.ExitStatus(), "a run that was not killed finished: %s", se.String())
			finished++
		}
	}
	t.Logf("killed %d runs; checkpoint bytes at each kill: %v of %d", kills, killedAt, fullCkpt)
	assert.GreaterOrEqual(t, kills, 10)
	if len(killedAt) >= 10 {
		assert.Greater(t, killedAt[len(killedAt)-1], fullCkpt/2, "kills reached the second half of the job")
	}

	r = runReal(t, nil, "run", job, "--no-progress", "--workers", "6")
	require.Equal(t, 3, r.code, r.stderr)
	if finished == 0 {
		assert.NotContains(t, r.stderr, "resumed=0", "the kills left finished rows to resume")
	}
	got, err := os.ReadFile(out)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(want, got), "output after %d kills differs from an uninterrupted run's:\n%s\n---\n%s", kills, want, got)
	status := runReal(t, nil, "status", job)
	assert.Contains(t, status.stdout, "96 done of 96 (100.0%), 2 failed, 0 left")
	entries, err := os.ReadDir(filepath.Dir(out))
	require.NoError(t, err)
	for _, e := range entries {
		assert.NotContains(t, e.Name(), ".tmp-", "temporary output left behind")
	}
}
