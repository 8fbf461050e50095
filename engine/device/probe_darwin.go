//go:build darwin

package device

import (
	"strings"

	"golang.org/x/sys/unix"
)

// darwinCPU reads the CPU brand and whether this is Apple Silicon (native
// arm64, or an amd64 binary translated by Rosetta).
func darwinCPU(goarch string) (model string, appleSilicon, rosetta bool) {
	model, _ = unix.Sysctl("machdep.cpu.brand_string")
	if t, err := unix.SysctlUint32("sysctl.proc_translated"); err == nil && t == 1 {
		rosetta = true
	}
	appleSilicon = goarch == "arm64" || rosetta || strings.HasPrefix(model, "Apple")
	return model, appleSilicon, rosetta
}
