// Package procstat reads this process's resource use from /proc (Linux):
// peak resident memory and CPU time. Benchmarks and memory tests share it.
package procstat

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// PeakRSS reads the process's peak resident set (VmHWM) from
// /proc/self/status.
func PeakRSS() (int64, error) {
	if runtime.GOOS != "linux" {
		return 0, fmt.Errorf("no /proc/self/status on %s", runtime.GOOS)
	}
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, fmt.Errorf("read peak RSS: %w", err)
	}
	return ParseVmHWM(b)
}

// CPUTime is the process's user plus system CPU time so far, from
// /proc/self/stat (clock ticks of 1/100 s, the Linux USER_HZ).
func CPUTime() (time.Duration, error) {
	if runtime.GOOS != "linux" {
		return 0, fmt.Errorf("no /proc/self/stat on %s", runtime.GOOS)
	}
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0, fmt.Errorf("read CPU time: %w", err)
	}
	return ParseStatCPU(b)
}

// ParseStatCPU reads utime and stime (fields 14 and 15) of a /proc stat
// line; the command name (field 2) may hold spaces and parentheses, so the
// fields are counted after its last ')'.
func ParseStatCPU(stat []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("/proc/self/stat: no command name")
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/self/stat: %d fields after the command name, want at least 13", len(f))
	}
	var ticks int64
	for _, s := range f[11:13] {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v < 0 {
			return 0, fmt.Errorf("/proc/self/stat: CPU time %q is not a tick count", s)
		}
		ticks += v
	}
	return time.Duration(ticks) * (time.Second / 100), nil
}

// ParseVmHWM finds the "VmHWM:  1234 kB" line of a /proc status file.
func ParseVmHWM(status []byte) (int64, error) {
	for line := range bytes.Lines(status) {
		rest, ok := bytes.CutPrefix(line, []byte("VmHWM:"))
		if !ok {
			continue
		}
		f := strings.Fields(string(rest))
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("/proc/self/status: VmHWM line %q is not \"N kB\"", strings.TrimSpace(string(line)))
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || kb < 0 {
			return 0, fmt.Errorf("/proc/self/status: VmHWM value %q is not a size", f[0])
		}
		return kb << 10, nil
	}
	return 0, errors.New("/proc/self/status: no VmHWM line")
}
