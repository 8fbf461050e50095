package runner_test

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/batchtrans/batchtrans/io/dataset"
	"github.com/batchtrans/batchtrans/io/source"
	"github.com/batchtrans/batchtrans/jobs"
	"github.com/batchtrans/batchtrans/runner"
	"github.com/batchtrans/batchtrans/runner/checkpoint"
	"github.com/batchtrans/batchtrans/runner/shard"
)

// shardSetup writes the shard plan for n shards of j and returns the
// shard folder.
func shardSetup(t testing.TB, j *jobs.Job, n int, rows int64) (*shard.Dir, jobs.Fingerprint) {
	t.Helper()
	fp, err := runner.Fingerprint(t.Context(), j, nil)
	require.NoError(t, err)
	dir, err := shard.OpenDir(t.Context(), shard.DirOf(j.Checkpoint.Path))
	require.NoError(t, err)
	t.Cleanup(func() { dir.Close() })
	_, err = dir.WritePlan(t.Context(), shard.Plan{Shards: n, Rows: rows, Fingerprint: fp, Date: "25 Nov 2026"}, true)
	require.NoError(t, err)
	return dir, fp
}

// runShardInProcess runs shard i of n of a copy of j.
func runShardInProcess(t *testing.T, j *jobs.Job, dir *shard.Dir, fp jobs.Fingerprint, i, n int, rows int64) runner.Summary {
	t.Helper()
	return runShardWith(t, j, dir, fp, i, n, rows, "")
}

// runShardWith runs shard i of n of a copy of j with the given numerics.
func runShardWith(t *testing.T, j *jobs.Job, dir *shard.Dir, fp jobs.Fingerprint, i, n int, rows int64, numerics string) runner.Summary {
	t.Helper()
	jc := *j
	s := shard.Spec{Index: i, Count: n}
	jc.Checkpoint.Path = dir.Join(shard.CheckpointName(s))
	cfg := config(&jc, &fakeTranslator{}, 4)
	cfg.Fingerprint = fp
	cfg.Numerics = numerics
	cfg.Shard = &runner.Shard{Spec: s, Range: s.Range(rows), Dir: dir, Date: "25 Nov 2026"}
	sum, err := runner.Run(t.Context(), cfg)
	require.NoError(t, err)
	return sum
}

// TestShardPartsTileTheInput: the shards' parts hold every input row
// exactly once, and the merge equals a one-process run's output.
func TestShardPartsTileTheInput(t *testing.T) {
	lines := rows(50)
	lines[7] = `{"id":"r0007","text":"TOOLONG"}`
	for _, n := range []int{1, 3, 7, 64} {
		t.Run(fmt.Sprintf("%d shards", n), func(t *testing.T) {
			j := setup(t, lines, "")
			_, err := runner.Run(t.Context(), config(j, &fakeTranslator{}, 4))
			require.NoError(t, err)
			want, err := os.ReadFile(j.Output.Path)
			require.NoError(t, err)
			require.NoError(t, os.Remove(j.Output.Path))

			dir, fp := shardSetup(t, j, n, int64(len(lines)))
			seen := make([]int, len(lines))
			for i := range n {
				sum := runShardInProcess(t, j, dir, fp, i, n, int64(len(lines)))
				assert.True(t, sum.Complete)
				p, err := dir.OpenPart(t.Context(), shard.Spec{Index: i, Count: n})
				require.NoError(t, err)
				for {
					row, err := p.Next()
					if err == io.EOF {
						break
					}
					require.NoError(t, err)
					seen[row.Index]++
				}
				p.Close()
			}
			for i, c := range seen {
				assert.Equal(t, 1, c, "row %d is in %d parts", i, c)
			}
			cfg := config(j, nil, 0)
			cfg.Fingerprint = fp
			sum, err := runner.MergeShards(t.Context(), cfg, dir)
			require.NoError(t, err)
			assert.Equal(t, int64(1), sum.Failed)
			got, err := os.ReadFile(j.Output.Path)
			require.NoError(t, err)
			assert.Equal(t, string(want), string(got))
		})
	}
}

func TestMergeRefusesAChangedJob(t *testing.T) {
	j := setup(t, rows(10), "")
	dir, fp := shardSetup(t, j, 2, 10)
	for i := range 2 {
		runShardInProcess(t, j, dir, fp, i, 2, 10)
	}
	require.NoError(t, os.WriteFile(j.Input.Path[0], []byte(`{"id":"x","text":"changed"}`+"\n"), 0o644))
	_, err := runner.MergeShards(t.Context(), config(j, nil, 0), dir)
	assert.ErrorIs(t, err, runner.ErrJobChanged)
	assert.Contains(t, err.Error(), "input file changed")
}

// TestMergeRefusesMixedNumerics: shards translated by different numerics
// (a CPU node and a GPU node) are not merged into one output.
func TestMergeRefusesMixedNumerics(t *testing.T) {
	j := setup(t, rows(10), "")
	dir, fp := shardSetup(t, j, 3, 10)
	runShardWith(t, j, dir, fp, 0, 3, 10, "cpu kernels v1, dtype bf16")
	runShardWith(t, j, dir, fp, 1, 3, 10, "cpu kernels v1, dtype bf16")
	runShardWith(t, j, dir, fp, 2, 3, 10, "cuda, dtype bf16")
	cfg := config(j, nil, 0)
	cfg.Fingerprint = fp
	_, err := runner.MergeShards(t.Context(), cfg, dir)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "shard 2 was translated with other numerics")
	assert.NoFileExists(t, j.Output.Path)
}

// BenchmarkShardBookkeeping measures what a sharded job costs beyond its
// rows at 2,000 shards of 6,000 rows: reading every part's header as
// status does, and the merge.
func BenchmarkShardBookkeeping(b *testing.B) {
	const n, total = 2000, 6000
	lines := make([]string, total)
	for i := range lines {
		lines[i] = fmt.Sprintf(`{"id":"S%07d","text":"product %d"}`, i, i)
	}
	j := setup(b, lines, "")
	dir, fp := shardSetup(b, j, n, total)
	for i := range n {
		s := shard.Spec{Index: i, Count: n}
		r := s.Range(total)
		k := r.First
		next := func() (checkpoint.Row, error) {
			if k >= r.End {
				return checkpoint.Row{}, io.EOF
			}
			text := fmt.Sprint("t", k)
			row := checkpoint.Row{Index: k, Line: k + 1, ID: fmt.Sprint(k), Text: &text}
			k++
			return row, nil
		}
		require.NoError(b, dir.WritePart(b.Context(), s, shard.PartHeader{Shard: i, Shards: n, First: r.First, End: r.End, Fingerprint: fp, Date: "25 Nov 2026"}, next))
	}
	b.Run("status", func(b *testing.B) {
		for b.Loop() {
			ls, err := dir.List(b.Context(), n)
			require.NoError(b, err)
			for i := range n {
				require.True(b, ls.Parts[i])
				p, err := dir.OpenPart(b.Context(), shard.Spec{Index: i, Count: n})
				require.NoError(b, err)
				p.Close()
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*n), "µs/shard")
	})
	b.Run("merge", func(b *testing.B) {
		cfg := config(j, nil, 0)
		cfg.Fingerprint = fp
		for b.Loop() {
			if _, err := runner.MergeShards(b.Context(), cfg, dir); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*n), "µs/shard")
	})
}

// TestManyFilesRowErrorsNameTheirFile: a glob of files is one input whose
// row errors name the file the row came from and its line there.
func TestManyFilesRowErrorsNameTheirFile(t *testing.T) {
	j := setup(t, rows(2), "")
	dir := filepath.Dir(j.File)
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "data"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "data", "a.jsonl"), []byte(`{"id":"a1","text":"one"}`+"\n"+`{"id":"a2","text":"two"}`+"\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "data", "b.jsonl"), []byte(`{"id":"b1","text":"three"}`+"\n"+`{"id":"b2","text":`+"\n"+`{"id":"b3"}`+"\n"), 0o644))
	j.Input.Path = jobs.Paths{filepath.Join(dir, "data", "*.jsonl")}
	j.Input.Written = jobs.Paths{"data/*.jsonl"}
	in, err := source.Resolve(t.Context(), j.Input.Path, "jsonl", dataset.Options{})
	require.NoError(t, err)
	cfg := config(j, &fakeTranslator{}, 2)
	cfg.Open = in.Open
	sum, err := runner.Run(t.Context(), cfg)
	require.NoError(t, err)
	assert.Equal(t, int64(5), sum.Rows)
	out := readLines(t, j.Output.Path)
	require.Len(t, out, 5)
	assert.Equal(t, "eno", out[0]["translation"])
	assert.Contains(t, out[3]["error"], "data/b.jsonl line 2 (row 3): ")
	assert.Contains(t, out[4]["error"], `data/b.jsonl line 3 (row 4): field "text"`)
}
