package cuda

import (
	"bytes"
	_ "embed"
)

// kernelsPTX is csrc/kernels.cu compiled by csrc/gen.sh; its first line
// records the digest of the sources it was made from.
//
//go:embed kernels.ptx
var kernelsPTX []byte

// hopperPTX is csrc/kernels_sm90a.cu compiled by csrc/gen.sh: the kernels
// that use Hopper's wgmma (PTX ISA 8.0, target sm_90a), for GPUs of
// compute capability 9.0 alone; its first line records the same digest.
//
//go:embed kernels_sm90a.ptx
var hopperPTX []byte

// ptxDigest returns the source digest recorded in kernelsPTX.
func ptxDigest() string { return digestOf(kernelsPTX) }

// digestOf returns the source digest recorded in a module's first line.
func digestOf(ptx []byte) string {
	line, _, _ := bytes.Cut(ptx, []byte("\n"))
	_, d, _ := bytes.Cut(line, []byte("source-sha256: "))
	return string(d)
}
