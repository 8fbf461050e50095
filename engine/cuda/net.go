package cuda

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"unsafe"

	"github.com/batchtrans/batchtrans/engine/backend"
	"github.com/batchtrans/batchtrans/engine/cuda/driver"
	"github.com/batchtrans/batchtrans/engine/kernels"
	"github.com/batchtrans/batchtrans/engine/llama"
)

// Options say how to build the backend.
type Options struct {
	ModelDir, AdapterDir string
	BF16                 bool // weights and matrix-product inputs in bf16; else float32
	// MaxRows is the most token rows one step may carry, MaxOutputs the
	// most sequences asking for output; the step's buffers are sized for
	// them.
	MaxRows, MaxOutputs int
	// KVBytes caps each GPU's KV cache pool (0: the GPU's free memory
	// after the weights and buffers, less a margin).
	KVBytes int64
}

// pageSize is the positions per KV cache page.
const pageSize = 32

// kvMargin is the free memory left unclaimed on each GPU by the KV pool.
const kvMargin = 1 << 30

// Net is the CUDA backend over every visible GPU: one replica of the
// weights per GPU; each sequence lives on one replica, and a step runs the
// replicas' shares at once. Forward, NewState and Close follow
// backend.Net's rule (one caller at a time); states may be freed from any
// goroutine.
type Net struct {
	cfg      *llama.Config
	bf16     bool
	wgmma    bool // EnvWGMMA: the 128 x 256 products on Hopper's wgmma
	reps     []*replica
	numerics string
	maxRows  int
	maxOut   int
	// guInterleaved says the GPUs hold each layer's gate|up matrix with
	// gate and up rows in alternating groups of guGroup (see guRow), as
	// the products' SwiGLU epilogue needs; set where the intermediate
	// size is a multiple of guGroup.
	guInterleaved bool

	weightBytes, kvPoolBytes int64
	phases                   []Phase // Load's, set once
}

// WeightBytes is each GPU's device memory for the weights.
func (n *Net) WeightBytes() int64 { return n.weightBytes }

// KVPoolBytes is each GPU's device memory for the KV cache pool.
func (n *Net) KVPoolBytes() int64 { return n.kvPoolBytes }

var _ backend.Net = (*Net)(nil)

// Config returns the model's config.
func (n *Net) Config() *llama.Config { return n.cfg }

// Numerics names what makes the bits: the GPU model and architecture, the
// driver that compiled the PTX, and the kernels' source digest.
func (n *Net) Numerics() string { return n.numerics }

// KVBytes is the KV cache size of p positions (one copy): bf16 keys and
// values with bf16 weights, float32 with float32 weights.
func (n *Net) KVBytes(p int) int { return p * n.posBytes() }

// posBytes is one position's keys and values over every layer.
func (n *Net) posBytes() int { return 2 * n.cfg.Layers * n.cfg.KVHeads * n.cfg.HeadDim * n.kvElt() }

// pageBytes is one KV cache page: pageSize positions.
func (n *Net) pageBytes() int64 { return pageSize * int64(n.posBytes()) }

// kvElt is the bytes of one cached key or value element: bf16 with bf16
// weights (as transformers keeps its cache in the model's dtype), float32
// with float32 weights (the f32 mode's bits stay those of an exact cache).
func (n *Net) kvElt() int {
	if n.bf16 {
		return 2
	}
	return 4
}

// NewState returns an empty sequence on the replica with the fewest.
func (n *Net) NewState() (backend.State, error) {
	best := n.reps[0]
	for _, r := range n.reps[1:] {
		if r.live() < best.live() {
			best = r
		}
	}
	best.mu.Lock()
	best.states++
	best.mu.Unlock()
	return &State{r: best, token: -1}, nil
}

// Forward runs the steps, each replica's share on its GPU, at once.
func (n *Net) Forward(steps []backend.Step) error {
	if err := n.check(steps); err != nil {
		return err
	}
	if len(steps) == 0 {
		return nil
	}
	if len(n.reps) == 1 {
		return n.reps[0].forward(steps)
	}
	parts := make([][]backend.Step, len(n.reps))
	for _, st := range steps {
		r := st.State.(*State).r
		parts[r.idx] = append(parts[r.idx], st)
	}
	errs := make([]error, len(n.reps))
	var wg sync.WaitGroup
	for i, r := range n.reps {
		if len(parts[i]) == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = r.forward(parts[i])
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// check validates the steps before anything runs, so that a bad step
// changes no state.
func (n *Net) check(steps []backend.Step) error {
	rows := make([]int, len(n.reps))
	outs := make([]int, len(n.reps))
	for i, st := range steps {
		s, ok := st.State.(*State)
		if !ok || s == nil || s.r == nil || s.r.net != n {
			return fmt.Errorf("cuda: step %d: state is nil, freed or belongs to another model", i)
		}
		if len(st.Tokens) == 0 {
			return fmt.Errorf("cuda: step %d: no tokens", i)
		}
		for j := range i {
			if steps[j].State == s {
				return fmt.Errorf("cuda: steps %d and %d share one state", j, i)
			}
		}
		if s.pos+len(st.Tokens) > n.cfg.MaxPositions {
			return fmt.Errorf("cuda: step %d: %d cached + %d new tokens exceed %d positions: %w",
				i, s.pos, len(st.Tokens), n.cfg.MaxPositions, llama.ErrContextFull)
		}
		for _, tok := range st.Tokens {
			if tok < 0 || tok >= n.cfg.Vocab {
				return fmt.Errorf("cuda: step %d: token id %d outside the vocabulary (%d)", i, tok, n.cfg.Vocab)
			}
		}
		rows[s.r.idx] += len(st.Tokens)
		if st.Out != backend.NoOutput {
			outs[s.r.idx]++
		}
	}
	for i := range n.reps {
		if rows[i] > n.maxRows || outs[i] > n.maxOut {
			return fmt.Errorf("cuda: a step of %d rows and %d outputs on GPU %d; its buffers hold %d and %d", rows[i], outs[i], i, n.maxRows, n.maxOut)
		}
	}
	return nil
}

// Close frees every replica's device memory and context.
func (n *Net) Close() error {
	var errs []error
	for _, r := range n.reps {
		errs = append(errs, r.close())
	}
	n.reps = nil
	return errors.Join(errs...)
}

// State is one sequence on one replica: its KV pages, position and last
// outputs.
type State struct {
	r      *replica // nil once freed
	pos    int
	pages  []int32
	logits []float32
	token  int
}

var (
	_ backend.State  = (*State)(nil)
	_ backend.Prefix = (*Prefix)(nil)
)

// Pos is the number of cached positions.
func (s *State) Pos() int { return s.pos }

// Logits returns the logits of the last step that asked for them.
func (s *State) Logits() []float32 { return s.logits }

// Token returns the greedy token of the last step that asked for output.
func (s *State) Token() int { return s.token }

// Reset empties the cache, returning its pages to the pool.
func (s *State) Reset() {
	if s.r != nil {
		s.r.release(s.pages)
	}
	s.pages, s.pos, s.token = s.pages[:0], 0, -1
}

// Free releases the state's pages; the state is unusable afterwards.
func (s *State) Free() {
	if s.r == nil {
		return
	}
	s.r.release(s.pages)
	s.r.mu.Lock()
	s.r.states--
	s.r.mu.Unlock()
	s.r, s.pages = nil, nil
}

// Snapshot copies the first n positions into a Prefix held on every
// replica, so that a sequence on any GPU can start from it.
func (s *State) Snapshot(n int) (backend.Prefix, error) {
	if s.r == nil {
		return nil, errors.New("cuda: snapshot of a freed state")
	}
	if n <= 0 || n > s.pos {
		return nil, fmt.Errorf("snapshot of %d positions from a cache holding %d", n, s.pos)
	}
	net := s.r.net
	np := (n + pageSize - 1) / pageSize
	p := &Prefix{net: net, n: n, pages: make([][]int32, len(net.reps))}
	for _, r := range net.reps {
		pg, err := r.take(np)
		if err != nil {
			p.Free()
			return nil, err
		}
		p.pages[r.idx] = pg
	}
	var host []byte
	if len(net.reps) > 1 {
		host = make([]byte, int64(np)*s.r.pageBytes)
		if err := s.r.w.do(func() error { return s.r.downloadPages(host, s.pages[:np]) }); err != nil {
			p.Free()
			return nil, err
		}
	}
	for _, r := range net.reps {
		var err error
		if r == s.r {
			err = r.w.do(func() error { return r.copyPages(p.pages[r.idx], s.pages[:np]) })
		} else {
			err = r.w.do(func() error { return r.uploadPages(p.pages[r.idx], host) })
		}
		if err != nil {
			p.Free()
			return nil, err
		}
	}
	return p, nil
}

// LoadPrefix makes an empty state continue from p. The prefix's whole
// pages are shared, not copied: the state writes only from position p.n
// on, and attention reads the same values from them (so many sequences
// of one prompt read its system prompt's keys and values once, through
// L2); a last page the prefix fills in part is copied, as the state
// writes into it.
func (s *State) LoadPrefix(bp backend.Prefix) error {
	p, ok := bp.(*Prefix)
	if !ok || s.r == nil || p.net != s.r.net {
		return errors.New("load prefix: prefix belongs to another model")
	}
	if s.pos != 0 {
		return fmt.Errorf("load prefix: state is at position %d, not empty", s.pos)
	}
	src := p.pages[s.r.idx]
	whole := p.n / pageSize
	pg, err := s.r.take(len(src) - whole)
	if err != nil {
		return err
	}
	if err := s.r.w.do(func() error { return s.r.copyPages(pg, src[whole:]) }); err != nil {
		s.r.release(pg)
		return err
	}
	s.pages, s.pos = append(append(s.pages[:0], s.r.share(src[:whole])...), pg...), p.n
	return nil
}

// Prefix is a read-only copy of a sequence's first positions, on every
// replica.
type Prefix struct {
	net   *Net
	n     int
	pages [][]int32 // per replica
}

// Len is the number of positions held.
func (p *Prefix) Len() int { return p.n }

// Bytes is the device memory the copies hold.
func (p *Prefix) Bytes() int {
	np := (p.n + pageSize - 1) / pageSize
	return np * int(p.net.pageBytes()) * len(p.net.reps)
}

// Free returns the pages to the pools.
func (p *Prefix) Free() {
	for i, pg := range p.pages {
		if pg != nil && i < len(p.net.reps) {
			p.net.reps[i].release(pg)
		}
	}
	p.pages = nil
}

// numericsOf names the bits of the GPUs and the kernels, and the split-K
// rule (Go constants the kernels' digest does not cover).
func numericsOf(g driver.GPU, driverVersion string) string {
	d := ptxDigest()
	return fmt.Sprintf("cuda %s sm_%d%d, driver %s, kernels %s, split-K %d/%d/%d/%d", g.Name, g.Major, g.Minor, driverVersion,
		d[:min(12, len(d))], maxSplits, minRange, splitTiles, splitTile)
}

// sameGPUs refuses replicas whose bits could differ.
func sameGPUs(gpus []driver.GPU) error {
	for _, g := range gpus[1:] {
		if g.Name != gpus[0].Name || g.Major != gpus[0].Major || g.Minor != gpus[0].Minor {
			var names []string
			for _, g := range gpus {
				names = append(names, fmt.Sprintf("%d: %s (%s)", g.Index, g.Name, g.CC()))
			}
			return fmt.Errorf("the visible GPUs differ (%s): their outputs would differ in the last bits; set CUDA_VISIBLE_DEVICES to GPUs of one model", strings.Join(names, ", "))
		}
	}
	return nil
}

// toBF16 rounds src to bf16 into dst exactly as the CPU kernels do.
func toBF16(dst []uint16, src []float32) {
	for i, v := range src {
		dst[i] = kernels.F32ToBF16(v)
	}
}

// bytesOf views a slice's memory.
func bytesOf[T any](s []T) (unsafe.Pointer, int64) {
	if len(s) == 0 {
		return nil, 0
	}
	return unsafe.Pointer(&s[0]), int64(len(s)) * int64(unsafe.Sizeof(s[0]))
}
