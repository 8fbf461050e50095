package driver

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"unsafe"

	"github.com/ebitengine/purego"
)

// EnvLibrary names the environment variable that overrides where
// libcuda.so.1 is looked for (a full path).
const EnvLibrary = "BATCHTRANS_LIBCUDA"

// libPaths are tried, in order, after the dynamic loader's own search.
var libPaths = []string{
	"/usr/lib/x86_64-linux-gnu/libcuda.so.1",
	"/usr/lib/aarch64-linux-gnu/libcuda.so.1",
	"/usr/lib64/libcuda.so.1",
	"/usr/local/nvidia/lib64/libcuda.so.1",
	"/usr/lib/wsl/lib/libcuda.so.1",
}

// Error is a failed driver call.
type Error struct {
	Call string
	Code int32
	Name string // e.g. CUDA_ERROR_OUT_OF_MEMORY
	Msg  string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s: %s (%d): %s", e.Call, e.Name, e.Code, e.Msg)
}

// Driver status codes the backend tells apart.
const (
	ErrOutOfMemory    = 2
	ErrNoDevice       = 100
	ErrUnsupportedPTX = 222
)

// IsCode reports whether err is a driver Error with the given code.
func IsCode(err error, code int32) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

// Lib is the loaded driver library.
type Lib struct {
	Path    string // where it was loaded from
	Version int    // cuDriverGetVersion: 1000*major + 10*minor
	h       uintptr
	fn      map[string]uintptr
}

var (
	loadOnce sync.Once
	loaded   *Lib
	loadErr  error
)

// Load opens libcuda and calls cuInit once per process; later calls return
// the same result.
func Load() (*Lib, error) {
	loadOnce.Do(func() { loaded, loadErr = open() })
	return loaded, loadErr
}

// symbols the backend calls; a driver that lacks one is too old.
var symbols = []string{
	"cuInit", "cuDriverGetVersion", "cuGetErrorName", "cuGetErrorString",
	"cuDeviceGetCount", "cuDeviceGet", "cuDeviceGetName", "cuDeviceTotalMem_v2", "cuDeviceGetAttribute",
	"cuDevicePrimaryCtxRetain", "cuDevicePrimaryCtxRelease", "cuCtxSetCurrent",
	"cuMemGetInfo_v2", "cuMemAlloc_v2", "cuMemFree_v2", "cuMemAllocHost_v2", "cuMemFreeHost",
	"cuMemcpyHtoD_v2", "cuMemcpy2D_v2", "cuMemcpyDtoH_v2", "cuMemcpyDtoDAsync_v2", "cuMemcpyHtoDAsync_v2", "cuMemcpyDtoHAsync_v2",
	"cuModuleLoadDataEx", "cuModuleGetFunction", "cuModuleUnload", "cuLaunchKernel", "cuFuncSetAttribute",
	"cuStreamCreate", "cuStreamSynchronize", "cuStreamDestroy_v2",
	"cuEventCreate", "cuEventRecord", "cuEventSynchronize", "cuEventElapsedTime", "cuEventDestroy_v2",
	"cuStreamBeginCapture_v2", "cuStreamEndCapture", "cuGraphInstantiateWithFlags", "cuGraphLaunch",
	"cuGraphDestroy", "cuGraphExecDestroy",
}

// optional are the functions the backend uses where the driver has them
// (CUDA 12.0 and later: tensor maps, for Hopper's copy engine; launches
// with attributes, for programmatic dependent launch).
var optional = []string{"cuTensorMapEncodeTiled", "cuLaunchKernelEx"}

func open() (*Lib, error) {
	if runtime.GOOS != "linux" {
		return nil, fmt.Errorf("the CUDA backend runs on Linux only (this is %s)", runtime.GOOS)
	}
	var cands []string
	if p := os.Getenv(EnvLibrary); p != "" {
		cands = []string{p}
	} else {
		cands = append([]string{"libcuda.so.1"}, libPaths...)
	}
	var h uintptr
	var tried []string
	for _, p := range cands {
		var err error
		if h, err = purego.Dlopen(p, purego.RTLD_NOW|purego.RTLD_GLOBAL); err == nil {
			break
		}
		tried = append(tried, fmt.Sprintf("%s (%v)", p, err))
	}
	if h == 0 {
		return nil, fmt.Errorf("no NVIDIA driver library: tried %s; set %s to its path", strings.Join(tried, ", "), EnvLibrary)
	}
	l := &Lib{h: h, fn: map[string]uintptr{}, Path: mappedPath("libcuda.so")}
	for _, s := range symbols {
		p, err := purego.Dlsym(h, s)
		if err != nil || p == 0 {
			return nil, fmt.Errorf("%s lacks %s: the NVIDIA driver is too old", l.Path, s)
		}
		l.fn[s] = p
	}
	for _, s := range optional {
		if p, err := purego.Dlsym(h, s); err == nil && p != 0 {
			l.fn[s] = p
		}
	}
	if err := l.call("cuInit", 0); err != nil {
		return nil, err
	}
	var v int32
	if err := l.call("cuDriverGetVersion", uintptr(unsafe.Pointer(&v))); err != nil {
		return nil, err
	}
	l.Version = int(v)
	return l, nil
}

// mappedPath returns the file of the first mapping whose path contains
// name, from /proc/self/maps ("" if none).
func mappedPath(name string) string {
	b, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if i := strings.IndexByte(line, '/'); i >= 0 && strings.Contains(line[i:], name) {
			return line[i:]
		}
	}
	return ""
}

// call invokes the named driver function and turns its status into an
// Error. Arguments that are pointers converted to uintptr in the call's
// argument list escape to the heap (uintptrescapes), so the memory they
// point to cannot move while the driver uses it.
//
//go:uintptrescapes
func (l *Lib) call(name string, args ...uintptr) error {
	r, _, _ := purego.SyscallN(l.fn[name], args...)
	if c := int32(r); c != 0 {
		return l.errorOf(name, c)
	}
	return nil
}

func (l *Lib) errorOf(call string, c int32) error {
	e := &Error{Call: call, Code: c, Name: "CUDA_ERROR_" + fmt.Sprint(c), Msg: "unknown error"}
	var p uintptr
	if r, _, _ := purego.SyscallN(l.fn["cuGetErrorName"], uintptr(c), uintptr(unsafe.Pointer(&p))); r == 0 && p != 0 {
		e.Name = cString(p)
	}
	if r, _, _ := purego.SyscallN(l.fn["cuGetErrorString"], uintptr(c), uintptr(unsafe.Pointer(&p))); r == 0 && p != 0 {
		e.Msg = cString(p)
	}
	return e
}

// cString copies the NUL-terminated string at p (static memory the driver
// owns, outside the Go heap).
func cString(p uintptr) string {
	start := *(*unsafe.Pointer)(unsafe.Pointer(&p))
	var b []byte
	for i := range 4096 {
		c := *(*byte)(unsafe.Add(start, i))
		if c == 0 {
			break
		}
		b = append(b, c)
	}
	return string(b)
}

func cStr(s string) *byte {
	b := append([]byte(s), 0)
	return &b[0]
}

// VersionString formats a driver API version: 13000 -> "13.0".
func VersionString(v int) string { return fmt.Sprintf("%d.%d", v/1000, v%1000/10) }
