package kernels

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// minParallelMACs is the work below which a MatMul runs on its caller alone:
// waking a worker costs a few microseconds.
const minParallelMACs = 1 << 16

// spinFor is how long an idle worker polls for the next piece of work
// before it parks. A decode step issues a matrix product every few tens of
// microseconds; a parked worker takes about as long again to wake, which
// at 16 threads cost more than the products themselves.
const spinFor = 200 * time.Microsecond

// pool is a fixed set of worker goroutines, started once, that share each
// MatMul (or Parallel call). The work is cut into more chunks than threads
// and every thread, the caller included, claims chunks until none are left,
// so a slow or descheduled core delays a call by one chunk, not by its
// share. Which thread computes a chunk never changes its bits.
// One call holds the pool at a time (mu); a concurrent caller runs alone.
type pool struct {
	mu      sync.Mutex // held for the length of one call, or by SetThreads
	threads int        // threads per call, the caller's included
	workers []*worker  // workers[0] is the caller's slot; its goroutine is never started

	// ticket packs the current call's generation, its chunk count and its
	// next unclaimed chunk (see tick), so a claim is one compare-and-swap
	// that fails if another call has begun. fn, job and cp describe the
	// call, are written before its ticket is published and are read only
	// by a thread holding one of its chunks.
	ticket  atomic.Uint64
	nthread atomic.Int32 // threads of the current call (workers with id >= it sit out)
	// spin is whether idle workers poll before parking: only while the
	// threads fit the Go scheduler's processors (GOMAXPROCS), since a
	// polling worker holds one that a thread with work may need.
	spin atomic.Bool
	fn   func(chunk int, sc *scratch)
	left atomic.Int32 // chunks not yet finished
	// waiter is set, to the generation with waiterBit, by a caller about
	// to block on done; whoever finishes that generation's last chunk then
	// sends on done (see waitDone). The generation keeps a thread that
	// finished an earlier call late from waking a later one.
	waiter atomic.Uint64
	done   chan struct{}
	job    job
	cp     int // panels per chunk of the current MatMul
	// matmulFn is matmulChunk bound once, so a MatMul does not allocate.
	matmulFn func(c int, sc *scratch)
	// The current Parallel call, and rangeChunk bound once.
	rangeFn            func(lo, hi int)
	rangeN, rangeParts int
	rangeChunkFn       func(c int, sc *scratch)
	// acts holds the current Q8 MatMul's quantized activations, and
	// quantizeFn quantizes blocks [lo, hi) of its x into them.
	acts       q8Acts
	quantizeFn func(lo, hi int)
	// bacts holds the current BF16 MatMul's rounded activations, and
	// roundFn rounds rows [lo, hi) of its x into them.
	bacts   bf16Acts
	roundFn func(lo, hi int)
}

type worker struct {
	start  chan struct{} // a parked worker is woken by one send
	parked atomic.Bool   // set by the worker before it blocks on start
	sc     scratch
}

var defaultPool = newPool(runtime.GOMAXPROCS(0))

// spare holds scratch for MatMuls that run outside the pool.
var spare = sync.Pool{New: func() any { return new(scratch) }}

func newPool(threads int) *pool {
	p := &pool{done: make(chan struct{}, 1)}
	p.matmulFn = p.matmulChunk
	p.rangeChunkFn = p.rangeChunk
	p.quantizeFn = func(lo, hi int) { p.acts.quantize(p.job.x, p.job.w.Cols, lo, hi) }
	p.roundFn = func(lo, hi int) { p.bacts.round(p.job.im, p.job.x, p.job.w.Cols, lo, hi) }
	p.setThreads(threads)
	return p
}

// setThreads must be called with mu held or before the pool is shared.
func (p *pool) setThreads(n int) {
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	p.threads = n
	p.spin.Store(n <= runtime.GOMAXPROCS(0))
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

// A ticket is gen<<40 | chunks<<20 | next: 24 bits of generation (compared
// for equality only), 20 of chunk count and 20 of next chunk.
const (
	tickBits = 20
	tickMask = 1<<tickBits - 1
	maxChunk = tickMask
)

func tick(gen uint32, chunks, next int) uint64 {
	return uint64(gen&(1<<24-1))<<(2*tickBits) | uint64(chunks)<<tickBits | uint64(next)
}

func tickGen(t uint64) uint32 { return uint32(t >> (2 * tickBits)) }

// loop is a worker: it waits for a new generation, claims chunks of it
// while any are left, and waits again.
func (p *pool) loop(id int, w *worker) {
	var seen uint32
	active := true
	for {
		gen := p.wait(w, seen, active)
		seen = gen
		// A worker past the current thread count sits the call out and
		// parks without polling until a caller wants it again.
		if active = id < int(p.nthread.Load()); active {
			p.work(gen, &w.sc)
		}
	}
}

// wait returns the first generation after seen: it polls for spinFor (if
// poll is set and spinning is on), then marks the worker parked and blocks
// until a caller wakes it.
func (p *pool) wait(w *worker, seen uint32, poll bool) uint32 {
	if poll && p.poll(func() bool { return tickGen(p.ticket.Load()) != seen }) {
		return tickGen(p.ticket.Load())
	}
	// Swap, not Store: the load of the ticket below must not pass this
	// write (the caller writes the ticket, then reads parked). Go's atomics
	// promise that order, but arm64 emulators on x86 (qemu) do not give it
	// to a store-release followed by a load-acquire, and a wake-up was
	// lost there; a read-modify-write orders it everywhere.
	w.parked.Swap(true)
	if g := tickGen(p.ticket.Load()); g != seen && w.parked.CompareAndSwap(true, false) {
		return g // published after all; no caller will send
	}
	// Either nothing is published yet, or a caller already claimed the
	// wake-up: in both cases exactly one send is coming.
	<-w.start
	return tickGen(p.ticket.Load())
}

// poll reports whether cond became true within spinFor of polling (never,
// when polling is off).
func (p *pool) poll(cond func() bool) bool {
	start := time.Now()
	for i := 1; p.spin.Load(); i++ {
		if cond() {
			return true
		}
		// No runtime.Gosched here: it takes the scheduler's global lock,
		// and sixteen polling threads then contend on it. Preemption
		// keeps other goroutines running on a loaded machine.
		if i%128 == 0 && time.Since(start) > spinFor {
			return false
		}
	}
	return false
}

// work claims and runs chunks of generation gen until none are left or the
// generation is over.
func (p *pool) work(gen uint32, sc *scratch) {
	for {
		t := p.ticket.Load()
		c, chunks := int(t&tickMask), int(t>>tickBits&tickMask)
		if tickGen(t) != gen || c >= chunks {
			return
		}
		if !p.ticket.CompareAndSwap(t, t+1) {
			continue
		}
		p.fn(c, sc)
		if p.left.Add(-1) == 0 {
			p.wakeCaller(gen)
		}
	}
}

// waitDone returns when every chunk of the current call has finished. Like
// an idle worker, the caller polls first (a parked goroutine takes the OS
// tens of microseconds to wake, as long as a small product takes), then
// parks; the thread finishing the last chunk wakes it only if it parked.
func (p *pool) waitDone(gen uint32) {
	if p.poll(func() bool { return p.left.Load() == 0 }) {
		return
	}
	me := waiterBit | uint64(gen)
	p.waiter.Swap(me) // Swap: ordered before the load of left (see wait)
	if p.left.Load() == 0 && p.waiter.CompareAndSwap(me, 0) {
		return // finished meanwhile; nobody will send
	}
	<-p.done
}

// wakeCaller wakes the caller of generation gen if it parked. The thread
// that finished gen's last chunk calls it, possibly late: by then the
// caller may have seen the end by polling and started another call, whose
// parked caller this must leave alone.
func (p *pool) wakeCaller(gen uint32) {
	if p.waiter.CompareAndSwap(waiterBit|uint64(gen), 0) {
		p.done <- struct{}{}
	}
}

// waiterBit marks waiter as set (generation 0 included).
const waiterBit = 1 << 32

// spread runs fn(c, scratch) for every chunk c in [0, chunks) on up to
// threads threads, the caller's included, and waits. The caller holds mu.
func (p *pool) spread(chunks, threads int, fn func(c int, sc *scratch)) {
	if chunks <= 0 {
		return
	}
	if chunks > maxChunk {
		panic("kernels: too many chunks in one call")
	}
	p.fn = fn
	p.left.Store(int32(chunks))
	p.nthread.Store(int32(threads))
	gen := (tickGen(p.ticket.Load()) + 1) & (1<<24 - 1)
	p.ticket.Store(tick(gen, chunks, 0))
	for _, w := range p.workers[1:threads] {
		if w.parked.CompareAndSwap(true, false) {
			w.start <- struct{}{}
		}
	}
	p.work(gen, &p.workers[0].sc)
	p.waitDone(gen)
	p.fn = nil
}

func (p *pool) matmul(im *impl, dst, x []float32, n int, w *Matrix) {
	macs := n * w.Rows * w.Cols
	if macs < minParallelMACs || !p.mu.TryLock() {
		sc := spare.Get().(*scratch)
		j := job{im: im, dst: dst, x: x, n: n, w: w}
		switch w.DType {
		case Q8:
			sc.acts.resize(n, w.Cols)
			sc.acts.quantize(x, w.Cols, 0, n*q8Blocks(w.Cols))
			j.acts = &sc.acts
		case BF16:
			sc.bacts.resize(im, n, w.Cols)
			sc.bacts.round(im, x, w.Cols, 0, n)
			j.bacts = &sc.bacts
		}
		j.part(0, panelsOf(w.Rows), sc)
		spare.Put(sc)
		return
	}
	defer p.mu.Unlock()
	np := panelsOf(w.Rows)
	p.job = job{im: im, dst: dst, x: x, n: n, w: w}
	if w.DType == Q8 {
		p.acts.resize(n, w.Cols)
		p.job.acts = &p.acts
		if blocks := n * q8Blocks(w.Cols); n*w.Cols < minParallelQuantize || p.threads == 1 {
			p.quantizeFn(0, blocks)
		} else {
			p.parallel(blocks, p.quantizeFn)
		}
	}
	if w.DType == BF16 {
		p.bacts.resize(im, n, w.Cols)
		p.job.bacts = &p.bacts
		if n*w.Cols < minParallelQuantize || p.threads == 1 || n == 1 {
			p.roundFn(0, n)
		} else {
			p.parallel(n, p.roundFn)
		}
	}
	if p.threads == 1 || np <= 4 {
		p.job.part(0, np, &p.workers[0].sc)
	} else {
		// Chunks of whole gemv calls (4 panels), about four per thread.
		p.cp = max(4, (np+4*p.threads-1)/(4*p.threads)+3) / 4 * 4
		chunks := (np + p.cp - 1) / p.cp
		p.spread(chunks, min(p.threads, chunks), p.matmulFn)
	}
	p.job = job{}
}

// matmulChunk computes chunk c of the current MatMul.
func (p *pool) matmulChunk(c int, sc *scratch) {
	lo := c * p.cp
	p.job.part(lo, min(lo+p.cp, panelsOf(p.job.w.Rows)), sc)
}

// run calls fn(id, parts) for id in [0, Threads()) on the pool's threads and
// waits. The bandwidth benchmark uses it to stream with the same workers as
// MatMul.
func (p *pool) run(fn func(id, parts int)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	parts := p.threads
	p.spread(parts, parts, func(id int, _ *scratch) { fn(id, parts) })
}

// minParallelQuantize is the number of activations below which a Q8
// MatMul quantizes them on its caller alone: quantizing takes a few
// nanoseconds a value, so even one decode row of 4096 is worth spreading
// (while the caller quantizes, every other thread waits).
const minParallelQuantize = 4096

// minParallelItems is the element-wise work below which Parallel runs fn
// on its caller alone.
const minParallelItems = 1 << 14

// Parallel calls fn over [0, n) split into contiguous ranges, spread over
// the pool's threads, and waits; cost is the work per item in arbitrary
// units (1 for a cheap element-wise step), so small jobs stay on the
// caller. fn must be safe to run concurrently on disjoint ranges; a range's
// results must not depend on how [0, n) was split. A call that finds the
// pool busy runs alone, like MatMul. Parallel itself does not allocate;
// pass a func value made once (not a fresh closure) to keep a hot loop
// allocation-free.
func Parallel(n, cost int, fn func(lo, hi int)) {
	if n <= 0 {
		return
	}
	if n*cost < minParallelItems || n == 1 || !defaultPool.mu.TryLock() {
		fn(0, n)
		return
	}
	defer defaultPool.mu.Unlock()
	if defaultPool.threads == 1 {
		fn(0, n)
		return
	}
	defaultPool.parallel(n, fn)
}

// parallel is Parallel on p, with mu held and more than one thread.
func (p *pool) parallel(n int, fn func(lo, hi int)) {
	p.rangeFn, p.rangeN, p.rangeParts = fn, n, min(2*p.threads, n)
	p.spread(p.rangeParts, min(p.threads, p.rangeParts), p.rangeChunkFn)
	p.rangeFn = nil
}

// rangeChunk runs chunk c of the current Parallel call.
func (p *pool) rangeChunk(c int, _ *scratch) {
	n, parts := p.rangeN, p.rangeParts
	p.rangeFn(n*c/parts, n*(c+1)/parts)
}
