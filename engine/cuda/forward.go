package cuda

import (
	"fmt"
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
// attention tiles (appendTiles: the rows alone, then the (first row, rows)
// of the longer tiles), then the page table. Everything before the page
// table has a length fixed by the step's shape, so a recorded step finds
// its parts where it recorded them.
func (r *replica) step(steps []backend.Step) error {
	c := r.net.cfg
	_, _, _, _, vocab := r.net.dims()
	rows, outs := 0, 0
	tileRows := maxTileRows(c.Heads / c.KVHeads)
	ones, runs := r.ones[:0], r.runs[:0]
	for _, st := range steps {
		ones, runs = appendTiles(ones, runs, rows, len(st.Tokens), tileRows)
		rows += len(st.Tokens)
		if st.Out != backend.NoOutput {
			outs++
		}
	}
	r.ones, r.runs = ones, runs
	R := rows
	sh := shape{rows: R, outs: outs, ones: len(ones), tiles: len(runs) / 2}
	begin := time.Now()
	meta := unsafe.Slice((*int32)(unsafe.Pointer(&r.host[0])), len(r.host)/4)
	tok, pos, ptoff, outRow := meta[:R], meta[R:2*R], meta[2*R:3*R], meta[3*R:3*R+outs]
	nt := copy(meta[3*R+outs:], ones)
	nt += copy(meta[3*R+outs+nt:], runs)
	pt := meta[3*R+outs+nt:]
	row, o, np := 0, 0, 0
	for _, st := range steps {
		s := st.State.(*State)
		off := np
		np += copy(pt[np:], s.pages)
		for t, id := range st.Tokens {
			tok[row], pos[row], ptoff[row] = int32(id), int32(s.pos+t), int32(off)
			row++
		}
		if st.Out != backend.NoOutput {
			outRow[o] = int32(row - 1)
			o++
		}
	}
	metaN := int64(3*R + outs + nt + np)
	if err := r.ctx.CopyInAsync(r.meta, unsafe.Pointer(&meta[0]), 4*metaN, r.st); err != nil {
		return err
	}
	qu := queue{r: r}
	r.run(&qu, sh)
	if outs > 0 && qu.err == nil {
		qu.err = r.ctx.CopyOutAsync(unsafe.Pointer(&r.host[4*metaN]), r.argOut, 4*int64(outs), r.st)
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

// launches queues the step's kernels for a step of shape sh (worker
// only). Every launch parameter is a function of the shape and the
// replica's fixed buffers alone (the rows' tokens, positions, tiles and
// page tables are read from the metadata on the device), so the sequence
// can be recorded once per shape and replayed (see graphSet).
func (r *replica) launches(qu *queue, sh shape) {
	c := r.net.cfg
	h, q, kv, inter, vocab := r.net.dims()
	R, outs := sh.rows, sh.outs
	dTok, dPos, dPtoff, dOut := r.meta, r.meta.Add(4*int64(R)), r.meta.Add(8*int64(R)), r.meta.Add(12*int64(R))
	dOnes := r.meta.Add(4 * int64(3*R+outs))
	dRuns := dOnes.Add(4 * int64(sh.ones))
	dPt := dRuns.Add(8 * int64(sh.tiles))
	eps := float32(c.RMSNormEps)
	kvElt := int64(r.net.kvElt())
	slab := int64(pageSize) * kv * kvElt         // bytes
	pstride := r.pageBytes / kvElt               // elements
	tileRows := maxTileRows(c.Heads / c.KVHeads) // as step split the rows
	a := &r.args
	qu.launch(r.k.embed, R, 1, 256, a.reset().p(r.x).p(r.embed).p(dTok).i(int(h)))
	m := int64(R)
	// A step of one row runs its products on gemm_bf16_row (row.go), which
	// normalises its input itself and ends its ranges of K, gate|up's
	// SwiGLU and q|k|v's RoPE in the block: no rmsnorm, reduce, swiglu or
	// rope launches.
	rows := R == 1 && r.k.rows
	for l := range r.layers {
		L := &r.layers[l]
		kc := r.pool.Add(int64(l) * 2 * slab)
		vc := kc.Add(slab)
		roped := rows && r.k.rowRoPE
		if rows {
			p := rowProduct{name: "gemm qkv", y: r.qkv, x: r.x, norm: L.attnNorm, w: L.qkv, n: q + 2*kv, k: h, flags: rowNorm, eps: eps}
			if roped {
				p.name, p.flags = "gemm qkv rope", rowNorm|rowRoPE
				p.rope = ropeParams{pos: dPos, ptoff: dPtoff, pagetab: dPt, cos: r.cos, sin: r.sin, kc: kc, vc: vc,
					heads: int32(c.Heads), kvheads: int32(c.KVHeads), hd: int32(c.HeadDim), page: pageSize, pstride: pstride}
			}
			qu.row(p)
		} else {
			if l == 0 { // later layers' attention norms end the layer before
				qu.launch(r.k.rmsnorm, R, 1, 256, a.reset().p(r.xn).p(r.x).p(L.attnNorm).p(0).i(int(h)).f(eps))
			}
			qu.product(product{gemm: "gemm qkv", sum: "reduce qkv", y: r.qkv, x: r.xn, w: L.qkv, m: m, n: q + 2*kv, k: h})
		}
		if !roped {
			qu.launch(r.k.rope, R, 1, 128, a.reset().p(r.qkv).p(dPos).p(dPtoff).p(dPt).p(r.cos).p(r.sin).p(kc).p(vc).
				i(c.Heads).i(c.KVHeads).i(c.HeadDim).i(pageSize).l(pstride))
		}
		r.attend(qu, attention{out: r.att, qkv: r.qkv, ones: dOnes, runs: dRuns, pos: dPos, ptoff: dPtoff, pt: dPt, kc: kc, vc: vc,
			nOnes: sh.ones, nTiles: sh.tiles, tileRows: tileRows, early: rows,
			heads: c.Heads, kvheads: c.KVHeads, hd: c.HeadDim, page: pageSize, pstride: pstride})
		if rows {
			qu.row(rowProduct{name: "gemm o", y: r.x, a: r.att, w: L.o, n: h, k: q, flags: rowAcc})
			qu.row(rowProduct{name: "gemm gate|up swiglu", act: r.act, x: r.x, norm: L.mlpNorm, w: L.gu, n: 2 * inter, k: h,
				flags: rowNorm | rowSwiGLU, eps: eps})
			qu.row(rowProduct{name: "gemm down", y: r.x, a: r.act, w: L.down, n: h, k: inter, flags: rowAcc})
			continue
		}
		qu.product(product{gemm: "gemm o", sum: "reduce o", y: r.x, x: r.att, w: L.o, m: m, n: h, k: q, acc: true,
			norm: L.mlpNorm, yn: r.xn, eps: eps})
		if r.fusesSwiGLU(m) { // act's bits either way
			qu.gemmSwiGLU("gemm gate|up swiglu", r.act, r.xn, L.gu, m, 2*inter, h)
		} else {
			qu.product(product{gemm: "gemm gate|up", sum: "reduce gate|up", y: r.gu, x: r.xn, w: L.gu, m: m, n: 2 * inter, k: h})
			qu.launch(r.k.swiglu, R, int((inter+1023)/1024), 256,
				a.reset().p(r.act).p(r.gu).i(int(inter)).i(flag(r.net.guInterleaved)))
		}
		// The next layer's attention norm; after the last layer none (the
		// final norm runs on the output rows alone).
		var next driver.Ptr
		if l+1 < len(r.layers) {
			next = r.layers[l+1].attnNorm
		}
		qu.product(product{gemm: "gemm down", sum: "reduce down", y: r.x, x: r.act, w: L.down, m: m, n: h, k: inter, acc: true,
			norm: next, yn: r.xn, eps: eps})
	}
	if outs > 0 {
		if rows { // the one row is the output row
			qu.row(rowProduct{name: "gemm lm_head", y: r.logits, x: r.x, norm: r.norm, w: r.lmHead, n: vocab, k: h, flags: rowNorm, eps: eps})
		} else {
			qu.launch(r.k.rmsnorm, outs, 1, 256, a.reset().p(r.last).p(r.x).p(r.norm).p(dOut).i(int(h)).f(eps))
			qu.product(product{gemm: "gemm lm_head", sum: "reduce lm_head", y: r.logits, x: r.last, w: r.lmHead, m: int64(outs), n: vocab, k: h})
		}
		parts := argmaxParts(outs, vocab, r.gpu.SMs)
		qu.launch(r.k.argmax, outs, parts, 256, a.reset().p(r.argOut).p(r.argVal).p(r.argIdx).p(r.logits).i(int(vocab)))
		if parts > 1 {
			qu.launch(r.k.argmaxMerge, outs, 1, 32, a.reset().p(r.argOut).p(r.argVal).p(r.argIdx).i(parts))
		}
	}
}

// maxArgmaxParts is the most parts argmax splits a logits row into.
const maxArgmaxParts = 32

// argmaxParts is how many parts argmax splits each of outs logits rows
// of vocab into on sms multiprocessors: enough blocks for two waves, each
// of at least 4,096 logits (its threads' loads in flight at once), and at
// most maxArgmaxParts. The greedy choice is exact, so the parts change
// its speed alone.
func argmaxParts(outs int, vocab int64, sms int) int {
	return int(max(1, min(maxArgmaxParts, cdiv(vocab, 4096), cdiv(int64(2*sms), int64(outs)))))
}

// queue issues a step's launches on the replica's stream and keeps the
// first error: once one fails, the later ones do nothing. Each launch is
// timed under its name when profiling.
type queue struct {
	r   *replica
	err error
}

// launch queues kernel f over gx x gy blocks of block threads, timed
// under the kernel's name.
func (q *queue) launch(f *driver.Func, gx, gy, block int, args *launchArgs) {
	q.named(f.Name, f, gx, gy, block, 0, args)
}

// launchShared is launch with smem bytes of dynamic shared memory a block.
func (q *queue) launchShared(f *driver.Func, gx, gy, block, smem int, args *launchArgs) {
	q.named(f.Name, f, gx, gy, block, smem, args)
}

// named is launchShared timed as name.
func (q *queue) named(name string, f *driver.Func, gx, gy, block, smem int, args *launchArgs) {
	if q.open() {
		q.close(name, f.LaunchShared(q.r.st, [3]int{gx, gy, 1}, [3]int{block, 1, 1}, smem, args.list()))
	}
}

// open starts a timed launch; false once a launch has failed.
func (q *queue) open() bool {
	if q.err == nil {
		q.err = q.r.prof.start(q.r)
	}
	return q.err == nil
}

// close ends the launch open started, whose error is err, timing it as
// name.
func (q *queue) close(name string, err error) {
	if q.err = err; err == nil {
		q.err = q.r.prof.stop(q.r, name)
	}
}

// flag is a boolean kernel parameter.
func flag(b bool) int {
	if b {
		return 1
	}
	return 0
}
