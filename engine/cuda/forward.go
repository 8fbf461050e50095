package cuda

import (
	"fmt"
	"math"
	"time"
	"unsafe"

	"github.com/batchtrans/batchtrans/engine/backend"
	"github.com/batchtrans/batchtrans/engine/cuda/driver"
)

// forward runs this replica's share of a step (the steps were checked).
// It first gives every sequence the KV pages its new positions need (all
// or nothing), then runs the step on the worker.
func (r *replica) forward(steps []backend.Step) error {
	type grown struct {
		s   *State
		old int
	}
	var done []grown
	for _, st := range steps {
		s := st.State.(*State)
		need := (s.pos+len(st.Tokens)+pageSize-1)/pageSize - len(s.pages)
		if need <= 0 {
			continue
		}
		pg, err := r.take(need)
		if err != nil {
			for _, g := range done {
				r.release(g.s.pages[g.old:])
				g.s.pages = g.s.pages[:g.old]
			}
			return err
		}
		done = append(done, grown{s, len(s.pages)})
		s.pages = append(s.pages, pg...)
	}
	if err := r.w.do(func() error { return r.step(steps) }); err != nil {
		return fmt.Errorf("cuda: GPU %d (%s): %w: %w", r.idx, r.gpu.Name, err, backend.ErrDevice)
	}
	return nil
}

// step runs the forward pass over the steps' rows (worker only). The
// layout of the step's integer metadata, uploaded in one copy: tokens,
// positions and page-table offsets per row, the row of each output, the
// page table, then the attention tiles (appendTiles): the rows alone, then
// the (first row, rows) of the longer tiles.
func (r *replica) step(steps []backend.Step) error {
	c := r.net.cfg
	h, q, kv, inter, vocab := r.net.dims()
	rows, outs := 0, 0
	for _, st := range steps {
		rows += len(st.Tokens)
		if st.Out != backend.NoOutput {
			outs++
		}
	}
	R := rows
	begin := time.Now()
	meta := unsafe.Slice((*int32)(unsafe.Pointer(&r.host[0])), len(r.host)/4)
	tok, pos, ptoff, outRow := meta[:R], meta[R:2*R], meta[2*R:3*R], meta[3*R:3*R+outs]
	pt := meta[3*R+outs:]
	row, o, np := 0, 0, 0
	tileRows := maxTileRows(c.Heads / c.KVHeads)
	ones, runs := r.ones[:0], r.runs[:0]
	for _, st := range steps {
		s := st.State.(*State)
		off := np
		np += copy(pt[np:], s.pages)
		ones, runs = appendTiles(ones, runs, row, len(st.Tokens), tileRows)
		for t, id := range st.Tokens {
			tok[row], pos[row], ptoff[row] = int32(id), int32(s.pos+t), int32(off)
			row++
		}
		if st.Out != backend.NoOutput {
			outRow[o] = int32(row - 1)
			o++
		}
	}
	r.ones, r.runs = ones, runs
	tiles := pt[np:]
	nt := copy(tiles, ones)
	nt += copy(tiles[nt:], runs)
	metaN := int64(3*R + outs + np + nt)
	if err := r.ctx.CopyInAsync(r.meta, unsafe.Pointer(&meta[0]), 4*metaN, r.st); err != nil {
		return err
	}
	dTok, dPos, dPtoff, dOut := r.meta, r.meta.Add(4*int64(R)), r.meta.Add(8*int64(R)), r.meta.Add(12*int64(R))
	dPt := r.meta.Add(4 * int64(3*R+outs))
	dOnes := dPt.Add(4 * int64(np))
	dRuns := dOnes.Add(4 * int64(len(ones)))
	eps := float32(c.RMSNormEps)
	scale := float32(1 / math.Sqrt(float64(c.HeadDim)))
	kvElt := int64(r.net.kvElt())
	slab := int64(pageSize) * kv * kvElt // bytes
	pstride := r.pageBytes / kvElt       // elements
	a := &r.args
	qu := queue{r: r}
	qu.launch(r.k.embed, R, 1, 256, a.reset().p(r.x).p(r.embed).p(dTok).i(int(h)))
	m := int64(R)
	for l := range r.layers {
		L := &r.layers[l]
		kc := r.pool.Add(int64(l) * 2 * slab)
		vc := kc.Add(slab)
		qu.launch(r.k.rmsnorm, R, 1, 256, a.reset().p(r.xn).p(r.x).p(L.attnNorm).p(0).i(int(h)).f(eps))
		qu.gemm("gemm qkv", r.qkv, r.xn, L.qkv, m, q+2*kv, h, false)
		qu.launch(r.k.rope, R, 1, 128, a.reset().p(r.qkv).p(dPos).p(dPtoff).p(dPt).p(r.cos).p(r.sin).p(kc).p(vc).
			i(c.Heads).i(c.KVHeads).i(c.HeadDim).i(pageSize).l(pstride))
		if len(ones) > 0 {
			qu.launch(r.k.attention, len(ones), c.KVHeads, 32*(c.Heads/c.KVHeads), a.reset().p(r.att).p(r.qkv).p(dOnes).p(dPos).p(dPtoff).p(dPt).
				p(kc).p(vc).i(c.Heads).i(c.KVHeads).i(c.HeadDim).i(pageSize).l(pstride).f(scale))
		}
		if len(runs) > 0 {
			qu.launchShared(r.k.attentionTile, len(runs)/2, c.KVHeads, attTileThreads, attTileSmem(c.HeadDim), a.reset().p(r.att).p(r.qkv).p(dRuns).
				p(dPos).p(dPtoff).p(dPt).p(kc).p(vc).i(c.Heads).i(c.KVHeads).i(c.HeadDim).i(pageSize).l(pstride).f(scale))
		}
		qu.gemm("gemm o", r.x, r.att, L.o, m, h, q, true)
		qu.launch(r.k.rmsnorm, R, 1, 256, a.reset().p(r.xn).p(r.x).p(L.mlpNorm).p(0).i(int(h)).f(eps))
		qu.gemm("gemm gate|up", r.gu, r.xn, L.gu, m, 2*inter, h, false)
		n := m * inter
		qu.launch(r.k.swiglu, int(min((n+255)/256, 65535)), 1, 256, a.reset().p(r.act).p(r.gu).i(int(inter)).l(n))
		qu.gemm("gemm down", r.x, r.act, L.down, m, h, inter, true)
	}
	if outs > 0 {
		qu.launch(r.k.rmsnorm, outs, 1, 256, a.reset().p(r.last).p(r.x).p(r.norm).p(dOut).i(int(h)).f(eps))
		qu.gemm("gemm lm_head", r.logits, r.last, r.lmHead, int64(outs), vocab, h, false)
		qu.launch(r.k.argmax, outs, 1, 256, a.reset().p(r.argOut).p(r.logits).i(int(vocab)))
		if qu.err == nil {
			qu.err = r.ctx.CopyOutAsync(unsafe.Pointer(&r.host[4*metaN]), r.argOut, 4*int64(outs), r.st)
		}
	}
	if qu.err != nil {
		return qu.err
	}
	queued := time.Since(begin)
	if err := r.ctx.Sync(r.st); err != nil {
		return err
	}
	r.prof.collect(r, queued, time.Since(begin))
	best := unsafe.Slice((*int32)(unsafe.Pointer(&r.host[4*metaN])), outs)
	o = 0
	for _, st := range steps {
		s := st.State.(*State)
		s.pos += len(st.Tokens)
		if st.Out == backend.NoOutput {
			continue
		}
		s.token = int(best[o])
		if st.Out == backend.Logits {
			if len(s.logits) != int(vocab) {
				s.logits = make([]float32, vocab)
			}
			p, nb := bytesOf(s.logits)
			if err := r.ctx.CopyOut(p, r.logits.Add(int64(o)*vocab*4), nb); err != nil {
				return err
			}
		}
		o++
	}
	return nil
}

// gemm queues y = x . w^T (m x n from m x k and n x k), or y += that
// (worker only).
func (r *replica) gemm(y, x, w driver.Ptr, m, n, k int64, acc bool) error {
	ac := 0
	if acc {
		ac = 1
	}
	if r.k.gemmNarrow != nil && m <= narrowRows {
		return r.k.gemmNarrow.LaunchShared(r.st, [3]int{int((n + narrowCols - 1) / narrowCols), 1, 1},
			[3]int{narrowThreads, 1, 1}, narrowSmem, r.args.reset().p(y).p(x).p(w).i(int(m)).i(int(n)).i(int(k)).i(ac).list())
	}
	// The large tiles only where they still give every multiprocessor
	// two blocks; below that the 64 x 64 tiles spread the work wider.
	wideBlocks := ((n + wideTile - 1) / wideTile) * ((m + wideTile - 1) / wideTile)
	if r.k.gemmWide != nil && m > wideRows && wideBlocks >= 2*int64(r.gpu.SMs) {
		return r.k.gemmWide.LaunchShared(r.st, [3]int{int((n + wideTile - 1) / wideTile), int((m + wideTile - 1) / wideTile), 1},
			[3]int{wideThreads, 1, 1}, wideSmem, r.args.reset().p(y).p(x).p(w).i(int(m)).i(int(n)).i(int(k)).i(ac).list())
	}
	return r.k.gemm.Launch(r.st, [3]int{int((n + 63) / 64), int((m + 63) / 64), 1}, [3]int{r.k.gemmBlock, 1, 1},
		r.args.reset().p(y).p(x).p(w).i(int(m)).i(int(n)).i(int(k)).i(ac).list())
}

// queue issues a step's launches on the replica's stream and keeps the
// first error: once one fails, the later ones do nothing. Each launch is
// timed under its name when profiling.
type queue struct {
	r   *replica
	err error
}

// launch queues kernel f over gx x gy blocks of block threads.
func (q *queue) launch(f *driver.Func, gx, gy, block int, args *launchArgs) {
	q.launchShared(f, gx, gy, block, 0, args)
}

// launchShared is launch with smem bytes of dynamic shared memory a block.
func (q *queue) launchShared(f *driver.Func, gx, gy, block, smem int, args *launchArgs) {
	if q.err != nil {
		return
	}
	if q.err = q.r.prof.start(q.r); q.err == nil {
		if q.err = f.LaunchShared(q.r.st, [3]int{gx, gy, 1}, [3]int{block, 1, 1}, smem, args.list()); q.err == nil {
			q.err = q.r.prof.stop(q.r, f.Name)
		}
	}
}

// gemm queues replica.gemm, timed as name.
func (q *queue) gemm(name string, y, x, w driver.Ptr, m, n, k int64, acc bool) {
	if q.err != nil {
		return
	}
	if q.err = q.r.prof.start(q.r); q.err == nil {
		if q.err = q.r.gemm(y, x, w, m, n, k, acc); q.err == nil {
			q.err = q.r.prof.stop(q.r, name)
		}
	}
}
