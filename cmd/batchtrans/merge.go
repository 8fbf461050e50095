package main

import (
	"context"
	"fmt"

	"github.com/batchtrans/batchtrans/runner"
	"github.com/batchtrans/batchtrans/runner/shard"
)

func init() {
	register(&command{name: "merge", summary: "join a sharded job's parts into its output", run: mergeCmd})
}

// mergeCmd writes a sharded job's output from its parts. Exit codes as
// run's: 0 every row good, 3 some rows failed, 1 a shard unfinished (each
// named) or anything else fatal.
func mergeCmd(ctx context.Context, env *cliEnv, args []string) error {
	j, path, err := jobFromArgs("merge", args)
	if err != nil {
		return err
	}
	dir, ok, err := openShardDir(ctx, j)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: no shard plan in %s; run the shards first (batchtrans run %s --shard I/N)", shard.ErrNoPlan, shard.DirOf(j.Checkpoint.Path), path)
	}
	defer dir.Close()
	in, fp, err := fingerprintInput(ctx, j)
	if err != nil {
		return err
	}
	env.log.Info("merging shards", "shards", dir.Path(), "output", j.Output.Path)
	sum, err := runner.MergeShards(ctx, runner.Config{
		Job:         j,
		Open:        in.Open,
		Create:      outputWriter(j),
		Fingerprint: fp,
		Log:         env.log,
	}, dir)
	if err != nil {
		return err
	}
	env.log.Info("summary", "complete", true, "rows", sum.Rows, "good", sum.Good, "failed", sum.Failed, "skipped", sum.Skipped,
		"wall_s", sum.Wall.Seconds(), "output", sum.Output)
	if n := sum.Failed + sum.Skipped; n > 0 {
		where := "their error field in " + sum.Output
		if sum.ErrorsFile != "" {
			where = sum.ErrorsFile
		}
		return withCode(exitRowsFailed, fmt.Errorf("%d of %d rows failed; see %s", n, sum.Rows, where))
	}
	return nil
}
