package cuda

import (
	"runtime"

	"github.com/batchtrans/batchtrans/engine/cuda/driver"
)

// worker runs closures on one goroutine locked to one OS thread, where its
// GPU's context is current: every driver call of a replica goes through it.
type worker struct {
	jobs chan func()
}

// startWorker starts the goroutine and makes ctx current on its thread.
func startWorker(ctx *driver.Context) (*worker, error) {
	w := &worker{jobs: make(chan func())}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := ctx.MakeCurrent(); err != nil {
			errc <- err
			return
		}
		errc <- nil
		for f := range w.jobs {
			f()
		}
	}()
	if err := <-errc; err != nil {
		return nil, err
	}
	return w, nil
}

// do runs f on the worker's thread and returns its error.
func (w *worker) do(f func() error) error {
	done := make(chan error, 1)
	w.jobs <- func() { done <- f() }
	return <-done
}

// stop ends the goroutine (its thread is released with it).
func (w *worker) stop() { close(w.jobs) }
