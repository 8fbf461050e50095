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

// kernelsSASS is the same kernels compiled by csrc/gen.sh to machine code
// for sm_80 (and so sm_86, sm_87, sm_89) and sm_90, which those GPUs load
// without the driver compiling the PTX; kernelsSASSSum records the sources'
// digest and the file's.
//
//go:embed kernels.fatbin
var kernelsSASS []byte

//go:embed kernels.fatbin.sum
var kernelsSASSSum string

// hasSASS reports whether kernelsSASS holds machine code for a GPU of
// compute capability major.minor.
func hasSASS(major, minor int) bool { return major == 8 || major == 9 && minor == 0 }

// ptxDigest returns the source digest recorded in kernelsPTX.
func ptxDigest() string {
	line, _, _ := bytes.Cut(kernelsPTX, []byte("\n"))
	_, d, _ := bytes.Cut(line, []byte("source-sha256: "))
	return string(d)
}
