package kernels

import "math"

// The element-wise steps whose cost is math.Exp. Their vector versions
// evaluate the Go runtime's own exp algorithm lane by lane, so they give
// the bits of the plain loops, and leave the rare arguments it treats
// specially (beyond +-700, NaN) to math.Exp itself.

// SiLUMul sets dst[i] = silu(gate[i]) * up[i], where silu(g) is
// float32(g / (1 + exp(-g))) computed in float64 with math.Exp and the
// product is a float32 multiply. dst may be gate. Every implementation
// gives exactly these bits.
func SiLUMul(dst, gate, up []float32) {
	n := len(gate)
	dst, up = dst[:n], up[:n]
	if active.siluMul == nil {
		siluMulGo(dst, gate, up)
		return
	}
	active.siluMul(dst, gate, up)
}

func siluMulGo(dst, gate, up []float32) {
	up = up[:len(dst)]
	for i, g := range gate[:len(dst)] {
		s := float32(float64(g) / (1 + math.Exp(-float64(g))))
		dst[i] = s * up[i]
	}
}

// ExpSub sets s[i] = float32(math.Exp(float64(s[i] - m))), the subtraction
// in float32 (a softmax's shifted exponentials), with the same bits on
// every implementation, as SiLUMul.
func ExpSub(s []float32, m float32) {
	if active.expSub == nil {
		expSubGo(s, m)
		return
	}
	active.expSub(s, m)
}

func expSubGo(s []float32, m float32) {
	for i, v := range s {
		s[i] = float32(math.Exp(float64(v - m)))
	}
}
