package llama

import (
	"sync"

	"github.com/batchtrans/batchtrans/engine/backend"
	"github.com/batchtrans/batchtrans/engine/kernels"
)

// CPUNumerics names the CPU kernels' bits (backend.Net.Numerics). Every
// kernel set of this package's kernels gives the same bits, on amd64 and
// arm64 alike, so one name covers them; it changes when a kernel's
// arithmetic does. v2: bf16 products round their activations to bf16
// (docs/numerics.md), and the Go kernels fuse float32 multiply-adds.
const CPUNumerics = "cpu kernels v2"

// CPU is the CPU backend: a Model and the workspace of the step loop that
// drives it. Forward calls are serialised; the Model itself stays
// shareable.
type CPU struct {
	m  *Model
	mu sync.Mutex
	ws Workspace
}

var _ backend.Net = (*CPU)(nil)

// NewCPU returns the CPU backend over m.
func NewCPU(m *Model) *CPU { return &CPU{m: m} }

// Model returns the network the backend runs.
func (c *CPU) Model() *Model { return c.m }

// NewState returns an empty state; on the CPU it cannot fail.
func (c *CPU) NewState() (backend.State, error) { return c.m.NewState(), nil }

// Forward runs one step (Model.Forward) with the backend's workspace.
func (c *CPU) Forward(steps []backend.Step) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m.Forward(&c.ws, steps)
}

// Numerics returns CPUNumerics.
func (c *CPU) Numerics() string { return CPUNumerics }

// KVBytes is the float32 KV cache size of n positions.
func (c *CPU) KVBytes(n int) int { return 2 * c.m.cfg.Layers * n * c.m.kvDim * 4 }

// WeightBytes is the memory of the weight matrices (a tied head counted
// once) and norms.
func (c *CPU) WeightBytes() int64 {
	w := c.m.w
	n := w.Embed.Bytes() + int64(len(w.Norm))*4
	if w.LMHead != w.Embed {
		n += w.LMHead.Bytes()
	}
	for _, l := range w.Layers {
		for _, m := range []*kernels.Matrix{l.Q, l.K, l.V, l.O, l.Gate, l.Up, l.Down} {
			n += m.Bytes()
		}
		n += int64(len(l.AttnNorm)+len(l.MLPNorm)) * 4
	}
	return n
}

// Close does nothing: the weights belong to the garbage collector.
func (c *CPU) Close() error { return nil }
