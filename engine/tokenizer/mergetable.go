package tokenizer

// mergeTable maps a pair of token ids to its merge rank; mergedByRank gives
// the resulting id. It is a flat open-addressing hash table with linear
// probing, which is what BPE on long pieces (CJK, Cyrillic) spends its time
// on: when ids and ranks fit (Llama 3: 17-bit ids, 19-bit ranks) each slot
// is a single uint64 (pair and rank packed), else a 16-byte slot. Immutable
// after build.
type mergeTable struct {
	packed   []uint64 // pair<<rankBits | rank; emptyKey when unused
	rankBits uint
	idBits   uint

	slots []mergeSlot // when the packed form does not fit

	shift        uint
	mergedByRank []int32
}

type mergeSlot struct {
	key  uint64 // pairKey(a, b); emptyKey when unused
	rank uint32
}

const emptyKey = ^uint64(0)

func bitsFor(n int) uint {
	b := uint(1)
	for 1<<b < n {
		b++
	}
	return b
}

// newMergeTable makes a table for n merges over ids below vocabSize.
func newMergeTable(n, vocabSize int) *mergeTable {
	bits := uint(4)
	for 1<<bits < 2*n {
		bits++
	}
	m := &mergeTable{shift: 64 - bits, mergedByRank: make([]int32, n)}
	m.idBits, m.rankBits = bitsFor(vocabSize), bitsFor(n+1)
	if 2*m.idBits+m.rankBits < 64 {
		m.packed = make([]uint64, 1<<bits)
		for i := range m.packed {
			m.packed[i] = emptyKey
		}
	} else {
		m.slots = make([]mergeSlot, 1<<bits)
		for i := range m.slots {
			m.slots[i].key = emptyKey
		}
	}
	return m
}

func (m *mergeTable) pair(a, b int32) uint64 {
	if m.packed != nil {
		return uint64(a)<<m.idBits | uint64(b)
	}
	return pairKey(a, b)
}

func (m *mergeTable) index(key uint64) uint64 { return (key * 0x9E3779B97F4A7C15) >> m.shift }

// put sets the merge of (a, b) to rank, replacing an earlier one.
func (m *mergeTable) put(a, b int32, rank int, merged int32) {
	m.mergedByRank[rank] = merged
	key := m.pair(a, b)
	if m.packed != nil {
		mask := uint64(len(m.packed) - 1)
		for i := m.index(key); ; i = (i + 1) & mask {
			if v := m.packed[i]; v == emptyKey || v>>m.rankBits == key {
				m.packed[i] = key<<m.rankBits | uint64(rank)
				return
			}
		}
	}
	mask := uint64(len(m.slots) - 1)
	for i := m.index(key); ; i = (i + 1) & mask {
		s := &m.slots[i]
		if s.key == emptyKey || s.key == key {
			s.key, s.rank = key, uint32(rank)
			return
		}
	}
}

// rank returns the merge rank of (a, b), or noMerge.
func (m *mergeTable) rank(a, b int32) uint32 {
	key := m.pair(a, b)
	if m.packed != nil {
		mask := uint64(len(m.packed) - 1)
		for i := m.index(key); ; i = (i + 1) & mask {
			v := m.packed[i]
			if v == emptyKey {
				return noMerge
			}
			if v>>m.rankBits == key {
				return uint32(v & (1<<m.rankBits - 1))
			}
		}
	}
	mask := uint64(len(m.slots) - 1)
	for i := m.index(key); ; i = (i + 1) & mask {
		s := &m.slots[i]
		if s.key == key {
			return s.rank
		}
		if s.key == emptyKey {
			return noMerge
		}
	}
}

const noMerge = ^uint32(0)
