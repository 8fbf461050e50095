package shard_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/batchtrans/batchtrans/runner/shard"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		arg  string
		env  map[string]string
		want shard.Spec
		err  string
	}{
		{"explicit", "3/7", nil, shard.Spec{Index: 3, Count: 7}, ""},
		{"first of one", "0/1", nil, shard.Spec{Index: 0, Count: 1}, ""},
		{"index out of range", "7/7", nil, shard.Spec{}, "from 0 to 6"},
		{"negative index", "-1/7", nil, shard.Spec{}, "from 0 to 6"},
		{"zero shards", "0/0", nil, shard.Spec{}, "from 1 to"},
		{"no count", "3", nil, shard.Spec{}, "want I/N"},
		{"kubernetes needs the count", "auto", map[string]string{"JOB_COMPLETION_INDEX": "4"}, shard.Spec{}, "use --shard auto/N"},
		{"kubernetes with the count", "auto/10", map[string]string{"JOB_COMPLETION_INDEX": "4"}, shard.Spec{Index: 4, Count: 10}, ""},
		{"kubernetes index past the count", "auto/4", map[string]string{"JOB_COMPLETION_INDEX": "4"}, shard.Spec{}, "outside 4 shards"},
		{"slurm from 0", "auto", map[string]string{"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_COUNT": "5", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_MAX": "4"}, shard.Spec{Index: 2, Count: 5}, ""},
		{"slurm from 1", "auto", map[string]string{"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "5", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_MAX": "5"}, shard.Spec{Index: 0, Count: 5}, ""},
		{"slurm with a step", "auto", map[string]string{"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_COUNT": "3", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_MAX": "4"}, shard.Spec{}, "plain range"},
		{"aws batch with size", "auto", map[string]string{"AWS_BATCH_JOB_ARRAY_INDEX": "9", "AWS_BATCH_JOB_ARRAY_SIZE": "10"}, shard.Spec{Index: 9, Count: 10}, ""},
		{"aws batch without size", "auto/10", map[string]string{"AWS_BATCH_JOB_ARRAY_INDEX": "9"}, shard.Spec{Index: 9, Count: 10}, ""},
		{"cloud run", "auto", map[string]string{"CLOUD_RUN_TASK_INDEX": "0", "CLOUD_RUN_TASK_COUNT": "3"}, shard.Spec{Index: 0, Count: 3}, ""},
		{"count disagrees with the scheduler", "auto/4", map[string]string{"CLOUD_RUN_TASK_INDEX": "0", "CLOUD_RUN_TASK_COUNT": "3"}, shard.Spec{}, "CLOUD_RUN_TASK_COUNT=3"},
		{"no scheduler", "auto", nil, shard.Spec{}, "none of JOB_COMPLETION_INDEX"},
		{"garbage index", "auto/3", map[string]string{"JOB_COMPLETION_INDEX": "x"}, shard.Spec{}, "not a shard index"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := shard.Parse(tt.arg, func(k string) string { return tt.env[k] })
			if tt.err != "" {
				require.Error(t, err)
				assert.ErrorIs(t, err, shard.ErrSpec)
				assert.Contains(t, err.Error(), tt.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

// TestRangesTileTheInput: for any row count and shard count, the shards'
// ranges are disjoint, in order, and cover every row exactly once.
func TestRangesTileTheInput(t *testing.T) {
	for _, total := range []int64{0, 1, 2, 7, 100, 1001, 3000, 1 << 40} {
		for _, n := range []int{1, 2, 3, 7, 1000, 2048} {
			next := int64(0)
			for i := range n {
				r := shard.Spec{Index: i, Count: n}.Range(total)
				require.Equal(t, next, r.First, "total %d, %d shards: shard %d starts where %d ended", total, n, i, i-1)
				require.GreaterOrEqual(t, r.Len(), total/int64(n))
				require.LessOrEqual(t, r.Len(), total/int64(n)+1, "shards differ by at most one row")
				next = r.End
			}
			require.Equal(t, total, next, "total %d, %d shards", total, n)
		}
	}
}

func TestNamesSortInShardOrder(t *testing.T) {
	assert.Equal(t, "00007-of-01000", shard.Spec{Index: 7, Count: 1000}.Name())
	assert.Equal(t, "000007-of-123456", shard.Spec{Index: 7, Count: 123456}.Name())
	assert.Less(t, shard.Spec{Index: 9, Count: 12}.Name(), shard.Spec{Index: 10, Count: 12}.Name())
}
