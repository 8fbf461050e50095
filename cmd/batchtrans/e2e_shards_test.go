package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/batchtrans/batchtrans/io/dataset"
)

// shardRow is one input row of the sharding tests.
type shardRow struct {
	sku, text string
	price     float64
}

func shardRows(n int) []shardRow {
	rows := make([]shardRow, n)
	for i := range rows {
		rows[i] = shardRow{fmt.Sprintf("S%05d", i), fmt.Sprintf("product %d is a fine thing", i), float64(i) + 0.5}
	}
	// Failed rows must come through the shards as they do in one process.
	rows[n/3].text = "a TOOLONG text"
	rows[n-2].text = "another TOOLONG text"
	return rows
}

// writeShardInput writes rows into files input files of the format under
// dir/data and returns the job's input.path: the file, or a glob.
func writeShardInput(t *testing.T, dir, format string, rows []shardRow, files int) string {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "data"), 0o755))
	cols := []dataset.Column{{Name: "sku", Kind: dataset.String}, {Name: "text", Kind: dataset.String}, {Name: "price", Kind: dataset.Float}}
	per := (len(rows) + files - 1) / files
	for f := range files {
		name := filepath.Join(dir, "data", fmt.Sprintf("part-%d.%s", f, format))
		if files == 1 {
			name = filepath.Join(dir, "data", "in."+format)
		}
		fh, err := os.Create(name)
		require.NoError(t, err)
		w, err := dataset.NewWriter(fh, format, cols, dataset.Options{RowGroupRows: 16})
		require.NoError(t, err)
		for _, r := range rows[f*per : min(len(rows), (f+1)*per)] {
			require.NoError(t, w.Write([]dataset.Field{{Name: "sku", Value: r.sku}, {Name: "text", Value: r.text}, {Name: "price", Value: r.price}}))
		}
		require.NoError(t, w.Close())
		require.NoError(t, fh.Close())
	}
	if files == 1 {
		return "data/in." + format
	}
	return "data/part-*." + format
}

// writeShardJob writes dir/job.yaml for the fake engine over input, with
// the output in the given format and on_error policy.
func writeShardJob(t *testing.T, dir, input, outFormat, onError, extra string) string {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "model"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "model", "config.json"), []byte(`{}`), 0o644))
	job := fmt.Sprintf(`version: 1
input:
  path: %s
  id_field: sku
  text_field: text
output:
  path: out/result.%s
model:
  path: model
prompt:
  system: "Translate from {{.Source}} to {{.Target}}."
  source: English
  target: German
on_error: %s
%s`, input, outFormat, onError, extra)
	p := filepath.Join(dir, "job.yaml")
	require.NoError(t, os.WriteFile(p, []byte(job), 0o644))
	return p
}

// schedulerVars are every scheduler's shard variables: a child's
// environment is cleared of them before a test sets its own.
var schedulerVars = []string{"JOB_COMPLETION_INDEX", "SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN",
	"SLURM_ARRAY_TASK_MAX", "AWS_BATCH_JOB_ARRAY_INDEX", "AWS_BATCH_JOB_ARRAY_SIZE", "CLOUD_RUN_TASK_INDEX", "CLOUD_RUN_TASK_COUNT"}

// schedulerEnv is shard i of n as scheduler k%4 would start it: the
// variables it sets and the --shard value its job spec would carry.
func schedulerEnv(k, i, n int) ([]string, string) {
	switch k % 4 {
	case 0: // Kubernetes Indexed Job: the index only.
		return []string{"JOB_COMPLETION_INDEX=" + strconv.Itoa(i)}, "auto/" + strconv.Itoa(n)
	case 1: // Slurm array --array=1-N: ids from 1.
		return []string{"SLURM_ARRAY_TASK_ID=" + strconv.Itoa(i+1), "SLURM_ARRAY_TASK_MIN=1",
			"SLURM_ARRAY_TASK_MAX=" + strconv.Itoa(n), "SLURM_ARRAY_TASK_COUNT=" + strconv.Itoa(n)}, "auto"
	case 2: // AWS Batch array job: the index only.
		return []string{"AWS_BATCH_JOB_ARRAY_INDEX=" + strconv.Itoa(i)}, "auto/" + strconv.Itoa(n)
	default: // Cloud Run job: index and count.
		return []string{"CLOUD_RUN_TASK_INDEX=" + strconv.Itoa(i), "CLOUD_RUN_TASK_COUNT=" + strconv.Itoa(n)}, "auto"
	}
}

// childEnv is this process's environment without scheduler variables,
// plus extra.
func childEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(schedulerVars, k) {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// runShard runs shard i of n of job as scheduler k would; extra adds to
// its environment.
func runShard(t *testing.T, job string, k, i, n int, extra ...string) binResult {
	t.Helper()
	env, arg := schedulerEnv(k, i, n)
	return runChild(t, childEnv(append(env, extra...)...), "run", job, "--no-progress", "--shard", arg)
}

// runChild runs the fake-engine build with exactly env.
func runChild(t *testing.T, env []string, args ...string) binResult {
	t.Helper()
	cmd := exec.Command(fakeBinary(t), args...)
	cmd.Env = env
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	code := 0
	if err != nil {
		code = cmd.ProcessState.ExitCode()
		if code == 0 {
			require.NoError(t, err)
		}
	}
	return binResult{code, so.String(), se.String()}
}

// singleRun runs the whole job in one process and returns its output and
// errors file (nil if none), then clears them and the checkpoint away.
func singleRun(t *testing.T, dir, job, outFormat string) (out, errs []byte) {
	t.Helper()
	r := runChild(t, childEnv(), "run", job, "--no-progress")
	require.Equal(t, 3, r.code, r.stderr)
	outPath := filepath.Join(dir, "out", "result."+outFormat)
	out, err := os.ReadFile(outPath)
	require.NoError(t, err)
	errs, _ = os.ReadFile(outPath + ".errors.jsonl")
	require.NoError(t, os.RemoveAll(filepath.Join(dir, "out")))
	return out, errs
}

// TestShardsMergeByteIdentical splits jobs over 1, 3 and 7 shards run as
// separate processes started the way each scheduler starts them; merge
// refuses while the last shard is missing, naming it, and then writes the
// output and errors file byte-identical to a one-process run's, for each
// input and output format and for a glob of three files.
func TestShardsMergeByteIdentical(t *testing.T) {
	tests := []struct {
		name, format string
		files        int
		onError      string
	}{
		{"jsonl", "jsonl", 1, "record"},
		{"csv", "csv", 1, "skip"},
		{"parquet", "parquet", 1, "record"},
		{"glob of 3 jsonl files", "jsonl", 3, "skip"},
		{"glob of 3 parquet files", "parquet", 3, "skip"},
	}
	rows := shardRows(61)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			input := writeShardInput(t, dir, tt.format, rows, tt.files)
			job := writeShardJob(t, dir, input, tt.format, tt.onError, "")
			wantOut, wantErrs := singleRun(t, dir, job, tt.format)
			if tt.onError == "skip" {
				require.NotEmpty(t, wantErrs)
			}
			outPath := filepath.Join(dir, "out", "result."+tt.format)
			for k, n := range []int{1, 3, 7} {
				require.NoError(t, os.RemoveAll(filepath.Join(dir, "out")))
				for i := range n - 1 {
					r := runShard(t, job, k+i, i, n)
					require.Equal(t, 0, r.code, "shard %d/%d: %s", i, n, r.stderr)
				}
				r := runChild(t, childEnv(), "merge", job)
				require.Equal(t, 1, r.code, r.stderr)
				if n == 1 {
					assert.Contains(t, r.stderr, "no shard of this job has started")
				} else {
					assert.Contains(t, r.stderr, fmt.Sprintf("1 of %d have no part yet: %d (not started)", n, n-1))
				}
				assert.NoFileExists(t, outPath)

				r = runShard(t, job, k+n, n-1, n)
				require.Equal(t, 0, r.code, r.stderr)
				r = runChild(t, childEnv(), "merge", job)
				require.Equal(t, 3, r.code, r.stderr)
				assert.Contains(t, r.stderr, "2 of 61 rows failed")
				got, err := os.ReadFile(outPath)
				require.NoError(t, err)
				assert.True(t, bytes.Equal(wantOut, got), "%d shards: merged output differs from one process's", n)
				gotErrs, _ := os.ReadFile(outPath + ".errors.jsonl")
				assert.Equal(t, string(wantErrs), string(gotErrs), "%d shards: errors file", n)
			}
		})
	}
}

// TestShardsKilledAndRerun SIGKILLs shards at random points of their group
// commits and part writes, reruns each, and merges: still byte-identical.
func TestShardsKilledAndRerun(t *testing.T) {
	dir := t.TempDir()
	rows := shardRows(300)
	job := writeShardJob(t, dir, writeShardInput(t, dir, "jsonl", rows, 3), "jsonl", "record", "")
	want, _ := singleRun(t, dir, job, "jsonl")
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 14))
	const n = 5
	for i := range n {
		// Two rows in flight, 5 ms each: a shard's 60 rows take several
		// group commits, so a kill at the first three lands mid-shard.
		point := []string{"commit.before-sync", "commit.after-sync"}[rng.IntN(2)] + ":" + strconv.Itoa(1+rng.IntN(3))
		env, arg := schedulerEnv(i, i, n)
		r := runChild(t, childEnv(append(env, "BATCHTRANS_CRASH_AT="+point, "BATCHTRANS_FAKE_DELAY=5ms")...), "run", job, "--no-progress", "--workers", "2", "--shard", arg)
		require.Equal(t, -1, r.code, "shard %d killed at %s: %s", i, point, r.stderr)
		r = runShard(t, job, i+1, i, n)
		require.Equal(t, 0, r.code, "shard %d rerun after a kill at %s: %s", i, point, r.stderr)
		if strings.HasPrefix(point, "commit.after-sync") {
			assert.NotContains(t, r.stderr, "resumed=0 ", "the killed shard's finished rows were resumed")
		}
	}
	r := runChild(t, childEnv(), "merge", job)
	require.Equal(t, 3, r.code, r.stderr)
	got, err := os.ReadFile(filepath.Join(dir, "out", "result.jsonl"))
	require.NoError(t, err)
	assert.True(t, bytes.Equal(want, got), "output after killed shards differs")
}

// TestShardRerunWithOtherCountRefused: once a job is split N ways, a shard
// of another N is refused, saying so, and so is a shard out of range.
func TestShardRerunWithOtherCountRefused(t *testing.T) {
	dir := t.TempDir()
	job := writeShardJob(t, dir, writeShardInput(t, dir, "jsonl", shardRows(20), 1), "jsonl", "record", "")
	require.Equal(t, 0, runChild(t, childEnv(), "run", job, "--no-progress", "--shard", "0/3").code)
	tests := []struct {
		name  string
		shard string
		code  int
		want  string
	}{
		{"another count", "1/4", 1, "says 3 shards, this run is shard 1/4"},
		{"out of range", "3/3", 2, "from 0 to 2"},
		{"not a spec", "one/3", 2, "bad --shard"},
		{"auto without a scheduler", "auto", 2, "none of JOB_COMPLETION_INDEX"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runChild(t, childEnv(), "run", job, "--no-progress", "--shard", tt.shard)
			assert.Equal(t, tt.code, r.code, r.stderr)
			assert.Contains(t, r.stderr, tt.want)
		})
	}
	r := runChild(t, childEnv(), "run", job, "--no-progress", "--shard", "0/3")
	assert.Equal(t, 0, r.code, "the right count still runs: %s", r.stderr)
	assert.Contains(t, r.stderr, "shard already done", "a finished shard ends before loading the model")
	assert.NotContains(t, r.stderr, "model loaded")
}

// TestThousandShards runs 1,000 shards of a 3,000-row job as separate
// processes, then status and merge: the bookkeeping holds at that count.
func TestThousandShards(t *testing.T) {
	dir := t.TempDir()
	rows := shardRows(3000)
	job := writeShardJob(t, dir, writeShardInput(t, dir, "jsonl", rows, 1), "jsonl", "record", "")
	want, _ := singleRun(t, dir, job, "jsonl")
	const n = 1000
	var wg sync.WaitGroup
	idx := make(chan int)
	var mu sync.Mutex
	failed := map[int]string{}
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range idx {
				env, arg := schedulerEnv(i, i, n)
				cmd := exec.Command(fakeBinary(t), "run", job, "--no-progress", "--shard", arg)
				cmd.Env = childEnv(env...)
				if out, err := cmd.CombinedOutput(); err != nil {
					mu.Lock()
					failed[i] = string(out)
					mu.Unlock()
				}
			}
		}()
	}
	start := time.Now()
	for i := range n - 1 {
		idx <- i
	}
	close(idx)
	wg.Wait()
	require.Empty(t, failed)
	t.Logf("%d shards in %s", n-1, time.Since(start))

	start = time.Now()
	r := runChild(t, childEnv(), "status", job)
	t.Logf("status of %d shards: %s", n, time.Since(start))
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "999 done, 0 running, 0 stopped, 1 not started")
	assert.Contains(t, r.stdout, "2997 done of 3000")
	assert.Contains(t, r.stdout, "00999-of-01000  not started")
	r = runChild(t, childEnv(), "merge", job)
	require.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "999 (not started)")

	r = runShard(t, job, 0, n-1, n)
	require.Equal(t, 0, r.code, r.stderr)
	start = time.Now()
	r = runChild(t, childEnv(), "merge", job)
	t.Logf("merge of %d shards: %s", n, time.Since(start))
	require.Equal(t, 3, r.code, r.stderr)
	got, err := os.ReadFile(filepath.Join(dir, "out", "result.jsonl"))
	require.NoError(t, err)
	assert.True(t, bytes.Equal(want, got))
}

// TestChangedShardedJob: a job changed after its shards started is refused
// shard by shard; --restart writes a new plan, merge refuses parts made
// under the old one, and once every shard is rerun the output is right.
func TestChangedShardedJob(t *testing.T) {
	dir := t.TempDir()
	input := writeShardInput(t, dir, "jsonl", shardRows(30), 1)
	job := writeShardJob(t, dir, input, "jsonl", "record", "")
	for i := range 3 {
		require.Equal(t, 0, runChild(t, childEnv(), "run", job, "--no-progress", "--shard", fmt.Sprintf("%d/3", i)).code)
	}
	body, err := os.ReadFile(job)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(job, bytes.Replace(body, []byte("source: English"), []byte("source: British English"), 1), 0o644))
	want, _ := singleRun(t, dir, job, "jsonl")
	// singleRun removed out/, shards included: run them again under the
	// old job to have stale parts.
	require.NoError(t, os.WriteFile(job, body, 0o644))
	for i := range 3 {
		require.Equal(t, 0, runChild(t, childEnv(), "run", job, "--no-progress", "--shard", fmt.Sprintf("%d/3", i)).code)
	}
	require.NoError(t, os.WriteFile(job, bytes.Replace(body, []byte("source: English"), []byte("source: British English"), 1), 0o644))

	r := runChild(t, childEnv(), "run", job, "--no-progress", "--shard", "0/3")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "the job changed since its shards started (prompt.source differs")
	r = runChild(t, childEnv(), "run", job, "--no-progress", "--shard", "0/3", "--restart")
	require.Equal(t, 0, r.code, r.stderr)
	r = runChild(t, childEnv(), "merge", job)
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "shard 1/3: its part was made for another plan")
	for i := 1; i < 3; i++ {
		r = runChild(t, childEnv(), "run", job, "--no-progress", "--shard", fmt.Sprintf("%d/3", i))
		assert.Equal(t, 1, r.code, "the old checkpoint is refused")
		assert.Contains(t, r.stderr, "--restart")
		r = runChild(t, childEnv(), "run", job, "--no-progress", "--shard", fmt.Sprintf("%d/3", i), "--restart")
		require.Equal(t, 0, r.code, r.stderr)
	}
	r = runChild(t, childEnv(), "merge", job)
	require.Equal(t, 3, r.code, r.stderr)
	got, err := os.ReadFile(filepath.Join(dir, "out", "result.jsonl"))
	require.NoError(t, err)
	assert.Equal(t, string(want), string(got))
}

// TestDamagedPart: a part cut short (a node lost after writing it to a
// file system without the data reaching the disk) is refused by merge
// naming the shard, and rewritten by rerunning the shard; status, which
// reads only the parts' headers, shows a cut header.
func TestDamagedPart(t *testing.T) {
	tests := []struct {
		name       string
		shard      int
		cut        func(size int64) int64
		statusSees bool
	}{
		{"header cut", 1, func(int64) int64 { return 100 }, true},
		{"end record cut", 1, func(n int64) int64 { return n - 20 }, false},
		{"last part's end record cut", 2, func(n int64) int64 { return n - 20 }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			job := writeShardJob(t, dir, writeShardInput(t, dir, "jsonl", shardRows(30), 1), "jsonl", "record", "")
			for i := range 3 {
				require.Equal(t, 0, runChild(t, childEnv(), "run", job, "--no-progress", "--shard", fmt.Sprintf("%d/3", i)).code)
			}
			part := filepath.Join(dir, "out", "result.jsonl.ckpt.shards", fmt.Sprintf("%05d-of-00003.part", tt.shard))
			st, err := os.Stat(part)
			require.NoError(t, err)
			require.NoError(t, os.Truncate(part, tt.cut(st.Size())))
			if tt.statusSees {
				r := runChild(t, childEnv(), "status", job)
				require.Equal(t, 0, r.code, r.stderr)
				assert.Contains(t, r.stdout, "1 with a damaged part (rerun them)")
			}
			r := runChild(t, childEnv(), "merge", job)
			assert.Equal(t, 1, r.code)
			assert.Contains(t, r.stderr, fmt.Sprintf("rerun shard %d (batchtrans run JOB --shard %d/3)", tt.shard, tt.shard))
			assert.NoFileExists(t, filepath.Join(dir, "out", "result.jsonl"))
			r = runChild(t, childEnv(), "run", job, "--no-progress", "--shard", fmt.Sprintf("%d/3", tt.shard))
			require.Equal(t, 0, r.code, r.stderr)
			assert.NotContains(t, r.stderr, "shard already done", "a damaged part is written again")
			r = runChild(t, childEnv(), "merge", job)
			assert.Equal(t, 3, r.code, r.stderr)
		})
	}
}
