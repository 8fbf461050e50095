package cuda

import (
	"os"
	"runtime"
	"time"

	"github.com/batchtrans/batchtrans/engine/cuda/driver"
)

// worker runs closures on one goroutine locked to one OS thread, where its
// GPU's context is current: every driver call of a replica goes through it.
//
// A step is one closure, and a decode runs them back to back with little
// host work between, so both sides poll for a while before they block: a
// parked thread takes tens of microseconds to wake, a fair part of a
// one-sequence step (about a millisecond).
type worker struct {
	jobs chan func()
	spin time.Duration // how long each side polls before it blocks
}

// workerSpin is how long the worker and its callers poll. EnvWorkerSpin
// set to 0 turns polling off (for measuring one against the other).
const (
	workerSpin    = time.Millisecond
	EnvWorkerSpin = "BATCHTRANS_CUDA_SPIN"
)

// startWorker starts the goroutine and makes ctx current on its thread.
func startWorker(ctx *driver.Context) (*worker, error) {
	w := &worker{jobs: make(chan func(), 1), spin: workerSpin}
	if os.Getenv(EnvWorkerSpin) == "0" {
		w.spin = 0
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := ctx.MakeCurrent(); err != nil {
			errc <- err
			return
		}
		errc <- nil
		for {
			f, ok := poll(w.jobs, w.spin)
			if !ok {
				return
			}
			f()
		}
	}()
	if err := <-errc; err != nil {
		return nil, err
	}
	return w, nil
}

// poll receives from c, checking it without blocking for up to spin
// before it blocks; ok is false once c is closed.
func poll[T any](c chan T, spin time.Duration) (v T, ok bool) {
	until := time.Now().Add(spin)
	for i := 0; spin > 0; i++ {
		select {
		case v, ok = <-c:
			return v, ok
		default:
		}
		if i%64 == 63 && time.Now().After(until) { // the clock every 64 tries
			break
		}
	}
	v, ok = <-c
	return v, ok
}

// do runs f on the worker's thread and returns its error.
func (w *worker) do(f func() error) error {
	done := make(chan error, 1)
	w.jobs <- func() { done <- f() }
	err, _ := poll(done, w.spin)
	return err
}

// stop ends the goroutine (its thread is released with it).
func (w *worker) stop() { close(w.jobs) }
