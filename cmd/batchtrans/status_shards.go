package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/batchtrans/batchtrans/io/blobstore"
	"github.com/batchtrans/batchtrans/jobs"
	"github.com/batchtrans/batchtrans/runner/checkpoint"
	"github.com/batchtrans/batchtrans/runner/mirror"
	"github.com/batchtrans/batchtrans/runner/shard"
)

// openShardDir opens the job's shard folder if a sharded run has made
// one (a local folder is never created here).
func openShardDir(ctx context.Context, j *jobs.Job) (*shard.Dir, bool, error) {
	path := shard.DirOf(j.Checkpoint.Path)
	if !blobstore.IsURL(path) {
		if _, err := os.Stat(path); err != nil {
			return nil, false, nil
		}
	}
	dir, err := shard.OpenDir(ctx, path)
	if err != nil {
		return nil, false, err
	}
	if _, err := dir.ReadPlan(ctx); errors.Is(err, shard.ErrNoPlan) {
		dir.Close()
		return nil, false, nil
	} else if err != nil {
		dir.Close()
		return nil, false, err
	}
	return dir, true, nil
}

// inspectCheckpoint reads a checkpoint's header and counts, from a file
// or from an object-storage checkpoint's segments.
func inspectCheckpoint(ctx context.Context, path string) (checkpoint.Header, checkpoint.Stats, error) {
	if !blobstore.IsURL(path) {
		return checkpoint.Inspect(path)
	}
	m, err := mirror.Open(ctx, path, mirror.LocalPath(path))
	if err != nil {
		return checkpoint.Header{}, checkpoint.Stats{}, err
	}
	tmp, err := os.CreateTemp("", "batchtrans-status-*")
	if err != nil {
		return checkpoint.Header{}, checkpoint.Stats{}, fmt.Errorf("status: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	if err := m.Stream(ctx, tmp); err != nil {
		return checkpoint.Header{}, checkpoint.Stats{}, err
	}
	return checkpoint.Inspect(tmp.Name())
}

// outputExists reports whether the output file or object is there.
func outputExists(ctx context.Context, path string) (bool, error) {
	if !blobstore.IsURL(path) {
		_, err := os.Stat(path)
		return err == nil, nil
	}
	b, key, err := blobstore.Open(ctx, path)
	if err != nil {
		return false, err
	}
	return b.Exists(ctx, key)
}

// shardLine is one shard's state for status.
type shardLine struct {
	state        string
	done, failed int64
	last         time.Time
}

// shardStatus reports a sharded job: the plan, the totals and one line a
// shard. A finished shard costs one read of its part's header; an
// unfinished one a read of its checkpoint.
func shardStatus(ctx context.Context, w io.Writer, j *jobs.Job, dir *shard.Dir) error {
	plan, err := dir.ReadPlan(ctx)
	if err != nil {
		return err
	}
	ls, err := dir.List(ctx, plan.Shards)
	if err != nil {
		return err
	}
	lines := make([]shardLine, plan.Shards)
	count := map[string]int{}
	var done, failed int64
	for i := range lines {
		s := shard.Spec{Index: i, Count: plan.Shards}
		l, err := shardState(ctx, dir, s, ls)
		if err != nil {
			return err
		}
		lines[i] = l
		count[l.state]++
		done += l.done
		failed += l.failed
	}
	left := plan.Rows - done
	pct := 100.0
	if plan.Rows > 0 {
		pct = 100 * float64(done) / float64(plan.Rows)
	}
	fmt.Fprintf(w, "shards:     %d in %s: %d done, %d running, %d stopped, %d not started",
		plan.Shards, dir.Path(), count["done"], count["running"], count["stopped"], count["not started"])
	if n := count["started"]; n > 0 {
		fmt.Fprintf(w, ", %d started (running or stopped)", n)
	}
	if n := count["bad part"]; n > 0 {
		fmt.Fprintf(w, ", %d with a damaged part (rerun them)", n)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "rows:       %d done of %d (%.1f%%), %d failed, %d left\n", done, plan.Rows, pct, failed, left)
	fmt.Fprintf(w, "date:       %s (template date, frozen in the shard plan)\n", plan.Date)
	if count["done"] == plan.Shards {
		state := "every shard done; run `batchtrans merge` to write the output"
		if ok, _ := outputExists(ctx, j.Output.Path); ok {
			state = "every shard done; output " + j.Output.Path + " exists (merge again to rewrite it)"
		}
		fmt.Fprintf(w, "state:      %s\n", state)
	}
	fmt.Fprintf(w, "%-*s  %-11s  %21s  %8s  %s\n", len(shard.Spec{Count: plan.Shards}.Name()), "shard", "state", "rows done", "failed", "last progress")
	for i, l := range lines {
		s := shard.Spec{Index: i, Count: plan.Shards}
		last := "-"
		if !l.last.IsZero() {
			last = l.last.Local().Format(time.DateTime)
		}
		fmt.Fprintf(w, "%s  %-11s  %21s  %8d  %s\n", s.Name(), l.state, fmt.Sprintf("%d/%d", l.done, s.Range(plan.Rows).Len()), l.failed, last)
	}
	return nil
}

func shardState(ctx context.Context, dir *shard.Dir, s shard.Spec, ls shard.Listing) (shardLine, error) {
	switch {
	case ls.Parts[s.Index]:
		p, err := dir.OpenPart(ctx, s)
		if errors.Is(err, shard.ErrPartIncomplete) {
			return shardLine{state: "bad part"}, nil // merge names it; rerunning the shard rewrites it
		}
		if err != nil {
			return shardLine{}, err
		}
		defer p.Close()
		h := p.Header
		return shardLine{state: "done", done: h.End - h.First, failed: h.Failed, last: h.Finished}, nil
	case ls.Checkpoints[s.Index]:
		path := dir.Join(shard.CheckpointName(s))
		_, st, err := inspectCheckpoint(ctx, path)
		if errors.Is(err, checkpoint.ErrNoCheckpoint) {
			return shardLine{state: "not started"}, nil
		}
		if err != nil {
			return shardLine{}, err
		}
		// An object-storage checkpoint has no lock to ask whether a run
		// holds it: it is "started".
		l := shardLine{state: "started", done: st.Done, failed: st.Failed, last: st.LastRow}
		if !blobstore.IsURL(path) {
			l.state = "stopped"
			if lk, err := checkpoint.Acquire(filepath.Clean(path) + ".lock"); errors.Is(err, checkpoint.ErrLocked) {
				l.state = "running"
			} else if err == nil {
				lk.Release()
			}
		}
		return l, nil
	}
	return shardLine{state: "not started"}, nil
}
