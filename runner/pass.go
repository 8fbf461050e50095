package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/batchtrans/batchtrans/runner/checkpoint"
)

// pass is one run's translating stage: a reader feeding tasks, workers
// translating them, and a writer that owns the checkpoint, in one errgroup;
// beside them a grace timer for drains and a row counter for progress.
type pass struct {
	cfg      Config
	log      *checkpoint.Log
	b        *builder
	failures *failureLog

	gctx       context.Context // the errgroup's: ends on the first error
	workCtx    context.Context // the rows in flight: also ends when the grace runs out
	cancelWork context.CancelFunc
	drain      <-chan struct{}
	stopped    atomic.Bool // a drain or cancel stopped the pass

	done    func(i int64) bool // rows finished before this pass
	tasks   chan task
	results chan finished
	rows    []checkpoint.Row // the writer's buffer
	// total is the input's row count, -1 until the reader reaches the end.
	// The reader writes it before closing tasks; the writer reads it after
	// results close, which follows.
	total int64
}

// translate runs the reader, workers and writer until the input is done,
// a drain or cancel stops it, or an error. It returns the input's row count
// (-1 if the reader did not reach the end) and whether it was stopped.
func translate(ctx context.Context, cfg Config, log *checkpoint.Log, b *builder, workers int) (int64, bool, error) {
	g, gctx := errgroup.WithContext(ctx)
	workCtx, cancelWork := context.WithCancel(gctx)
	defer cancelWork()
	p := &pass{
		cfg: cfg, log: log, b: b, done: log.DoneSet(),
		failures: &failureLog{log: cfg.Log, record: FailuresRecordedIn(cfg.Job)},
		gctx:     gctx, workCtx: workCtx, cancelWork: cancelWork, drain: cfg.Drain,
		tasks: make(chan task, workers),
		// Room for a full commit batch, so workers keep going during an fsync.
		results: make(chan finished, commitRows),
		total:   -1,
	}
	if p.drain != nil {
		go p.grace()
	}
	stopCount := p.countTotal()
	defer stopCount()

	g.Go(p.read)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		g.Go(func() error {
			defer wg.Done()
			return p.work()
		})
	}
	go func() { wg.Wait(); close(p.results) }()
	g.Go(p.write)

	err := g.Wait()
	if err == nil && ctx.Err() != nil {
		p.stopped.Store(true)
	}
	if err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		err = nil
		p.stopped.Store(true)
	}
	return p.total, p.stopped.Load(), err
}

// grace: after a drain, rows in flight get cfg.Grace, then are cancelled.
func (p *pass) grace() {
	select {
	case <-p.drain:
		p.stopped.Store(true)
		t := time.NewTimer(p.cfg.Grace)
		defer t.Stop()
		select {
		case <-t.C:
			p.cancelWork()
		case <-p.gctx.Done():
		}
	case <-p.gctx.Done():
	}
}

// countTotal: when the checkpoint does not know the input's size yet, a
// second reader counts rows so progress can show a total and an ETA. The
// returned func stops it and waits for it.
func (p *pass) countTotal() func() {
	ctx, stop := context.WithCancel(p.gctx)
	var wg sync.WaitGroup
	if sh := p.cfg.Shard; sh != nil {
		p.cfg.Counters.Total.Store(sh.Range.Len()) // a shard knows its rows
	}
	if c := p.cfg.Counters; c.Total.Load() < 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if n, err := countRows(ctx, p.cfg.Open); err == nil {
				c.Total.CompareAndSwap(-1, n)
			}
		}()
	}
	return func() { stop(); wg.Wait() }
}

// read feeds the rows not yet in the checkpoint to the workers; a shard's
// reader feeds its range's rows only, and stops reading at its end.
func (p *pass) read() error {
	defer close(p.tasks)
	rd, err := p.cfg.Open()
	if err != nil {
		return fmt.Errorf("open input: %w", err)
	}
	defer rd.Close()
	sh := p.cfg.Shard
	var n int64
	for {
		rec, err := rd.Read()
		if errors.Is(err, io.EOF) {
			if sh != nil {
				if n < sh.Range.End {
					return fmt.Errorf("the input has %d rows; the shard plan says %d or more (was it changed?)", n, sh.Range.End)
				}
				n = sh.Range.Len()
			}
			p.total = n
			p.cfg.Counters.Total.Store(n)
			return nil
		}
		if err != nil {
			return fmt.Errorf("read input: %w", err)
		}
		n++
		if sh != nil && rec.Index < sh.Range.First {
			continue
		}
		if sh != nil && rec.Index >= sh.Range.End {
			p.total = sh.Range.Len()
			return nil
		}
		if p.done(rec.Index) {
			continue
		}
		select {
		case p.tasks <- task{rec: rec}:
		case <-p.drain:
			return nil
		case <-p.gctx.Done():
			return nil
		}
	}
}

// work translates tasks until they run out.
func (p *pass) work() error {
	for t := range p.tasks {
		if p.workCtx.Err() != nil || p.stopped.Load() {
			continue // drain the channel so the reader can stop
		}
		row, err := translateRow(p.workCtx, p.cfg, p.b, t.rec)
		if err != nil {
			return err
		}
		if row == nil {
			continue // cancelled in flight: not finished
		}
		select {
		case p.results <- *row:
		case <-p.gctx.Done():
		}
	}
	return nil
}

// write owns the checkpoint. Group commit: rows finished within
// commitWindow of the first unsynced one (up to commitRows) share one
// fsync; a row counts only once that fsync returns.
func (p *pass) write() error {
	var werr error
	batch := make([]finished, 0, commitRows)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for r := range p.results {
		batch = append(batch[:0], r)
		timer.Reset(commitWindow)
	more:
		for len(batch) < cap(batch) {
			select {
			case r, ok := <-p.results:
				if !ok {
					break more
				}
				batch = append(batch, r)
			case <-timer.C:
				break more
			}
		}
		timer.Stop()
		if werr != nil {
			continue // keep draining so workers are never stuck
		}
		werr = p.commit(batch)
	}
	if werr != nil {
		return werr // it names the checkpoint file
	}
	if p.total >= 0 { // the reader has finished: total is settled
		if err := p.log.SetTotal(p.total); err != nil {
			return err
		}
	}
	return p.log.Sync()
}

// commit makes a batch of rows durable, then counts and logs them.
func (p *pass) commit(batch []finished) error {
	p.rows = p.rows[:0]
	for _, r := range batch {
		p.rows = append(p.rows, r.row)
	}
	if err := p.log.Append(p.rows...); err != nil {
		return err
	}
	crashPoint("commit.before-sync")
	if err := p.log.Sync(); err != nil {
		return err
	}
	crashPoint("commit.after-sync")
	c := p.cfg.Counters
	for _, r := range batch {
		if r.fail != nil {
			c.Failed.Add(1)
			p.failures.add(r.fail)
		} else {
			c.Good.Add(1)
		}
		if r.row.Cut() {
			c.Cut.Add(1)
		}
		c.PromptTokens.Add(int64(r.row.PromptTokens))
		c.CompletionTokens.Add(int64(r.row.CompletionTokens))
	}
	return nil
}
