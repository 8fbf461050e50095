package cuda

import (
	"math/rand/v2"
	"unsafe"
)

// Ceilings are the first GPU's rates measured in place, the bounds a
// benchmark compares against.
type Ceilings struct {
	// BandwidthBS is a device-to-device copy's bytes read plus written
	// per second.
	BandwidthBS float64
	// GemmFLOPs is this package's bf16 matrix product on an 8192-cube of
	// random values, in float operations per second: the rate its own
	// kernel reaches, not the hardware's peak.
	GemmFLOPs float64
}

// Measure times a 1 GiB device copy and an 8192 x 8192 x 8192 bf16
// product on the first GPU (a few hundred milliseconds; it needs about 1.6
// GiB of free device memory).
func (n *Net) Measure() (Ceilings, error) {
	r := n.reps[0]
	var c Ceilings
	const copyBytes = 1 << 30
	const dim = 8192
	host := make([]uint16, dim*dim)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range host {
		host[i] = 0x3c00 | uint16(rng.IntN(0x7f)) // bf16 in [2^-7, 2^-6): no overflow over K=8192
	}
	err := r.w.do(func() error {
		a, err := r.ctx.Alloc(copyBytes)
		if err != nil {
			return err
		}
		defer r.ctx.Free(a)
		b, err := r.ctx.Alloc(copyBytes)
		if err != nil {
			return err
		}
		defer r.ctx.Free(b)
		if err := r.ctx.CopyIn(a, unsafe.Pointer(&host[0]), int64(len(host))*2); err != nil {
			return err
		}
		if err := r.ctx.CopyIn(b, unsafe.Pointer(&host[0]), int64(len(host))*2); err != nil {
			return err
		}
		ms, err := r.timed(3, func() error { return r.ctx.CopyDeviceAsync(b, a, copyBytes, r.st) })
		if err != nil {
			return err
		}
		c.BandwidthBS = 2 * copyBytes / (ms / 1e3)
		if !n.bf16 {
			return nil
		}
		y, err := r.ctx.Alloc(dim * dim * 4)
		if err != nil {
			return err
		}
		defer r.ctx.Free(y)
		// 8192 columns take one range of K (splitK): one launch is
		// the whole product.
		ms, err = r.timed(3, func() error { return r.gemm(y, a, b, dim, dim, dim, 1, false) })
		c.GemmFLOPs = 2 * dim * dim * dim / (ms / 1e3)
		return err
	})
	return c, err
}

// timed runs f once to warm up, then reps times between two events, and
// returns the mean milliseconds per run (worker only).
func (r *replica) timed(reps int, f func() error) (float64, error) {
	if err := f(); err != nil {
		return 0, err
	}
	start, err := r.ctx.NewEvent()
	if err != nil {
		return 0, err
	}
	defer r.ctx.DestroyEvent(start)
	end, err := r.ctx.NewEvent()
	if err != nil {
		return 0, err
	}
	defer r.ctx.DestroyEvent(end)
	if err := r.ctx.Record(start, r.st); err != nil {
		return 0, err
	}
	for range reps {
		if err := f(); err != nil {
			return 0, err
		}
	}
	if err := r.ctx.Record(end, r.st); err != nil {
		return 0, err
	}
	ms, err := r.ctx.Elapsed(start, end)
	return float64(ms) / float64(reps), err
}
