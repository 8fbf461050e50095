package llama

// State is one sequence's mutable run state: its KV cache, its position and
// the logits of its last forward step. A State belongs to one sequence and
// is used by one goroutine at a time; the Model it came from is shared.
type State struct {
	model *Model
	pos   int
	// Logits holds the next-token logits (len Vocab) after a Forward step
	// that asked for them; it is overwritten by the next such step.
	Logits []float32
	k, v   [][]float32 // per layer: pos*kvDim values in use, positions in order
}

// NewState returns an empty state (position 0) for a sequence on m.
func (m *Model) NewState() *State {
	s := &State{
		model:  m,
		Logits: make([]float32, m.cfg.Vocab),
		k:      make([][]float32, m.cfg.Layers),
		v:      make([][]float32, m.cfg.Layers),
	}
	return s
}

// Pos is the number of tokens in the cache: the position of the next token.
func (s *State) Pos() int { return s.pos }

// Reset empties the cache so the state can serve a new sequence; the
// memory is kept for reuse.
func (s *State) Reset() {
	s.pos = 0
	for l := range s.k {
		s.k[l] = s.k[l][:0]
		s.v[l] = s.v[l][:0]
	}
}

// reserve makes room for n more positions in every layer's cache.
func (s *State) reserve(n int) {
	kvDim := s.model.kvDim
	need := (s.pos + n) * kvDim
	for l := range s.k {
		s.k[l] = growTo(s.k[l], need)
		s.v[l] = growTo(s.v[l], need)
	}
}

// growTo returns b resized to n, keeping its contents, with headroom so that
// a growing cache is copied O(log n) times.
func growTo(b []float32, n int) []float32 {
	if cap(b) >= n {
		return b[:n]
	}
	c := max(2*cap(b), n, 64)
	nb := make([]float32, n, c)
	copy(nb, b)
	return nb
}
