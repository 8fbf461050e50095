// Package driver binds the parts of the NVIDIA CUDA driver API
// (libcuda.so.1) that the CUDA backend uses, loaded at run time with
// purego: no cgo and no CUDA toolkit at build time. It finds the library,
// reports the GPUs (Probe), and wraps each call's status in an Error that
// names the call and the driver's own error name.
//
// A CUDA context is current per OS thread: callers lock the goroutine that
// drives a device to its thread (see Context.MakeCurrent). It imports
// nothing of the engine.
package driver
