// Package kernels owns the numeric hot loops of the engine: weight matrices in
// their in-memory formats (f32, bf16, q8) and the matrix products over them.
// Every matmul of the forward pass goes through MatMul, so this is the one
// place where speed work happens. Matrices are immutable after construction
// and safe to read from many goroutines at once.
package kernels

import (
	"fmt"
	"math"
)

// DType is the in-memory format of a weight matrix.
type DType int

// The weight formats.
const (
	F32 DType = iota
	BF16
	Q8
)

func (d DType) String() string {
	switch d {
	case F32:
		return "f32"
	case BF16:
		return "bf16"
	case Q8:
		return "q8"
	}
	return fmt.Sprintf("dtype(%d)", int(d))
}

// ParseDType parses "f32", "bf16" or "q8".
func ParseDType(s string) (DType, error) {
	switch s {
	case "f32":
		return F32, nil
	case "bf16":
		return BF16, nil
	case "q8":
		return Q8, nil
	}
	return 0, fmt.Errorf("unknown dtype %q (want f32, bf16 or q8)", s)
}

// Matrix is a Rows x Cols weight matrix, row-major, each row one output
// feature (the PyTorch nn.Linear layout: out_features x in_features).
type Matrix struct {
	Rows, Cols int
	DType      DType
	f32        []float32
	bf16       []uint16
}

// NewF32 returns a matrix holding data (len Rows*Cols) in format dt; for BF16
// each value is rounded once, to nearest even. The matrix may keep data.
func NewF32(rows, cols int, data []float32, dt DType) *Matrix {
	if len(data) != rows*cols {
		panic(fmt.Sprintf("kernels: NewF32 %dx%d with %d values", rows, cols, len(data)))
	}
	m := &Matrix{Rows: rows, Cols: cols, DType: dt}
	switch dt {
	case F32:
		m.f32 = data
	default:
		m.DType = BF16
		m.bf16 = make([]uint16, len(data))
		for i, v := range data {
			m.bf16[i] = F32ToBF16(v)
		}
	}
	return m
}

// NewBF16 returns a BF16 matrix over data (len Rows*Cols); it keeps data.
func NewBF16(rows, cols int, data []uint16) *Matrix {
	if len(data) != rows*cols {
		panic(fmt.Sprintf("kernels: NewBF16 %dx%d with %d values", rows, cols, len(data)))
	}
	return &Matrix{Rows: rows, Cols: cols, DType: BF16, bf16: data}
}

// Row writes row i of m, as float32, to dst (len Cols).
func (m *Matrix) Row(i int, dst []float32) {
	switch m.DType {
	case F32:
		copy(dst, m.f32[i*m.Cols:(i+1)*m.Cols])
	case BF16:
		for j, b := range m.bf16[i*m.Cols : (i+1)*m.Cols] {
			dst[j] = BF16ToF32(b)
		}
	}
}

// Bytes is the memory the matrix's weights take.
func (m *Matrix) Bytes() int64 {
	return int64(len(m.f32))*4 + int64(len(m.bf16))*2
}

// MatMul computes dst[b*w.Rows+r] = sum_k x[b*w.Cols+k] * w[r][k] for each of
// the n rows b of x. Each output element is reduced in the same order whatever
// n is, so results do not depend on batching.
func MatMul(dst, x []float32, n int, w *Matrix) {
	row := make([]float32, w.Cols)
	for r := 0; r < w.Rows; r++ {
		w.Row(r, row)
		for b := 0; b < n; b++ {
			xb := x[b*w.Cols : (b+1)*w.Cols]
			var s float32
			for k, v := range row {
				s += xb[k] * v
			}
			dst[b*w.Rows+r] = s
		}
	}
}

// BF16ToF32 widens a bfloat16 exactly.
func BF16ToF32(b uint16) float32 { return math.Float32frombits(uint32(b) << 16) }

// F32ToBF16 rounds to nearest even; a NaN stays a NaN.
func F32ToBF16(f float32) uint16 {
	u := math.Float32bits(f)
	if u&0x7fffffff > 0x7f800000 {
		return uint16(u>>16) | 0x40
	}
	u += 0x7fff + (u>>16)&1
	return uint16(u >> 16)
}
