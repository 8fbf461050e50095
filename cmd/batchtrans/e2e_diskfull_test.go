package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// mountTmpfs mounts a tmpfs of size bytes on a new folder, unmounted when
// the test ends. It needs root (CI runs as root); without it the test
// fails rather than skip.
func mountTmpfs(t *testing.T, size int64) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "fs")
	require.NoError(t, os.Mkdir(dir, 0o755))
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+strconv.FormatInt(size, 10)); err != nil {
		if errors.Is(err, syscall.EPERM) {
			t.Fatalf("mount tmpfs on %s: %v: the disk-full test mounts a small tmpfs and must run as root (CI does)", dir, err)
		}
		t.Fatalf("mount tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

// fillTo writes a filler file on the file system of dir so that only free
// bytes stay available, and returns its path.
func fillTo(t *testing.T, dir string, free int64) string {
	t.Helper()
	var fs syscall.Statfs_t
	require.NoError(t, syscall.Statfs(dir, &fs))
	avail := int64(fs.Bavail) * fs.Bsize
	require.Greater(t, avail, free, "the tmpfs is too small for the test")
	path := filepath.Join(dir, "filler")
	require.NoError(t, os.WriteFile(path, make([]byte, avail-free), 0o644))
	require.NoError(t, syscall.Statfs(dir, &fs))
	require.Equal(t, free, int64(fs.Bavail)*fs.Bsize, "free space after the filler")
	return path
}

// TestE2EDiskFull runs the tiny translator with its output and checkpoint
// on a small tmpfs that fills up, once while rows are being checkpointed
// and once while the output is written: the run must stop with exit 1 and
// a message naming the file, leave a checkpoint that status reads and a
// resume takes up, and, once space is freed, finish with the output of an
// uninterrupted run.
func TestE2EDiskFull(t *testing.T) {
	const page = 4096
	rows := heldoutRows(t, 32)
	// A wide carried field makes the output far bigger than the checkpoint
	// (which holds only the translations).
	for i := range rows {
		rows[i].note = strings.Repeat(rows[i].id, 40)
	}
	in := filepath.Join(t.TempDir(), "in.jsonl")
	writeHeldRows(t, in, "jsonl", rows)

	refDir := t.TempDir()
	ref := realJob{input: in, output: "out/result.jsonl", maxNewTokens: 16}.write(t, refDir)
	r := runReal(t, nil, "run", ref, "--no-progress", "--workers", "4")
	require.Equal(t, 0, r.code, r.stderr)
	want, err := os.ReadFile(filepath.Join(refDir, "out/result.jsonl"))
	require.NoError(t, err)
	st, err := os.Stat(filepath.Join(refDir, "out/result.jsonl.ckpt"))
	require.NoError(t, err)
	ckptPages := (st.Size() + page - 1) / page
	require.Greater(t, int64(len(want)), (ckptPages+8)*page, "the output outgrows the checkpoint")

	tests := []struct {
		name       string
		free       int64  // bytes left free on the tmpfs
		says       string // the error names the file
		statusWant string
	}{
		// One page for the lock file, one for the checkpoint: it fills
		// after a few rows.
		{"while checkpointing rows", 2 * page, "write checkpoint %s.ckpt", "stopped (rerun to resume)"},
		// Room for the lock and the whole checkpoint, none for the
		// checkpoint's index, which the output's merge builds first.
		{"while indexing the checkpoint", (ckptPages + 1) * page, "write %s.ckpt.idx", "all rows done; output not written yet"},
		// Room for the lock, the whole checkpoint and its index, and a few
		// pages of output.
		{"while writing the output", (ckptPages + 5) * page, "write output %s", "all rows done; output not written yet"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := mountTmpfs(t, int64(len(want))+(ckptPages+16)*page)
			filler := fillTo(t, fs, tt.free)
			dir := t.TempDir()
			job := realJob{input: in, output: filepath.Join(fs, "out/result.jsonl"), maxNewTokens: 16}.write(t, dir)
			out := filepath.Join(fs, "out/result.jsonl")

			r := runReal(t, nil, "run", job, "--no-progress", "--workers", "4")
			require.Equal(t, 1, r.code, r.stderr)
			assert.Contains(t, r.stderr, "disk full; free some space and run again to resume")
			assert.Contains(t, r.stderr, "no space left on device")
			assert.Contains(t, r.stderr, fmt.Sprintf(tt.says, out))
			t.Logf("disk full: %s", lastLine(r.stderr))
			assert.NotContains(t, r.stderr, "panic")
			_, err := os.Stat(out)
			assert.True(t, os.IsNotExist(err), "no partial output in place")

			s := runReal(t, nil, "status", job)
			require.Equal(t, 0, s.code, s.stderr)
			assert.Contains(t, s.stdout, tt.statusWant)

			// Still full: the resume stops the same way, and harms nothing.
			r = runReal(t, nil, "run", job, "--no-progress", "--workers", "2")
			require.Equal(t, 1, r.code, r.stderr)
			assert.Contains(t, r.stderr, "disk full; free some space and run again to resume")
			assert.Contains(t, r.stderr, "no space left on device")

			require.NoError(t, os.Remove(filler))
			r = runReal(t, nil, "run", job, "--no-progress", "--workers", "3")
			require.Equal(t, 0, r.code, r.stderr)
			assert.NotContains(t, r.stderr, "resumed=0", "rows checkpointed before the disk filled are kept")
			got, err := os.ReadFile(out)
			require.NoError(t, err)
			assert.True(t, bytes.Equal(want, got), "output after the disk filled differs from an uninterrupted run's")
			entries, err := os.ReadDir(filepath.Join(fs, "out"))
			require.NoError(t, err)
			for _, e := range entries {
				assert.NotContains(t, e.Name(), ".tmp-", "temporary output left behind")
				assert.NotContains(t, e.Name(), ".idx", "checkpoint index left behind")
			}
		})
	}
}

// lastLine is the last line of s.
func lastLine(s string) string {
	s = strings.TrimRight(s, "\n")
	return s[strings.LastIndexByte(s, '\n')+1:]
}
