//go:build !purego && (amd64 || arm64)

package kernels

// checkGemvQ8 and checkGemmQ8 bounds-check the slices of a Q8 kernel call
// before the assembly reads them, and return its block count.
func checkGemvQ8(p0, p1, p2, p3 []int8, s0, s1, s2, s3 []float32, x []int8, xs []float32) int {
	nb := len(xs)
	_, _, _, _ = p0[nb*Q8Block*PanelRows-1], p1[nb*Q8Block*PanelRows-1], p2[nb*Q8Block*PanelRows-1], p3[nb*Q8Block*PanelRows-1]
	_, _, _, _, _ = s0[nb*PanelRows-1], s1[nb*PanelRows-1], s2[nb*PanelRows-1], s3[nb*PanelRows-1], x[nb*Q8Block-1]
	return nb
}

func checkGemmQ8(p []int8, s []float32, x0, x1, x2, x3 []int8, xs0, xs1, xs2, xs3 []float32) int {
	nb := len(xs0)
	_, _ = p[nb*Q8Block*PanelRows-1], s[nb*PanelRows-1]
	_, _, _, _ = x0[nb*Q8Block-1], x1[nb*Q8Block-1], x2[nb*Q8Block-1], x3[nb*Q8Block-1]
	_, _, _ = xs1[nb-1], xs2[nb-1], xs3[nb-1]
	return nb
}
