//go:build !purego && !linux

package kernels

// requestAMX reports false: the AMX kernel is used on Linux only, where the
// process can ask for the tile state.
func requestAMX() bool { return false }
