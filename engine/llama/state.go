package llama

import (
	"fmt"
	"slices"

	"github.com/batchtrans/batchtrans/engine/backend"
	"github.com/batchtrans/batchtrans/engine/sample"
)

// State is one sequence's mutable run state: its KV cache, its position and
// the logits of its last forward step. A State belongs to one sequence and
// is used by one goroutine at a time; the Model it came from is shared.
type State struct {
	model *Model
	pos   int
	// logits holds the next-token logits (len Vocab) after a Forward step
	// that asked for them; it is overwritten by the next such step.
	logits []float32
	k, v   [][]float32 // per layer: pos*kvDim values in use, positions in order
}

var (
	_ backend.State  = (*State)(nil)
	_ backend.Prefix = (*Prefix)(nil)
)

// NewState returns an empty state (position 0) for a sequence on m.
func (m *Model) NewState() *State {
	s := &State{
		model:  m,
		logits: make([]float32, m.cfg.Vocab),
		k:      make([][]float32, m.cfg.Layers),
		v:      make([][]float32, m.cfg.Layers),
	}
	return s
}

// Pos is the number of tokens in the cache: the position of the next token.
func (s *State) Pos() int { return s.pos }

// Logits returns the next-token logits of the last step that asked for
// output; the slice is overwritten by the next such step.
func (s *State) Logits() []float32 { return s.logits }

// Token returns the greedy next token of the last step that asked for
// output (sample.Greedy of the logits).
func (s *State) Token() int { return sample.Greedy(s.logits) }

// Free does nothing: a CPU state's memory is the garbage collector's.
func (s *State) Free() {}

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

// Prefix is a read-only copy of the first positions of a sequence's KV
// cache. Any number of States may start from it (LoadPrefix copies it); it
// is never written after Snapshot returns, so sharing it across goroutines
// is safe.
type Prefix struct {
	model *Model
	n     int
	k, v  [][]float32 // per layer: n*kvDim values
}

// Snapshot copies the first n positions of s's cache into a new Prefix.
// n must be between 1 and s.Pos().
func (s *State) Snapshot(n int) (backend.Prefix, error) {
	if n <= 0 || n > s.pos {
		return nil, fmt.Errorf("snapshot of %d positions from a cache holding %d", n, s.pos)
	}
	size := n * s.model.kvDim
	p := &Prefix{model: s.model, n: n, k: make([][]float32, len(s.k)), v: make([][]float32, len(s.v))}
	for l := range s.k {
		p.k[l] = slices.Clone(s.k[l][:size])
		p.v[l] = slices.Clone(s.v[l][:size])
	}
	return p, nil
}

// Len is the number of positions p holds.
func (p *Prefix) Len() int { return p.n }

// Free does nothing: a CPU prefix's memory is the garbage collector's.
func (p *Prefix) Free() {}

// Bytes is the memory p's cache copy takes.
func (p *Prefix) Bytes() int { return 2 * len(p.k) * p.n * p.model.kvDim * 4 }

// LoadPrefix makes s continue from p: s must be empty (position 0) and
// belong to the model p came from. Afterwards s holds a private copy of p's
// positions, exactly as if it had run them itself.
func (s *State) LoadPrefix(bp backend.Prefix) error {
	p, ok := bp.(*Prefix)
	if !ok || s.model != p.model {
		return fmt.Errorf("load prefix: prefix belongs to another model")
	}
	if s.pos != 0 {
		return fmt.Errorf("load prefix: state is at position %d, not empty", s.pos)
	}
	s.reserve(p.n)
	for l := range s.k {
		copy(s.k[l], p.k[l])
		copy(s.v[l], p.v[l])
	}
	s.pos = p.n
	return nil
}
