// Package parallel runs element-wise work over a range in chunks on every
// core: for loading and converting weights, where each element is
// computed alone, so the split changes the time, never the result.
package parallel

import (
	"runtime"
	"sync"
)

// For calls fn(lo, hi) for consecutive chunks [lo, hi) of [0, n), each of
// chunk elements but the last, at most GOMAXPROCS at a time, and returns
// when all are done. Ranges of one chunk or less run on the caller's
// goroutine.
func For(n, chunk int, fn func(lo, hi int)) {
	if chunk <= 0 {
		chunk = n
	}
	if n <= chunk {
		if n > 0 {
			fn(0, n)
		}
		return
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for lo := 0; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			fn(lo, hi)
			<-sem
		}()
	}
	wg.Wait()
}
