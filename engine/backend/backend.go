// Package backend is the seam between the engine's scheduler and the
// devices that run the network. The scheduler (package engine) plans each
// forward step: which sequences take part and which of their tokens; a
// backend owns the weights, the per-sequence KV caches and the step itself.
// engine/llama is the CPU backend, engine/cuda the NVIDIA GPU one; both are
// held to the same contracts, with the CPU as the reference.
//
// It imports nothing of the engine: a backend depends on this package, not
// the other way round.
package backend

import "errors"

// ErrDevice marks a failure of the device itself (a GPU fault, a lost
// context, a driver error) rather than of a request: the backend can no
// longer be trusted, every sequence on it is lost, and the run must stop.
// Sequences' states are then unusable; only Free and Close are safe.
var ErrDevice = errors.New("device failure")

// Output says what a step must leave in a sequence's state after its last
// token.
type Output uint8

const (
	// NoOutput: nothing (a prefill chunk that is not the prompt's last).
	NoOutput Output = iota
	// Argmax: the greedy next token, State.Token. A backend may compute
	// it where the logits are (on the GPU) and never copy them.
	Argmax
	// Logits: the full next-token logits, State.Logits, and Token.
	Logits
)

// Step is one sequence's share of a forward step: its new tokens, which
// take positions State.Pos() onwards. A prefill chunk has many tokens, a
// decode step one.
type Step struct {
	State  State
	Tokens []int
	Out    Output
}

// Net is a loaded network on one device. Forward calls are serialised by
// the caller (one step loop per Net); NewState, Close and the methods of
// states and prefixes follow the same rule unless an implementation says
// otherwise.
type Net interface {
	// NewState returns an empty sequence state (position 0). It fails when
	// the device has no room for another sequence.
	NewState() (State, error)
	// Forward runs one step over several sequences at once. A sequence's
	// results are bitwise identical whatever else shares the step, and
	// whether its prompt is fed whole or in chunks. An error that does not
	// wrap ErrDevice changes no state; one that does leaves every state of
	// this Net unusable.
	Forward(steps []Step) error
	// Numerics names what makes this Net's bits: two Nets with the same
	// dtype and the same Numerics produce identical outputs. A job's
	// checkpoint records it so that a resume never mixes two.
	Numerics() string
	// KVBytes is the memory the KV cache of n positions takes (a
	// sequence's or a prefix's).
	KVBytes(n int) int
	// Close releases the device memory of the weights. States and
	// prefixes must be freed first.
	Close() error
}

// State is one sequence's mutable run state on its Net: the KV cache, its
// position and the outputs of the last step that asked for them.
type State interface {
	// Pos is the number of tokens in the cache.
	Pos() int
	// Logits are the next-token logits after a step with Out == Logits;
	// the slice is overwritten by the next such step.
	Logits() []float32
	// Token is the greedy next token (the lowest index among the largest
	// logits, NaN never chosen unless all are) after a step with Out !=
	// NoOutput.
	Token() int
	// Reset empties the cache so the state can serve a new sequence.
	Reset()
	// Snapshot copies the first n positions of the cache (1 <= n <= Pos)
	// into a read-only Prefix.
	Snapshot(n int) (Prefix, error)
	// LoadPrefix makes an empty state continue from p, exactly as if it
	// had run p's positions itself.
	LoadPrefix(p Prefix) error
	// Free releases the state's device memory; the state is unusable
	// afterwards. Freeing twice is harmless.
	Free()
}

// Prefix is a read-only copy of the first positions of a sequence's KV
// cache, shared by any number of states that start from it.
type Prefix interface {
	Len() int   // positions held
	Bytes() int // memory held
	// Free releases the prefix's memory once no state is being loaded
	// from it. Freeing twice is harmless.
	Free()
}
