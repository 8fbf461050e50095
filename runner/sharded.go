package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/batchtrans/batchtrans/io/dataset"
	"github.com/batchtrans/batchtrans/jobs"
	"github.com/batchtrans/batchtrans/runner/checkpoint"
	"github.com/batchtrans/batchtrans/runner/shard"
)

// writePart writes a finished shard's part from its checkpoint, in row
// order.
func writePart(ctx context.Context, cfg Config, log *checkpoint.Log, date string) error {
	sh := cfg.Shard
	idx, err := log.Index()
	if err != nil {
		return err
	}
	defer idx.Close()
	st := log.Stats()
	hdr := shard.PartHeader{
		Shard: sh.Spec.Index, Shards: sh.Spec.Count, First: sh.Range.First, End: sh.Range.End,
		Fingerprint: cfg.Fingerprint, Date: date, Numerics: cfg.Numerics, Failed: st.Failed,
		Tokens: [2]int64{st.PromptTokens, st.CompletionTokens}, Finished: cfg.Now().UTC(),
	}
	if !st.LastRow.IsZero() {
		hdr.Finished = st.LastRow.UTC()
	}
	i := sh.Range.First
	next := func() (checkpoint.Row, error) {
		if i >= sh.Range.End {
			return checkpoint.Row{}, io.EOF
		}
		row, ok, err := idx.Get(i)
		if err != nil {
			return row, err
		}
		if !ok {
			return row, fmt.Errorf("checkpoint %s has no result for row %d; rerun the shard to finish it", log.Path(), i)
		}
		i++
		return row, nil
	}
	return sh.Dir.WritePart(ctx, sh.Spec, hdr, next)
}

// pushEvery uploads the checkpoint's new records every sync_every until
// the returned stop is called, which pushes once more and reports that
// last push's error. A failed periodic push is logged and retried at the
// next tick: the rows stay in the local copy meanwhile.
func pushEvery(ctx context.Context, cfg Config, log *checkpoint.Log) (stop func() error) {
	m := cfg.Mirror
	every := cfg.Job.Checkpoint.SyncEvery
	if every <= 0 {
		every = 30 * time.Second
	}
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				if err := m.Push(ctx, log.SyncedSize()); err != nil {
					cfg.Log.Warn("checkpoint upload failed; retrying at the next sync (the rows since the last upload are kept locally)", "err", err)
				}
			case <-done:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return func() error {
		close(done)
		<-exited
		// The final push runs even when ctx was cancelled (a second
		// signal): it is what makes the finished rows survive this machine.
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		if err := log.Sync(); err != nil {
			return err
		}
		if err := m.Push(pctx, log.SyncedSize()); err != nil {
			return fmt.Errorf("%w; the rows since the last upload are lost if this machine is (rerun to resume from %s)", err, m.URL())
		}
		return nil
	}
}

// ErrShardsUnfinished: merge was asked for while some shards have no part.
var ErrShardsUnfinished = errors.New("unfinished shards")

// MergeShards writes a sharded job's output from its shards' parts: the
// input read in order, each row joined with its result from the part of
// the shard that owns it, parts read one after another. The output is
// byte-identical to a one-process run's. It refuses, naming them, while
// any shard has no part, and when the job changed since the shards ran.
// An existing output is replaced (atomically) by the same bytes, so merge
// can be rerun; the parts are kept.
func MergeShards(ctx context.Context, cfg Config, dir *shard.Dir) (Summary, error) {
	j := cfg.Job
	start := time.Now()
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	sum := Summary{Output: j.Output.Path, Checkpoint: dir.Path()}
	plan, err := dir.ReadPlan(ctx)
	if err != nil {
		return sum, err
	}
	if cfg.Fingerprint == nil {
		if cfg.Fingerprint, err = Fingerprint(ctx, j, nil); err != nil {
			return sum, err
		}
	}
	if d := cfg.Fingerprint.Describe(plan.Fingerprint); d != "" {
		return sum, fmt.Errorf("%w: %s since the shards ran; rerun them with --restart (shards in %s)", ErrJobChanged, d, dir.Path())
	}
	ls, err := dir.List(ctx, plan.Shards)
	if err != nil {
		return sum, err
	}
	if missing := unfinished(ls); len(missing) > 0 {
		return sum, fmt.Errorf("%w: %d of %d have no part yet: %s; run them (batchtrans run JOB --shard I/%d), then merge again",
			ErrShardsUnfinished, len(missing), plan.Shards, describeShards(missing, ls), plan.Shards)
	}
	b, err := newBuilder(j, plan.Date)
	if err != nil {
		return sum, err
	}
	sum.Date = plan.Date
	parts := &partCursor{ctx: ctx, dir: dir, plan: plan}
	defer parts.close()
	err = writeOutput(ctx, cfg, b, &sum, parts.result, parts.finish)
	if err == nil && sum.Rows != plan.Rows {
		err = fmt.Errorf("the input has %d rows; the shard plan says %d (was it changed?)", sum.Rows, plan.Rows)
	}
	sum.Wall = time.Since(start)
	sum.Complete = err == nil
	return sum, err
}

// partCursor hands out results from the parts in row order, opening each
// part when the rows reach its range.
type partCursor struct {
	ctx  context.Context
	dir  *shard.Dir
	plan shard.Plan
	next int // the next shard to open
	cur  *shard.PartReader
	// numerics is shard 0's numerics: every part must share them, or the
	// output would mix two kinds of bits.
	numerics string
}

func (p *partCursor) result(rec dataset.Record) (checkpoint.Row, error) {
	for p.cur == nil || rec.Index >= p.cur.Header.End {
		if p.cur != nil {
			if err := p.end(); err != nil {
				return checkpoint.Row{}, err
			}
		}
		if p.next >= p.plan.Shards {
			return checkpoint.Row{}, fmt.Errorf("row %d is past every shard's range (the plan says %d rows)", rec.Index, p.plan.Rows)
		}
		s := shard.Spec{Index: p.next, Count: p.plan.Shards}
		p.next++
		pr, err := p.dir.OpenPart(p.ctx, s)
		if err != nil {
			return checkpoint.Row{}, p.rerun(s.Index, err)
		}
		want := s.Range(p.plan.Rows)
		if pr.Header.First != want.First || pr.Header.End != want.End || pr.Header.Date != p.plan.Date || len(jobs.Fingerprint(pr.Header.Fingerprint).Diff(p.plan.Fingerprint)) > 0 {
			pr.Close()
			return checkpoint.Row{}, fmt.Errorf("shard %s: its part was made for another plan; rerun the shard with --restart", s)
		}
		if s.Index == 0 {
			p.numerics = pr.Header.Numerics
		} else if pr.Header.Numerics != p.numerics {
			pr.Close()
			return checkpoint.Row{}, fmt.Errorf("shard %d was translated with other numerics (%q) than shard 0 (%q): merging them would mix their bits; rerun shard %d with --restart on the same kind of device and build as shard 0", s.Index, pr.Header.Numerics, p.numerics, s.Index)
		}
		p.cur = pr
	}
	row, err := p.cur.Next()
	if err != nil {
		return row, p.rerun(p.next-1, err)
	}
	if row.Index != rec.Index {
		err = fmt.Errorf("shard %d: part row %d where input row %d was expected", p.next-1, row.Index, rec.Index)
	}
	return row, err
}

// rerun says, for a damaged part, which shard to rerun.
func (p *partCursor) rerun(i int, err error) error {
	if errors.Is(err, shard.ErrPartIncomplete) {
		return fmt.Errorf("%w; rerun shard %d (batchtrans run JOB --shard %d/%d) to write it again", err, i, i, p.plan.Shards)
	}
	return err
}

// end checks that the open part ends where its range does, with its end
// record, and closes it.
func (p *partCursor) end() error {
	_, err := p.cur.Next()
	p.cur.Close()
	p.cur = nil
	switch {
	case errors.Is(err, io.EOF):
		return nil
	case err == nil:
		err = fmt.Errorf("its part has rows past its range: %w", shard.ErrPartIncomplete)
	}
	return p.rerun(p.next-1, fmt.Errorf("shard %d: %w", p.next-1, err))
}

// finish checks, once the input is done, the last part's end and that
// every shard after it (each with no rows) has its part.
func (p *partCursor) finish() error {
	if p.cur != nil {
		if err := p.end(); err != nil {
			return err
		}
	}
	for ; p.next < p.plan.Shards; p.next++ {
		s := shard.Spec{Index: p.next, Count: p.plan.Shards}
		if s.Range(p.plan.Rows).Len() > 0 {
			return fmt.Errorf("the input ended before shard %d's rows (was it changed?)", p.next)
		}
	}
	return nil
}

func (p *partCursor) close() {
	if p.cur != nil {
		p.cur.Close()
	}
}

// unfinished lists the shards without a part.
func unfinished(ls shard.Listing) []int {
	var out []int
	for i, ok := range ls.Parts {
		if !ok {
			out = append(out, i)
		}
	}
	return out
}

// describeShards names shards compactly, as runs ("3, 17-20 (stopped),
// 40-999 (not started)"), at most 20 runs.
func describeShards(ids []int, ls shard.Listing) string {
	state := func(i int) string {
		if ls.Checkpoints[i] {
			return "started"
		}
		return "not started"
	}
	var parts []string
	for k := 0; k < len(ids); {
		e := k
		for e+1 < len(ids) && ids[e+1] == ids[e]+1 && state(ids[e+1]) == state(ids[k]) {
			e++
		}
		r := strconv.Itoa(ids[k])
		if e > k {
			r += "-" + strconv.Itoa(ids[e])
		}
		parts = append(parts, r+" ("+state(ids[k])+")")
		k = e + 1
	}
	if len(parts) > 20 {
		parts = append(parts[:20], fmt.Sprintf("and %d more runs", len(parts)-20))
	}
	return strings.Join(parts, ", ")
}
