package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/batchtrans/batchtrans/internal/s3test"
	"github.com/batchtrans/batchtrans/io/blobstore"
	"github.com/batchtrans/batchtrans/runner/checkpoint"
	"github.com/batchtrans/batchtrans/runner/mirror"
)

// objectJob writes a job whose input, output and checkpoint are objects
// on srv: the Parquet input is uploaded from a local file first.
func objectJob(t *testing.T, srv *s3test.Server, dir, prefix string, rows []shardRow, extra string) (job, outURL, ckptURL string) {
	t.Helper()
	local := writeShardInput(t, dir, "parquet", rows, 1)
	data, err := os.ReadFile(filepath.Join(dir, local))
	require.NoError(t, err)
	inURL := srv.URL("in/data.parquet") // one input for every job, so row errors name it alike
	b, key, err := blobstore.Open(t.Context(), inURL)
	require.NoError(t, err)
	require.NoError(t, b.WriteAll(t.Context(), key, data, nil))
	outURL = srv.URL(prefix + "/out/result.parquet")
	job = writeShardJob(t, dir, strconv.Quote(inURL), "parquet", "record", extra)
	// The output path goes in quoted, as an URL with a query must.
	body, err := os.ReadFile(job)
	require.NoError(t, err)
	body = bytes.Replace(body, []byte("path: out/result.parquet"), []byte("path: "+strconv.Quote(outURL)), 1)
	require.NoError(t, os.WriteFile(job, body, 0o644))
	return job, outURL, blobstore.WithSuffix(outURL, ".ckpt")
}

func readObject(t *testing.T, url string) []byte {
	t.Helper()
	b, key, err := blobstore.Open(t.Context(), url)
	require.NoError(t, err)
	data, err := b.ReadAll(t.Context(), key)
	require.NoError(t, err)
	return data
}

func objectExists(t *testing.T, url string) bool {
	t.Helper()
	b, key, err := blobstore.Open(t.Context(), url)
	require.NoError(t, err)
	ok, err := b.Exists(t.Context(), key)
	require.NoError(t, err)
	return ok
}

// storedRows is how many rows the checkpoint's uploaded segments hold.
func storedRows(t *testing.T, ckptURL string) int64 {
	t.Helper()
	m, err := mirror.Open(t.Context(), ckptURL, filepath.Join(t.TempDir(), "copy"))
	require.NoError(t, err)
	n, err := m.Pull(t.Context())
	require.NoError(t, err)
	if n == 0 {
		return 0
	}
	_, st, err := checkpoint.Inspect(m.Local())
	require.NoError(t, err)
	return st.Done
}

var resumedRe = regexp.MustCompile(`resumed_rows=(\d+)`)

// TestObjectStorageKilledAndResumed runs a job with its Parquet input,
// output and checkpoint on an S3-compatible server, SIGKILLs it between
// checkpoint syncs, and resumes: the rerun starts from exactly the rows
// the uploaded segments hold (the kill lost at most the rows since the
// last sync and doubled none), no output object appears before the run
// completes, and the output is byte-identical to an uninterrupted run's.
func TestObjectStorageKilledAndResumed(t *testing.T) {
	srv := s3test.Start(t, "bucket")
	rows := shardRows(400)
	refJob, refOut, _ := objectJob(t, srv, t.TempDir(), "ref", rows, "")
	r := runChild(t, childEnv(), "run", refJob, "--no-progress")
	require.Equal(t, 3, r.code, r.stderr)
	want := readObject(t, refOut)

	dir := t.TempDir()
	job, outURL, ckptURL := objectJob(t, srv, dir, "job", rows, "checkpoint:\n  sync_every: 50ms\n")
	for kill := 0; kill < 3; kill++ {
		cmd := exec.Command(fakeBinary(t), "run", job, "--no-progress", "--workers", "2")
		cmd.Env = childEnv("BATCHTRANS_FAKE_DELAY=4ms")
		var se bytes.Buffer
		cmd.Stderr = &se
		require.NoError(t, cmd.Start())
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		// Kill once a few more segments are up than at the start.
		before := storedRows(t, ckptURL)
		deadline := time.Now().Add(30 * time.Second)
		for storedRows(t, ckptURL) < before+40 && time.Now().Before(deadline) {
			select {
			case <-exited:
				t.Fatalf("run ended before it was killed: %s", se.String())
			case <-time.After(20 * time.Millisecond):
			}
		}
		time.Sleep(25 * time.Millisecond) // mid-interval: rows since the last sync are lost
		require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
		<-exited
		assert.False(t, objectExists(t, outURL), "no output object before the run completes")
		stored := storedRows(t, ckptURL)
		require.Less(t, stored, int64(len(rows)))

		next := exec.Command(fakeBinary(t), "run", job, "--no-progress", "--workers", "2")
		next.Env = childEnv("BATCHTRANS_FAKE_DELAY=4ms", "BATCHTRANS_CRASH_AT=commit.after-sync:1")
		out, _ := next.CombinedOutput()
		m := resumedRe.FindSubmatch(out)
		require.NotNil(t, m, "%s", out)
		assert.Equal(t, strconv.FormatInt(stored, 10), string(m[1]), "the rerun resumes exactly the uploaded rows")
	}
	r = runChild(t, childEnv(), "run", job, "--no-progress")
	require.Equal(t, 3, r.code, r.stderr)
	assert.Equal(t, want, readObject(t, outURL), "output after kills differs from an uninterrupted run's")
	r = runChild(t, childEnv(), "status", job)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "400 done of 400 (100.0%), 2 failed, 0 left")
}

// TestObjectStorageGoesAway stops the server mid-run: the run fails with
// an error naming the store, and resumes to the right output once the
// server is back.
func TestObjectStorageGoesAway(t *testing.T) {
	srv := s3test.Start(t, "bucket")
	rows := shardRows(300)
	refJob, refOut, _ := objectJob(t, srv, t.TempDir(), "ref", rows, "")
	require.Equal(t, 3, runChild(t, childEnv(), "run", refJob, "--no-progress").code)
	want := readObject(t, refOut)

	job, outURL, ckptURL := objectJob(t, srv, t.TempDir(), "job", rows, "checkpoint:\n  sync_every: 50ms\n")
	cmd := exec.Command(fakeBinary(t), "run", job, "--no-progress", "--workers", "2")
	cmd.Env = childEnv("BATCHTRANS_FAKE_DELAY=4ms", "AWS_MAX_ATTEMPTS=2")
	var se bytes.Buffer
	cmd.Stderr = &se
	require.NoError(t, cmd.Start())
	deadline := time.Now().Add(30 * time.Second)
	for storedRows(t, ckptURL) < 40 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	srv.SetDown(true)
	err := cmd.Wait()
	srv.SetDown(false)
	require.Error(t, err)
	assert.Equal(t, 1, cmd.ProcessState.ExitCode(), se.String())
	t.Logf("with the store gone: %s", lastLine(se.String()))
	assert.Contains(t, se.String(), srv.Endpoint[len("http://"):], "the error names the store")
	assert.False(t, objectExists(t, outURL))

	r := runChild(t, childEnv(), "run", job, "--no-progress")
	require.Equal(t, 3, r.code, r.stderr)
	assert.NotContains(t, r.stderr, "resumed=0 ")
	assert.Equal(t, want, readObject(t, outURL))
}

// TestShardsOnObjectStorage runs three shards whose checkpoints and parts
// live on the server, and merges to an output object.
func TestShardsOnObjectStorage(t *testing.T) {
	srv := s3test.Start(t, "bucket")
	rows := shardRows(90)
	refJob, refOut, _ := objectJob(t, srv, t.TempDir(), "ref", rows, "")
	require.Equal(t, 3, runChild(t, childEnv(), "run", refJob, "--no-progress").code)
	want := readObject(t, refOut)

	job, outURL, ckptURL := objectJob(t, srv, t.TempDir(), "job", rows, "")
	for i := range 3 {
		r := runShard(t, job, i, i, 3)
		require.Equal(t, 0, r.code, r.stderr)
	}
	assert.True(t, objectExists(t, blobstore.WithSuffix(ckptURL, ".shards/00001-of-00003.part")))
	r := runChild(t, childEnv(), "status", job)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "3 done, 0 running")
	r = runChild(t, childEnv(), "merge", job)
	require.Equal(t, 3, r.code, r.stderr)
	assert.Equal(t, want, readObject(t, outURL))
}

// TestStorageRefusals: input that cannot be had is a clear error naming
// the cause, exit 1.
func TestStorageRefusals(t *testing.T) {
	srv := s3test.Start(t, "bucket")
	dir := t.TempDir()
	job, _, _ := objectJob(t, srv, dir, "job", shardRows(10), "")
	noCreds := []string{}
	for _, kv := range childEnv() {
		if !strings.HasPrefix(kv, "AWS_ACCESS_KEY_ID=") && !strings.HasPrefix(kv, "AWS_SECRET_ACCESS_KEY=") {
			noCreds = append(noCreds, kv)
		}
	}
	body, err := os.ReadFile(job)
	require.NoError(t, err)
	write := func(name string, from, to string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, bytes.Replace(body, []byte(from), []byte(to), 1), 0o644))
		return p
	}
	tests := []struct {
		name string
		job  string
		env  []string
		want string
	}{
		{"bucket that does not exist", write("nobucket.yaml", "s3://"+srv.Bucket+"/in/", "s3://nobucket/in/"), childEnv(), "the bucket does not exist"},
		{"object that does not exist", write("noobject.yaml", "in/data.parquet", "in/missing.parquet"), childEnv(), "no such object"},
		{"glob that matches nothing", write("noglob.yaml", "in/data.parquet", "in/part-*.parquet"), childEnv(), "no file matches"},
		{"missing credentials", job, noCreds, "no credentials found"},
		{"local glob that matches nothing", write("localglob.yaml", strconv.Quote(srv.URL("in/data.parquet")), "data/nothing-*.parquet"), childEnv(), "no file matches"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, fakeBinary(t), "run", tt.job, "--no-progress")
			cmd.Env = tt.env
			out, err := cmd.CombinedOutput()
			require.Error(t, err)
			t.Logf("%s", out)
			assert.Equal(t, 1, cmd.ProcessState.ExitCode(), "%s", out)
			assert.Contains(t, string(out), tt.want)
			assert.Contains(t, string(out), "input.path", "the error names the job key")
			assert.Less(t, strings.Count(string(out), "\n"), 5, "one clear error, not a flood: %s", out)
		})
	}
}
