//go:build nocuda

package device

// HasCUDABackend reports whether this build carries the CUDA backend: a
// -tags nocuda build does not (it is fully static).
const HasCUDABackend = false

// probeCUDA is nil: there is no driver to ask.
var probeCUDA func() *CUDAInfo
