package driver

import (
	"fmt"
	"runtime"
	"strings"
	"unsafe"

	"github.com/ebitengine/purego"
)

// GPU describes one visible device.
type GPU struct {
	Index        int // ordinal among the visible devices (CUDA_VISIBLE_DEVICES applies)
	Name         string
	Memory       int64 // bytes
	Major, Minor int   // compute capability
	SMs          int
	// SharedOptin is the most shared memory one block may use (bytes),
	// dynamic shared memory opted in to with Func.SetMaxSharedBytes
	// included.
	SharedOptin int
}

// CC is the compute capability as "9.0".
func (g GPU) CC() string { return fmt.Sprintf("%d.%d", g.Major, g.Minor) }

// device attributes (CUdevice_attribute).
const (
	attrSMCount     = 16
	attrCCMajor     = 75
	attrCCMinor     = 76
	attrSharedOptin = 97 // CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN
)

// GPUs lists the visible devices.
func (l *Lib) GPUs() ([]GPU, error) {
	var n int32
	if err := l.call("cuDeviceGetCount", uintptr(unsafe.Pointer(&n))); err != nil {
		return nil, err
	}
	out := make([]GPU, 0, n)
	for i := range int(n) {
		var dev int32
		if err := l.call("cuDeviceGet", uintptr(unsafe.Pointer(&dev)), uintptr(i)); err != nil {
			return nil, err
		}
		name := make([]byte, 256)
		if err := l.call("cuDeviceGetName", uintptr(unsafe.Pointer(&name[0])), 256, uintptr(dev)); err != nil {
			return nil, err
		}
		g := GPU{Index: i, Name: strings.TrimRight(string(name), "\x00")}
		var mem uint64
		if err := l.call("cuDeviceTotalMem_v2", uintptr(unsafe.Pointer(&mem)), uintptr(dev)); err != nil {
			return nil, err
		}
		g.Memory = int64(mem)
		for _, a := range []struct {
			attr int
			dst  *int
		}{{attrCCMajor, &g.Major}, {attrCCMinor, &g.Minor}, {attrSMCount, &g.SMs}, {attrSharedOptin, &g.SharedOptin}} {
			var v int32
			if err := l.call("cuDeviceGetAttribute", uintptr(unsafe.Pointer(&v)), uintptr(a.attr), uintptr(dev)); err != nil {
				return nil, err
			}
			*a.dst = int(v)
		}
		out = append(out, g)
	}
	return out, nil
}

// Context is a device's primary context. Its methods must run on an OS
// thread where it is current (MakeCurrent).
type Context struct {
	l   *Lib
	dev int32
	ctx uintptr
}

// Retain takes device ordinal i's primary context.
func (l *Lib) Retain(i int) (*Context, error) {
	c := &Context{l: l}
	if err := l.call("cuDeviceGet", uintptr(unsafe.Pointer(&c.dev)), uintptr(i)); err != nil {
		return nil, err
	}
	if err := l.call("cuDevicePrimaryCtxRetain", uintptr(unsafe.Pointer(&c.ctx)), uintptr(c.dev)); err != nil {
		return nil, err
	}
	return c, nil
}

// MakeCurrent makes the context current on the calling OS thread; the
// caller keeps its goroutine locked to that thread while it uses it.
func (c *Context) MakeCurrent() error { return c.l.call("cuCtxSetCurrent", c.ctx) }

// Release gives the primary context back.
func (c *Context) Release() error { return c.l.call("cuDevicePrimaryCtxRelease", uintptr(c.dev)) }

// MemInfo returns free and total device memory.
func (c *Context) MemInfo() (free, total int64, err error) {
	var f, t uint64
	err = c.l.call("cuMemGetInfo_v2", uintptr(unsafe.Pointer(&f)), uintptr(unsafe.Pointer(&t)))
	return int64(f), int64(t), err
}

// Ptr is a device address.
type Ptr uint64

// Add offsets p by n bytes.
func (p Ptr) Add(n int64) Ptr { return p + Ptr(n) }

// Alloc allocates n bytes of device memory.
func (c *Context) Alloc(n int64) (Ptr, error) {
	var p uint64
	if err := c.l.call("cuMemAlloc_v2", uintptr(unsafe.Pointer(&p)), uintptr(n)); err != nil {
		return 0, fmt.Errorf("allocate %d MiB on the GPU: %w", n>>20, err)
	}
	return Ptr(p), nil
}

// Free releases device memory from Alloc (0 is ignored).
func (c *Context) Free(p Ptr) error {
	if p == 0 {
		return nil
	}
	return c.l.call("cuMemFree_v2", uintptr(p))
}

// AllocHost allocates n bytes of page-locked host memory, which copies
// reach at full speed and asynchronously.
func (c *Context) AllocHost(n int) ([]byte, error) {
	var p unsafe.Pointer
	if err := c.l.call("cuMemAllocHost_v2", uintptr(unsafe.Pointer(&p)), uintptr(n)); err != nil {
		return nil, err
	}
	return unsafe.Slice((*byte)(p), n), nil
}

// FreeHost releases memory from AllocHost.
func (c *Context) FreeHost(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	return c.l.call("cuMemFreeHost", uintptr(unsafe.Pointer(&b[0])))
}

// CopyIn copies n bytes from host memory at src to dst (synchronously).
func (c *Context) CopyIn(dst Ptr, src unsafe.Pointer, n int64) error {
	if n == 0 {
		return nil
	}
	return c.l.call("cuMemcpyHtoD_v2", uintptr(dst), uintptr(src), uintptr(n))
}

// memcpy2D is the driver's CUDA_MEMCPY2D (64-bit layout).
type memcpy2D struct {
	srcX, srcY uintptr
	srcType    uint32
	_          uint32
	srcHost    unsafe.Pointer
	srcDevice  Ptr
	srcArray   uintptr
	srcPitch   uintptr
	dstX, dstY uintptr
	dstType    uint32
	_          uint32
	dstHost    unsafe.Pointer
	dstDevice  Ptr
	dstArray   uintptr
	dstPitch   uintptr
	width      uintptr
	height     uintptr
}

// Memory types of memcpy2D (CUmemorytype).
const (
	memHost   = 1
	memDevice = 2
)

// CopyIn2D copies height rows of width bytes from host memory at src,
// rows spitch apart, to dst, rows dpitch apart (synchronously): one call
// where CopyIn would take one a row.
func (c *Context) CopyIn2D(dst Ptr, dpitch int64, src unsafe.Pointer, spitch, width, height int64) error {
	if width == 0 || height == 0 {
		return nil
	}
	m := memcpy2D{srcType: memHost, srcHost: src, srcPitch: uintptr(spitch),
		dstType: memDevice, dstDevice: dst, dstPitch: uintptr(dpitch), width: uintptr(width), height: uintptr(height)}
	err := c.l.call("cuMemcpy2D_v2", uintptr(unsafe.Pointer(&m)))
	runtime.KeepAlive(&m)
	return err
}

// CopyOut copies n bytes from src to host memory at dst (synchronously).
func (c *Context) CopyOut(dst unsafe.Pointer, src Ptr, n int64) error {
	if n == 0 {
		return nil
	}
	return c.l.call("cuMemcpyDtoH_v2", uintptr(dst), uintptr(src), uintptr(n))
}

// CopyDeviceAsync queues a copy between device buffers on s.
func (c *Context) CopyDeviceAsync(dst, src Ptr, n int64, s Stream) error {
	if n == 0 {
		return nil
	}
	return c.l.call("cuMemcpyDtoDAsync_v2", uintptr(dst), uintptr(src), uintptr(n), uintptr(s))
}

// Module is loaded GPU code.
type Module struct {
	c *Context
	m uintptr
}

// JIT options of cuModuleLoadDataEx.
const (
	jitErrorLogBuffer          = 5
	jitErrorLogBufferSizeBytes = 6
)

// LoadModule loads PTX (the driver compiles it for the GPU at hand); a
// compile error carries the JIT's log.
func (c *Context) LoadModule(ptx []byte) (*Module, error) {
	src := append(append([]byte(nil), ptx...), 0)
	logBuf := make([]byte, 8192)
	opts := []int32{jitErrorLogBuffer, jitErrorLogBufferSizeBytes}
	vals := []uintptr{uintptr(unsafe.Pointer(&logBuf[0])), uintptr(len(logBuf))}
	var m uintptr
	if err := c.l.call("cuModuleLoadDataEx", uintptr(unsafe.Pointer(&m)), uintptr(unsafe.Pointer(&src[0])),
		uintptr(len(opts)), uintptr(unsafe.Pointer(&opts[0])), uintptr(unsafe.Pointer(&vals[0]))); err != nil {
		if log := strings.TrimRight(string(logBuf), "\x00"); log != "" {
			return nil, fmt.Errorf("%w: %s", err, strings.TrimSpace(log))
		}
		return nil, err
	}
	return &Module{c: c, m: m}, nil
}

// Unload frees the module.
func (m *Module) Unload() error { return m.c.l.call("cuModuleUnload", m.m) }

// Func is a kernel.
type Func struct {
	c     *Context
	f     uintptr
	Name  string
	early bool // SetEarly
}

// SetEarly makes Launch and LaunchShared launch f early (LaunchEarly)
// from now on.
func (f *Func) SetEarly() { f.early = true }

// Func looks a kernel up by name.
func (m *Module) Func(name string) (*Func, error) {
	var f uintptr
	if err := m.c.l.call("cuModuleGetFunction", uintptr(unsafe.Pointer(&f)), m.m, uintptr(unsafe.Pointer(cStr(name)))); err != nil {
		return nil, fmt.Errorf("kernel %s: %w", name, err)
	}
	return &Func{c: m.c, f: f, Name: name}, nil
}

// Stream is a queue of device work.
type Stream uintptr

// NewStream creates a stream that orders itself after the legacy default
// stream, where the synchronous copies go, and before it.
func (c *Context) NewStream() (Stream, error) {
	var s uintptr
	err := c.l.call("cuStreamCreate", uintptr(unsafe.Pointer(&s)), 0) // CU_STREAM_DEFAULT
	return Stream(s), err
}

// Sync waits for the stream's work.
func (c *Context) Sync(s Stream) error { return c.l.call("cuStreamSynchronize", uintptr(s)) }

// DestroyStream frees a stream.
func (c *Context) DestroyStream(s Stream) error { return c.l.call("cuStreamDestroy_v2", uintptr(s)) }

// CopyInAsync queues a copy from page-locked host memory.
func (c *Context) CopyInAsync(dst Ptr, src unsafe.Pointer, n int64, s Stream) error {
	if n == 0 {
		return nil
	}
	return c.l.call("cuMemcpyHtoDAsync_v2", uintptr(dst), uintptr(src), uintptr(n), uintptr(s))
}

// CopyOutAsync queues a copy to page-locked host memory.
func (c *Context) CopyOutAsync(dst unsafe.Pointer, src Ptr, n int64, s Stream) error {
	if n == 0 {
		return nil
	}
	return c.l.call("cuMemcpyDtoHAsync_v2", uintptr(dst), uintptr(src), uintptr(n), uintptr(s))
}

// SetMaxSharedBytes lets launches of f ask for up to n bytes of dynamic
// shared memory (past the 48 KiB default).
func (f *Func) SetMaxSharedBytes(n int) error {
	const maxDynamicSharedSizeBytes = 8 // CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
	return f.c.l.call("cuFuncSetAttribute", f.f, maxDynamicSharedSizeBytes, uintptr(n))
}

// Launch queues f on s over grid x block threads. args are the kernel's
// parameters in order, each a pointer to its value (as cuLaunchKernel
// takes them); the values must stay put until Launch returns.
func (f *Func) Launch(s Stream, grid [3]int, block [3]int, args []unsafe.Pointer) error {
	return f.LaunchShared(s, grid, block, 0, args)
}

// LaunchShared is Launch with shared bytes of dynamic shared memory.
func (f *Func) LaunchShared(s Stream, grid [3]int, block [3]int, shared int, args []unsafe.Pointer) error {
	if f.early {
		return f.LaunchEarly(s, grid, block, shared, args)
	}
	var ap unsafe.Pointer
	if len(args) > 0 {
		ap = unsafe.Pointer(&args[0])
	}
	r, _, _ := purego.SyscallN(f.c.l.fn["cuLaunchKernel"], f.f,
		uintptr(grid[0]), uintptr(grid[1]), uintptr(grid[2]),
		uintptr(block[0]), uintptr(block[1]), uintptr(block[2]),
		uintptr(shared), uintptr(s), uintptr(ap), 0)
	if c := int32(r); c != 0 {
		return fmt.Errorf("launch %s: %w", f.Name, f.c.l.errorOf("cuLaunchKernel", c))
	}
	return nil
}

// HasEarlyLaunch reports whether the driver launches kernels with
// attributes (cuLaunchKernelEx, CUDA 12.0 and later), as LaunchEarly needs.
func (c *Context) HasEarlyLaunch() bool { return c.l.fn["cuLaunchKernelEx"] != 0 }

// launchConfig is CUlaunchConfig, and launchAttr CUlaunchAttribute (an id
// and a 64-byte value, 8-byte aligned).
type launchConfig struct {
	grid, block [3]uint32
	shared      uint32
	stream      uintptr
	attrs       *launchAttr
	nattrs      uint32
	_           uint32
}

type launchAttr struct {
	id    uint32
	_     uint32
	value [8]uint64
}

// LaunchEarly is LaunchShared with programmatic stream serialisation
// (compute capability 9.0): f may start before the kernel queued before
// it on s has finished, and must wait for it (griddepcontrol.wait) before
// it reads what that kernel writes or writes what it reads; that kernel's
// blocks let it start by griddepcontrol.launch_dependents, or by ending.
// Only kernels built to wait may be launched so.
func (f *Func) LaunchEarly(s Stream, grid [3]int, block [3]int, shared int, args []unsafe.Pointer) error {
	const programmaticStreamSerialization = 6 // CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION
	attr := launchAttr{id: programmaticStreamSerialization}
	attr.value[0] = 1
	cfg := launchConfig{shared: uint32(shared), stream: uintptr(s), attrs: &attr, nattrs: 1}
	for i := range 3 {
		cfg.grid[i], cfg.block[i] = uint32(grid[i]), uint32(block[i])
	}
	var ap unsafe.Pointer
	if len(args) > 0 {
		ap = unsafe.Pointer(&args[0])
	}
	r, _, _ := purego.SyscallN(f.c.l.fn["cuLaunchKernelEx"], uintptr(unsafe.Pointer(&cfg)), f.f, uintptr(ap), 0)
	if c := int32(r); c != 0 {
		return fmt.Errorf("launch %s: %w", f.Name, f.c.l.errorOf("cuLaunchKernelEx", c))
	}
	return nil
}

// Event marks a point in a stream, for timing.
type Event uintptr

// NewEvent creates an event.
func (c *Context) NewEvent() (Event, error) {
	var e uintptr
	err := c.l.call("cuEventCreate", uintptr(unsafe.Pointer(&e)), 0)
	return Event(e), err
}

// Record queues e on s.
func (c *Context) Record(e Event, s Stream) error {
	return c.l.call("cuEventRecord", uintptr(e), uintptr(s))
}

// Elapsed waits for end and returns the milliseconds between start and end.
func (c *Context) Elapsed(start, end Event) (float32, error) {
	if err := c.l.call("cuEventSynchronize", uintptr(end)); err != nil {
		return 0, err
	}
	var ms float32
	err := c.l.call("cuEventElapsedTime", uintptr(unsafe.Pointer(&ms)), uintptr(start), uintptr(end))
	return ms, err
}

// DestroyEvent frees an event.
func (c *Context) DestroyEvent(e Event) error { return c.l.call("cuEventDestroy_v2", uintptr(e)) }

// Graph is a recorded sequence of launches, ready to replay (a CUDA graph
// instantiated for execution).
type Graph uintptr

// BeginCapture starts recording s: launches queued on it from this thread
// are recorded, not run, until EndCapture.
func (c *Context) BeginCapture(s Stream) error {
	const threadLocal = 1 // CU_STREAM_CAPTURE_MODE_THREAD_LOCAL
	return c.l.call("cuStreamBeginCapture_v2", uintptr(s), threadLocal)
}

// EndCapture stops recording s and instantiates what was recorded. It
// always ends the capture, also when a launch in it failed.
func (c *Context) EndCapture(s Stream) (Graph, error) {
	var g uintptr
	if err := c.l.call("cuStreamEndCapture", uintptr(s), uintptr(unsafe.Pointer(&g))); err != nil {
		if g != 0 {
			_ = c.l.call("cuGraphDestroy", g)
		}
		return 0, err
	}
	var e uintptr
	err := c.l.call("cuGraphInstantiateWithFlags", uintptr(unsafe.Pointer(&e)), g, 0)
	if derr := c.l.call("cuGraphDestroy", g); err == nil {
		err = derr
	}
	if err != nil {
		if e != 0 {
			_ = c.l.call("cuGraphExecDestroy", e)
		}
		return 0, err
	}
	return Graph(e), nil
}

// LaunchGraph queues the recorded launches of g on s.
func (c *Context) LaunchGraph(g Graph, s Stream) error {
	return c.l.call("cuGraphLaunch", uintptr(g), uintptr(s))
}

// DestroyGraph frees g.
func (c *Context) DestroyGraph(g Graph) error { return c.l.call("cuGraphExecDestroy", uintptr(g)) }
