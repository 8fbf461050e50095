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
	// Q8 holds int8 values in blocks of Q8Block along each row, one float32
	// scale per block (absmax/127, rounded to nearest).
	Q8
)

// Q8Block is the number of consecutive values of a row sharing one Q8 scale.
const Q8Block = 32

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

// Matrix is a Rows x Cols weight matrix, each row one output feature (the
// PyTorch nn.Linear layout: out_features x in_features). In memory the rows
// are packed in panels of PanelRows: panel p holds rows 16p..16p+15
// interleaved column by column (element (r, k) at ((r/16)*Cols + k)*16 +
// r%16), the last panel padded with zero rows, so a kernel streams 16 rows
// with one contiguous read. A Matrix is immutable after construction and
// safe for concurrent use.
type Matrix struct {
	Rows, Cols int
	DType      DType
	f32        []float32
	bf16       []uint16
	// Q8: q holds the int8 values and scales the block scales, laid out
	// as q8.go describes.
	q      []int8
	scales []float32
	// fusedIn is the matrix this one was fused into (see Fuse), as part
	// fusedAt; fusedParts is, on a fused matrix, how many it stacks.
	fusedIn    *Matrix
	fusedAt    int
	fusedParts int
}

// PanelRows is the number of rows interleaved in one packed panel.
const PanelRows = 16

func panelsOf(rows int) int { return (rows + PanelRows - 1) / PanelRows }

func q8Blocks(cols int) int { return (cols + Q8Block - 1) / Q8Block }

// packIndex is where row-major element (r, k) of a rows x cols matrix goes.
func packIndex(r, k, cols int) int {
	return ((r/PanelRows)*cols+k)*PanelRows + r%PanelRows
}

func pack[T any](rows, cols int, src []T) []T {
	dst := make([]T, panelsOf(rows)*PanelRows*cols)
	byPanels(rows, cols, func(r int) {
		for k, v := range src[r*cols : (r+1)*cols] {
			dst[packIndex(r, k, cols)] = v
		}
	})
	return dst
}

// byPanels calls row(r) for each of rows rows of cols values, spread over
// the pool's threads by whole panels (a weight load repacks and quantizes
// over a billion values). row must only write its own panel's storage.
func byPanels(rows, cols int, row func(r int)) {
	Parallel(panelsOf(rows), PanelRows*cols, func(lo, hi int) {
		for r := lo * PanelRows; r < min(rows, hi*PanelRows); r++ {
			row(r)
		}
	})
}

// NewF32 returns a matrix holding data (len Rows*Cols) in format dt. For BF16
// each value is rounded once, to nearest even, and held to the products'
// range as NewBF16 does. For Q8 each block of Q8Block
// values of a row is quantized to round(v/scale) with scale = max|v|/127.
// The matrix does not keep data.
func NewF32(rows, cols int, data []float32, dt DType) *Matrix {
	if len(data) != rows*cols {
		panic(fmt.Sprintf("kernels: NewF32 %dx%d with %d values", rows, cols, len(data)))
	}
	m := &Matrix{Rows: rows, Cols: cols, DType: dt}
	switch dt {
	case F32:
		m.f32 = pack(rows, cols, data)
	case Q8:
		m.setQ8(data)
	default:
		m.DType = BF16
		kp := bf16Cols(cols)
		m.bf16 = make([]uint16, panelsOf(rows)*PanelRows*kp)
		byPanels(rows, cols, func(r int) {
			for k, v := range data[r*cols : (r+1)*cols] {
				m.bf16[bf16Index(r, k, kp)] = clampBF16(F32ToBF16(v))
			}
		})
	}
	return m
}

// NewBF16 returns a BF16 matrix over data (len Rows*Cols), repacked in
// column pairs, each value held to the products' range (bf16.go: below
// 2^-56 a signed zero, from 2^64 an infinity).
func NewBF16(rows, cols int, data []uint16) *Matrix {
	if len(data) != rows*cols {
		panic(fmt.Sprintf("kernels: NewBF16 %dx%d with %d values", rows, cols, len(data)))
	}
	kp := bf16Cols(cols)
	m := &Matrix{Rows: rows, Cols: cols, DType: BF16, bf16: make([]uint16, panelsOf(rows)*PanelRows*kp)}
	byPanels(rows, cols, func(r int) {
		for k, v := range data[r*cols : (r+1)*cols] {
			m.bf16[bf16Index(r, k, kp)] = clampBF16(v)
		}
	})
	return m
}

// Row writes row i of m, as float32, to dst (len Cols). For Q8 each value is
// float32(q) * scale, the same value the matrix products use.
func (m *Matrix) Row(i int, dst []float32) {
	dst = dst[:m.Cols]
	base := packIndex(i, 0, m.Cols)
	switch m.DType {
	case F32:
		for k := range dst {
			dst[k] = m.f32[base+k*PanelRows]
		}
	case BF16:
		kp := bf16Cols(m.Cols)
		for k := range dst {
			dst[k] = BF16ToF32(m.bf16[bf16Index(i, k, kp)])
		}
	case Q8:
		kp, nb := q8Cols(m.Cols), q8Blocks(m.Cols)
		sb := packIndex(i, 0, nb)
		for k := range dst {
			dst[k] = float32(float32(m.q[q8Index(i, k, kp)]) * m.scales[sb+(k/Q8Block)*PanelRows])
		}
	}
}

// Bytes is the memory the matrix's weights take.
func (m *Matrix) Bytes() int64 {
	return int64(len(m.f32))*4 + int64(len(m.bf16))*2 + int64(len(m.q)) + int64(len(m.scales))*4
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
