//go:build !purego

package kernels

import (
	"syscall"
	"unsafe"
)

// requestAMX asks Linux for the AMX tile data state, which a process must be
// granted (arch_prctl ARCH_REQ_XCOMP_PERM) before its first tile
// instruction, and reports whether it was. The grant covers every thread.
func requestAMX() bool {
	const reqPerm, getPerm, tileData = 0x1023, 0x1022, 18
	if _, _, e := syscall.RawSyscall(syscall.SYS_ARCH_PRCTL, reqPerm, tileData, 0); e != 0 {
		return false
	}
	var mask uint64
	if _, _, e := syscall.RawSyscall(syscall.SYS_ARCH_PRCTL, getPerm, uintptr(unsafe.Pointer(&mask)), 0); e != 0 {
		return false
	}
	return mask&(1<<tileData) != 0
}
