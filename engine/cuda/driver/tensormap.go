package driver

import (
	"fmt"
	"unsafe"
)

// TensorMap is a CUDA tensor map (CUtensorMap): how Hopper's tensor memory
// accelerator reads boxes of a tensor in global memory. A kernel takes it
// by value (128 bytes); Launch copies it, so it may change after.
type TensorMap struct{ v [16]uint64 }

// HasTensorMaps reports whether the driver encodes tensor maps (CUDA 12.0
// and later).
func (l *Lib) HasTensorMaps() bool { return l.fn["cuTensorMapEncodeTiled"] != 0 }

// HasTensorMaps reports whether the context's driver encodes tensor maps.
func (c *Context) HasTensorMaps() bool { return c.l.HasTensorMaps() }

// TensorMapBF16 encodes the map of a row-major bf16 matrix at addr, rows x
// cols, read in boxes of boxRows x boxCols with 128-byte swizzling (boxCols
// x 2 bytes must be 128 at most), zeros outside the matrix. addr must be
// 16-byte aligned and cols a multiple of 8 (the driver refuses otherwise).
func (c *Context) TensorMapBF16(addr Ptr, rows, cols int64, boxRows, boxCols int) (*TensorMap, error) {
	const (
		bfloat16     = 9 // CU_TENSOR_MAP_DATA_TYPE_BFLOAT16
		noInterleave = 0 // CU_TENSOR_MAP_INTERLEAVE_NONE
		swizzle128   = 3 // CU_TENSOR_MAP_SWIZZLE_128B
		l2Promote256 = 3 // CU_TENSOR_MAP_L2_PROMOTION_L2_256B
		zeroFill     = 0 // CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE: zeros
	)
	if !c.l.HasTensorMaps() {
		return nil, fmt.Errorf("%s has no cuTensorMapEncodeTiled: the NVIDIA driver is older than CUDA 12.0", c.l.Path)
	}
	// The driver writes the map at a 64-byte aligned address (CUtensorMap's
	// alignment); it is copied out from there.
	var buf [24]uint64
	off := (64 - uintptr(unsafe.Pointer(&buf[0]))%64) % 64 / 8
	dims := [2]uint64{uint64(cols), uint64(rows)}
	strides := [1]uint64{uint64(cols) * 2}
	box := [2]uint32{uint32(boxCols), uint32(boxRows)}
	elem := [2]uint32{1, 1}
	err := c.l.call("cuTensorMapEncodeTiled", uintptr(unsafe.Pointer(&buf[off])), bfloat16, 2, uintptr(addr),
		uintptr(unsafe.Pointer(&dims[0])), uintptr(unsafe.Pointer(&strides[0])), uintptr(unsafe.Pointer(&box[0])),
		uintptr(unsafe.Pointer(&elem[0])), noInterleave, swizzle128, l2Promote256, zeroFill)
	if err != nil {
		return nil, fmt.Errorf("tensor map of %d x %d bf16 at %#x: %w", rows, cols, addr, err)
	}
	m := new(TensorMap)
	copy(m.v[:], buf[off:off+16])
	return m, nil
}
