package tokenizer

// Long pieces (CJK runs, long words) are merged with a priority queue, as
// Hugging Face does, instead of rescanning every pair after each merge:
// O(n log n) instead of O(n²). Both orders are the same: lowest rank first,
// leftmost first among equal ranks. mergeQuadratic stays as the reference
// that the tests hold mergeHeap to.
const heapThreshold = 16 // symbols

// symbol is one token of a piece being merged, in a doubly linked list over
// the piece's initial symbols.
type symbol struct {
	id         int32
	prev, next int32 // -1 at the ends
	dead       bool
}

// candidate is a possible merge of symbol pos with its successor.
type candidate struct {
	rank  uint32
	pos   int32
	left  int32 // ids the pair had when queued, to drop stale entries
	right int32
}

func (c candidate) less(d candidate) bool {
	return c.rank < d.rank || (c.rank == d.rank && c.pos < d.pos)
}

// mergeHeap applies the merges to ids in place and returns the result.
func (t *Tokenizer) mergeHeap(ids []int32) []int32 {
	syms := make([]symbol, len(ids))
	for i, id := range ids {
		syms[i] = symbol{id: id, prev: int32(i - 1), next: int32(i + 1)}
	}
	syms[len(syms)-1].next = -1
	h := make([]candidate, 0, len(ids))
	push := func(c candidate) {
		h = append(h, c)
		for i := len(h) - 1; i > 0; {
			p := (i - 1) / 2
			if !h[i].less(h[p]) {
				break
			}
			h[i], h[p] = h[p], h[i]
			i = p
		}
	}
	pop := func() candidate {
		top := h[0]
		last := len(h) - 1
		h[0] = h[last]
		h = h[:last]
		for i := 0; ; {
			l, r, m := 2*i+1, 2*i+2, i
			if l < len(h) && h[l].less(h[m]) {
				m = l
			}
			if r < len(h) && h[r].less(h[m]) {
				m = r
			}
			if m == i {
				break
			}
			h[i], h[m] = h[m], h[i]
			i = m
		}
		return top
	}
	queue := func(pos int32) {
		next := syms[pos].next
		if next < 0 {
			return
		}
		a, b := syms[pos].id, syms[next].id
		if r := t.merges.rank(a, b); r != noMerge {
			push(candidate{rank: r, pos: pos, left: a, right: b})
		}
	}
	for i := range syms {
		queue(int32(i))
	}
	for len(h) > 0 {
		c := pop()
		s := &syms[c.pos]
		if s.dead || s.id != c.left || s.next < 0 || syms[s.next].id != c.right {
			continue // stale: one side was merged since
		}
		nx := &syms[s.next]
		s.id = t.merges.mergedByRank[c.rank]
		nx.dead = true
		s.next = nx.next
		if s.next >= 0 {
			syms[s.next].prev = c.pos
		}
		if s.prev >= 0 {
			queue(s.prev)
		}
		queue(c.pos)
	}
	out := ids[:0]
	for i := int32(0); i >= 0; i = syms[i].next {
		out = append(out, syms[i].id)
	}
	return out
}
