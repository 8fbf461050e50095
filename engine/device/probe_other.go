//go:build !darwin

package device

// darwinCPU is only meaningful on macOS.
func darwinCPU(string) (string, bool, bool) { return "", false, false }
