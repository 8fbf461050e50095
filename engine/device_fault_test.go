package engine

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/batchtrans/batchtrans/engine/backend"
	"github.com/batchtrans/batchtrans/engine/llama"
)

// faultyNet is a backend whose device fails at its failAt-th step, as a
// GPU fault would; it counts the states alive to check they are freed.
type faultyNet struct {
	backend.Net
	steps, failAt int
	live          atomic.Int64
}

func (f *faultyNet) Forward(steps []backend.Step) error {
	f.steps++
	if f.steps >= f.failAt {
		return fmt.Errorf("cuda: GPU 0: launch gemm: CUDA_ERROR_ILLEGAL_ADDRESS: %w", backend.ErrDevice)
	}
	inner := make([]backend.Step, len(steps))
	for i, st := range steps {
		inner[i] = st
		inner[i].State = st.State.(*countedState).State
	}
	return f.Net.Forward(inner)
}

func (f *faultyNet) NewState() (backend.State, error) {
	s, err := f.Net.NewState()
	if err == nil {
		f.live.Add(1)
		s = &countedState{State: s, live: &f.live}
	}
	return s, err
}

type countedState struct {
	backend.State
	live  *atomic.Int64
	freed bool
}

func (s *countedState) Free() {
	if !s.freed {
		s.freed = true
		s.live.Add(-1)
	}
	s.State.Free()
}

// A device fault fails every request in flight with the device's error
// (not as a row error: the job must stop), later requests fail at once,
// and the step loop frees the states it held.
func TestDeviceFaultEndsTheModel(t *testing.T) {
	cfg := testConfig()
	net := &faultyNet{Net: llama.NewCPU(testNet(t, cfg, 42)), failAt: 6}
	m, err := newModel(cfg, net, letterCodec{}, 4, 32)
	require.NoError(t, err)
	var wg sync.WaitGroup
	errs := make([]error, 6)
	for i := range errs {
		wg.Go(func() {
			_, errs[i] = m.Generate(t.Context(), userReq("the quick brown fox", 20))
		})
	}
	wg.Wait()
	for i, err := range errs {
		require.Error(t, err, "request %d", i)
		assert.ErrorIs(t, err, backend.ErrDevice, "request %d", i)
		var re *RequestError
		assert.False(t, errors.As(err, &re), "request %d: a device fault is not the row's fault", i)
	}
	_, err = m.Generate(t.Context(), userReq("later", 3))
	assert.ErrorIs(t, err, backend.ErrDevice)
	assert.Eventually(t, func() bool {
		m.sched.mu.Lock()
		defer m.sched.mu.Unlock()
		return !m.sched.running
	}, 10*time.Second, time.Millisecond)
	assert.Zero(t, net.live.Load(), "states left unfreed")
}
