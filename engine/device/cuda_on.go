//go:build !nocuda

package device

import "github.com/batchtrans/batchtrans/engine/cuda/driver"

// HasCUDABackend reports whether this build carries the CUDA backend.
const HasCUDABackend = true

// probeCUDA asks the CUDA driver (loaded at run time) what it sees.
func probeCUDA() *CUDAInfo {
	r := driver.Probe()
	c := &CUDAInfo{Library: r.Library, Driver: r.Driver}
	for _, g := range r.GPUs {
		c.GPUs = append(c.GPUs, GPU{Name: g.Name, Memory: g.Memory, CC: g.CC()})
	}
	if r.Err != nil {
		c.Err = r.Err.Error()
	}
	return c
}
