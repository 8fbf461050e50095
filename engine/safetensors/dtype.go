package safetensors

import (
	"encoding/binary"
	"fmt"
	"math"
	"unsafe"
)

// littleEndian is true on hosts whose memory order is the file's.
var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// asU16 views raw as uint16 values when the host is little-endian and raw
// is 2-byte aligned (the usual case: headers are padded to 8 bytes), so
// conversions avoid a per-element decode; otherwise it returns nil.
func asU16(raw []byte) []uint16 {
	if !littleEndian || len(raw) < 2 || uintptr(unsafe.Pointer(unsafe.SliceData(raw)))%2 != 0 {
		return nil
	}
	return unsafe.Slice((*uint16)(unsafe.Pointer(unsafe.SliceData(raw))), len(raw)/2)
}

// asU32 is asU16 for 4-byte values.
func asU32(raw []byte) []uint32 {
	if !littleEndian || len(raw) < 4 || uintptr(unsafe.Pointer(unsafe.SliceData(raw)))%4 != 0 {
		return nil
	}
	return unsafe.Slice((*uint32)(unsafe.Pointer(unsafe.SliceData(raw))), len(raw)/4)
}

// DType is a safetensors element type, spelled as in the header ("BF16").
type DType string

// The element types the header may name. Only F32, F16 and BF16 convert to
// float32; the others are accepted in headers so that a checkpoint carrying
// an integer buffer still opens.
const (
	BOOL   DType = "BOOL"
	U8     DType = "U8"
	I8     DType = "I8"
	F8E4M3 DType = "F8_E4M3"
	F8E5M2 DType = "F8_E5M2"
	I16    DType = "I16"
	U16    DType = "U16"
	F16    DType = "F16"
	BF16   DType = "BF16"
	I32    DType = "I32"
	U32    DType = "U32"
	F32    DType = "F32"
	F64    DType = "F64"
	I64    DType = "I64"
	U64    DType = "U64"
)

// Size is the number of bytes one element takes, or 0 for an unknown type.
func (d DType) Size() int {
	switch d {
	case BOOL, U8, I8, F8E4M3, F8E5M2:
		return 1
	case I16, U16, F16, BF16:
		return 2
	case I32, U32, F32:
		return 4
	case F64, I64, U64:
		return 8
	}
	return 0
}

// IsFloat reports whether tensors of this type convert to float32 here.
func (d DType) IsFloat() bool { return d == F32 || d == F16 || d == BF16 }

// F16ToF32 widens an IEEE 754 half-precision value exactly (subnormals,
// infinities and NaN payloads included).
func F16ToF32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	man := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // inf or NaN
		return math.Float32frombits(sign | 0x7f800000 | man<<13)
	case exp != 0: // normal
		return math.Float32frombits(sign | (exp+112)<<23 | man<<13)
	case man == 0: // signed zero
		return math.Float32frombits(sign)
	}
	// Subnormal half: value = man * 2^-24; normalise into a float32.
	e := uint32(113)
	for man&0x400 == 0 {
		man <<= 1
		e--
	}
	return math.Float32frombits(sign | e<<23 | (man&0x3ff)<<13)
}

// bf16ToF32 widens a bfloat16 exactly.
func bf16ToF32(b uint16) float32 { return math.Float32frombits(uint32(b) << 16) }

// convert writes the n elements of raw (little-endian, type d) as float32 to dst.
func convert(dst []float32, raw []byte, d DType) error {
	switch d {
	case F32:
		if u := asU32(raw); u != nil {
			u = u[:len(dst)]
			for i, v := range u {
				dst[i] = math.Float32frombits(v)
			}
			return nil
		}
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
	case BF16:
		if u := asU16(raw); u != nil {
			u = u[:len(dst)]
			for i, v := range u {
				dst[i] = bf16ToF32(v)
			}
			return nil
		}
		for i := range dst {
			dst[i] = bf16ToF32(binary.LittleEndian.Uint16(raw[2*i:]))
		}
	case F16:
		for i := range dst {
			dst[i] = F16ToF32(binary.LittleEndian.Uint16(raw[2*i:]))
		}
	default:
		return fmt.Errorf("dtype %s does not convert to float32 (want F32, F16 or BF16)", d)
	}
	return nil
}
