package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/batchtrans/batchtrans/io/blobstore"
	"github.com/batchtrans/batchtrans/io/source"
	"github.com/batchtrans/batchtrans/jobs"
	"github.com/batchtrans/batchtrans/runner"
	"github.com/batchtrans/batchtrans/runner/mirror"
	"github.com/batchtrans/batchtrans/runner/shard"
)

// checkpointPlace is where a run keeps its checkpoint: a shard's share of
// the job, and the object-storage mirror when the checkpoint lives in a
// bucket. placeCheckpoint points j.Checkpoint.Path at the local file the
// run appends to.
type checkpointPlace struct {
	shard  *runner.Shard
	mirror *mirror.Mirror
	dir    *shard.Dir
	fp     jobs.Fingerprint
}

// finishedPart reports whether this run's shard has already written its
// part for the plan in force (and the part's path): then there is nothing
// to do. Never under --restart.
func (p *checkpointPlace) finishedPart(ctx context.Context, restart bool) (string, bool) {
	if p.shard == nil || restart {
		return "", false
	}
	s := p.shard
	pr, err := s.Dir.OpenPart(ctx, s.Spec)
	if err != nil {
		return "", false
	}
	defer pr.Close()
	h := pr.Header
	if h.First != s.Range.First || h.End != s.Range.End || h.Date != s.Date || len(p.fp.Diff(h.Fingerprint)) > 0 {
		return "", false
	}
	for { // only a whole part counts: read it to its end record
		if _, err := pr.Next(); errors.Is(err, io.EOF) {
			return s.Dir.Join(shard.PartName(s.Spec)), true
		} else if err != nil {
			return "", false
		}
	}
}

func (p *checkpointPlace) close() {
	if p.dir != nil {
		p.dir.Close()
	}
}

// placeCheckpoint settles a run's checkpoint: for a shard, the shard
// folder's plan (written by the first shard, agreed to by the others) and
// the shard's own checkpoint in that folder; for a checkpoint URL, its
// local copy.
func placeCheckpoint(ctx context.Context, log *slog.Logger, j *jobs.Job, in *source.Input, fp jobs.Fingerprint, spec *shard.Spec, restart bool) (*checkpointPlace, error) {
	p := &checkpointPlace{fp: fp}
	ckpt := j.Checkpoint.Path
	if spec != nil {
		dir, err := shard.OpenDir(ctx, shard.DirOf(j.Checkpoint.Path))
		if err != nil {
			return nil, err
		}
		p.dir = dir
		plan, err := shardPlan(ctx, log, dir, in, fp, *spec, j.Prompt.Date, restart)
		if err != nil {
			p.close()
			return nil, err
		}
		p.shard = &runner.Shard{Spec: *spec, Range: spec.Range(plan.Rows), Dir: dir, Date: plan.Date}
		ckpt = dir.Join(shard.CheckpointName(*spec))
		log.Info("shard", "shard", spec.String(), "rows", fmt.Sprintf("%d-%d", p.shard.Range.First, p.shard.Range.End-1), "of", plan.Rows, "folder", dir.Path())
	}
	if blobstore.IsURL(ckpt) {
		m, err := mirror.Open(ctx, ckpt, mirror.LocalPath(ckpt))
		if err != nil {
			p.close()
			return nil, err
		}
		p.mirror = m
		ckpt = m.Local()
	}
	j.Checkpoint.Path = ckpt
	return p, nil
}

// shardPlan returns the plan in force, writing it if this is the first
// shard to start (after counting the input's rows). A plan for another
// shard count is refused; one for another job is replaced under
// --restart.
func shardPlan(ctx context.Context, log *slog.Logger, dir *shard.Dir, in *source.Input, fp jobs.Fingerprint, spec shard.Spec, date string, restart bool) (shard.Plan, error) {
	plan, err := dir.ReadPlan(ctx)
	switch {
	case err == nil:
		err = plan.Agree(spec, fp, dir.Path())
		if err == nil || errors.Is(err, shard.ErrCountChanged) || !restart {
			return plan, err
		}
		log.Warn("the job changed since its shards started; --restart writes a new shard plan", "folder", dir.Path())
	case !errors.Is(err, shard.ErrNoPlan):
		return plan, err
	}
	rows, err := in.Count(ctx)
	if err != nil {
		return plan, fmt.Errorf("count input rows: %w", err)
	}
	if date == "" {
		date = time.Now().Format("02 Jan 2006")
	}
	plan, err = dir.WritePlan(ctx, shard.Plan{Shards: spec.Count, Rows: rows, Fingerprint: fp, Date: date, Created: time.Now().UTC()}, restart)
	if err != nil {
		return plan, err
	}
	return plan, plan.Agree(spec, fp, dir.Path()) // another shard may have been first
}
