package driver

import (
	"fmt"
	"strings"
)

// Report is what Probe found: the driver library and the GPUs, or why
// there are none.
type Report struct {
	Library string // the driver library's path
	Driver  string // the driver API version, "13.0"
	GPUs    []GPU
	// Err says why CUDA cannot be used (no driver, no GPU, GPU too old);
	// nil when it can.
	Err error
}

// MinMajor is the oldest compute capability the kernels run on (8.0,
// Ampere: their bf16 tensor-core instructions need it).
const MinMajor = 8

// Probe loads the driver and lists the GPUs. It never panics; a machine
// without CUDA gets a Report whose Err says why.
func Probe() Report {
	l, err := Load()
	if err != nil {
		return Report{Err: err}
	}
	r := Report{Library: l.Path, Driver: VersionString(l.Version)}
	if r.GPUs, err = l.GPUs(); err != nil {
		r.Err = err
		return r
	}
	if len(r.GPUs) == 0 {
		r.Err = fmt.Errorf("the NVIDIA driver %s sees no GPU (CUDA_VISIBLE_DEVICES may hide them)", r.Driver)
		return r
	}
	var old []string
	for _, g := range r.GPUs {
		if g.Major < MinMajor {
			old = append(old, fmt.Sprintf("GPU %d %s has compute capability %s", g.Index, g.Name, g.CC()))
		}
	}
	if len(old) > 0 {
		r.Err = fmt.Errorf("%s; the CUDA kernels need %d.0 or newer", strings.Join(old, ", "), MinMajor)
	}
	return r
}
