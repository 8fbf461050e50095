package kernels

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// minParallelMACs is the work below which a MatMul runs on its caller alone:
// waking a worker costs a few microseconds.
const minParallelMACs = 1 << 16

// pool is a fixed set of worker goroutines, started once, that split each
// MatMul over output rows. The calling goroutine computes part 0 itself.
// One MatMul holds the pool at a time (mu); a concurrent caller runs alone.
type pool struct {
	mu      sync.Mutex // held for the length of one MatMul, or by SetThreads
	threads int        // parts per MatMul
	workers []*worker  // workers[0] is the caller's slot; its goroutine is never started
	job     job
	parts   int
	fn      func(id int) // when set, parts run fn instead of job
	pending atomic.Int32
	done    chan struct{}
}

type worker struct {
	start chan struct{}
	sc    scratch
}

var defaultPool = newPool(runtime.GOMAXPROCS(0))

// spare holds scratch for MatMuls that run outside the pool.
var spare = sync.Pool{New: func() any { return new(scratch) }}

func newPool(threads int) *pool {
	p := &pool{done: make(chan struct{}, 1)}
	p.setThreads(threads)
	return p
}

// setThreads must be called with mu held or before the pool is shared.
func (p *pool) setThreads(n int) {
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	p.threads = n
	for len(p.workers) < n {
		w := &worker{start: make(chan struct{}, 1)}
		id := len(p.workers)
		p.workers = append(p.workers, w)
		if id > 0 {
			go p.loop(id, w)
		}
	}
}

// SetThreads sets how many threads each MatMul uses (n <= 0: GOMAXPROCS).
// Worker goroutines are started once and live for the process; lowering the
// count leaves the extra ones idle. The thread count never changes results.
func SetThreads(n int) {
	defaultPool.mu.Lock()
	defaultPool.setThreads(n)
	defaultPool.mu.Unlock()
}

// Threads returns the number of threads each MatMul uses.
func Threads() int {
	defaultPool.mu.Lock()
	defer defaultPool.mu.Unlock()
	return defaultPool.threads
}

func (p *pool) loop(id int, w *worker) {
	for range w.start {
		p.runPart(id, &w.sc)
		if p.pending.Add(-1) == 0 {
			p.done <- struct{}{}
		}
	}
}

// bounds returns part id's panels; part boundaries fall on multiples of 4
// panels so every part but the last fills whole gemv calls.
func (p *pool) bounds(id int) (int, int) {
	np := panelsOf(p.job.w.Rows)
	lo := np * id / p.parts / 4 * 4
	hi := np * (id + 1) / p.parts / 4 * 4
	if id == p.parts-1 {
		hi = np
	}
	return lo, hi
}

func (p *pool) runPart(id int, sc *scratch) {
	if p.fn != nil {
		p.fn(id)
		return
	}
	lo, hi := p.bounds(id)
	p.job.part(lo, hi, sc)
}

// dispatch runs parts 1..parts-1 on the workers and part 0 on the caller,
// and waits for all of them. The caller holds mu.
func (p *pool) dispatch(parts int) {
	p.parts = parts
	p.pending.Store(int32(parts))
	for id := 1; id < parts; id++ {
		p.workers[id].start <- struct{}{}
	}
	p.runPart(0, &p.workers[0].sc)
	if p.pending.Add(-1) == 0 {
		p.done <- struct{}{}
	}
	<-p.done
}

func (p *pool) matmul(im *impl, dst, x []float32, n int, w *Matrix) {
	macs := n * w.Rows * w.Cols
	if macs < minParallelMACs || !p.mu.TryLock() {
		sc := spare.Get().(*scratch)
		j := job{im: im, dst: dst, x: x, n: n, w: w}
		j.part(0, panelsOf(w.Rows), sc)
		spare.Put(sc)
		return
	}
	defer p.mu.Unlock()
	parts := min(p.threads, max(1, panelsOf(w.Rows)/4))
	p.job = job{im: im, dst: dst, x: x, n: n, w: w}
	if parts == 1 {
		p.job.part(0, panelsOf(w.Rows), &p.workers[0].sc)
	} else {
		p.dispatch(parts)
	}
	p.job = job{}
}

// run calls fn(id) for id in [0, Threads()) on the pool's threads and waits.
// The bandwidth benchmark uses it to stream with the same workers as MatMul.
func (p *pool) run(fn func(id, parts int)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	parts := p.threads
	p.fn = func(id int) { fn(id, parts) }
	p.dispatch(parts)
	p.fn = nil
}
