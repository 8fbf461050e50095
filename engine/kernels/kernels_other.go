//go:build purego || (!amd64 && !arm64)

package kernels

// archImpls lists the assembly implementations; there are none here.
func archImpls() []*impl { return nil }
