package kernels

import (
	"errors"
	"fmt"
)

// Fuse stacks matrices of the same Cols and DType into one whose rows are
// theirs in order, so that one MatMul computes them all: for each activation
// row its outputs are each matrix's outputs side by side, bit for bit what
// separate MatMuls give (every output row is reduced the same way wherever
// it sits). Every matrix but the last must have a multiple of PanelRows
// rows, so that the panels simply follow each other.
//
// The matrices are re-pointed into the fused storage, so no weight is held
// twice; Fuse must therefore run before they are shared. Fusing the same
// matrices again, in the same order, returns the first result and changes
// nothing.
func Fuse(ms ...*Matrix) (*Matrix, error) {
	if len(ms) == 0 {
		return nil, errors.New("kernels: Fuse of no matrices")
	}
	first := ms[0]
	rows := 0
	for i, m := range ms {
		switch {
		case m.Cols != first.Cols || m.DType != first.DType:
			return nil, fmt.Errorf("kernels: Fuse of a %dx%d %s matrix with a %dx%d %s one",
				first.Rows, first.Cols, first.DType, m.Rows, m.Cols, m.DType)
		case i < len(ms)-1 && m.Rows%PanelRows != 0:
			return nil, fmt.Errorf("kernels: Fuse: matrix %d has %d rows, not a multiple of %d", i, m.Rows, PanelRows)
		}
		rows += m.Rows
	}
	if f := first.fusedIn; f != nil && f.fusedParts == len(ms) {
		same := true
		for i, m := range ms {
			same = same && m.fusedIn == f && m.fusedAt == i
		}
		if same {
			return f, nil
		}
	}
	out := &Matrix{Rows: rows, Cols: first.Cols, DType: first.DType, fusedParts: len(ms)}
	out.f32 = fuseSlices(ms, func(m *Matrix) *[]float32 { return &m.f32 })
	out.bf16 = fuseSlices(ms, func(m *Matrix) *[]uint16 { return &m.bf16 })
	out.q = fuseSlices(ms, func(m *Matrix) *[]int8 { return &m.q })
	out.scales = fuseSlices(ms, func(m *Matrix) *[]float32 { return &m.scales })
	for i, m := range ms {
		m.fusedIn, m.fusedAt = out, i
	}
	return out, nil
}

// fuseSlices concatenates one storage slice of every matrix and re-points
// each matrix's slice into the result.
func fuseSlices[T any](ms []*Matrix, field func(*Matrix) *[]T) []T {
	total := 0
	for _, m := range ms {
		total += len(*field(m))
	}
	if total == 0 {
		return nil
	}
	out := make([]T, total)
	off := 0
	for _, m := range ms {
		s := field(m)
		n := copy(out[off:], *s)
		*s = out[off : off+n : off+n]
		off += n
	}
	return out
}
