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

// ptxDigest returns the source digest recorded in kernelsPTX.
func ptxDigest() string {
	line, _, _ := bytes.Cut(kernelsPTX, []byte("\n"))
	_, d, _ := bytes.Cut(line, []byte("source-sha256: "))
	return string(d)
}
