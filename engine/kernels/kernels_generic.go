package kernels

import "math"

// The plain-Go kernels. Each output of a matrix product is accumulated in
// order of k, like the assembly, through fma32, a float32 fused
// multiply-add rounded once, as VFMADD231PS and FMLA round it: the float32
// products and dots give the assembly's bits (the BF16 products, whose
// products are exact, need no fusing: bf16.go).

// fma32 returns x*y + z rounded once to float32 (nearest even). x*y is
// exact in float64, so the float64 sum s is rounded at most once, and
// float32(s) is then the correctly rounded result unless s sits exactly
// halfway between two float32 values (rounding is monotonic: it can reach a
// halfway point, not cross it) or in float32's subnormal range, whose
// halfway points lie elsewhere. There the sum's exact error (TwoSum)
// rounds s to odd first, which makes the final rounding a correct one: 53
// bits are more than 2*24+2.
func fma32(x, y, z float32) float32 {
	p := float64(x) * float64(y)
	s := float64(p + float64(z))
	if fma32Rare(s) {
		return fma32Slow(p, float64(z), s)
	}
	return float32(s)
}

// fma32Rare reports whether float32(s) may round s wrongly (see fma32):
// s is halfway between two float32 values, or not zero and below 2^-126.
func fma32Rare(s float64) bool {
	b := math.Float64bits(s)
	return b&(1<<29-1) == 1<<28 || b<<1-1 < (1023-126)<<53-1
}

// fmaScaled does acc[i] = fma32(row[i], xk, acc[i]) for every i, with
// fma32's common case written out so that it inlines.
func fmaScaled(acc, row []float32, xk float32) {
	row = row[:len(acc)]
	for i, w := range row {
		p := float64(w) * float64(xk)
		if s := float64(p + float64(acc[i])); !fma32Rare(s) {
			acc[i] = float32(s)
		} else {
			acc[i] = fma32Slow(p, float64(acc[i]), s)
		}
	}
}

// fma32Slow is fma32's rare case: s = p + zz rounded, rounded to odd.
//
//go:noinline
func fma32Slow(p, zz, s float64) float32 {
	pv := float64(s - zz)
	zv := float64(s - pv)
	e := float64(p-pv) + float64(zz-zv)
	if b := math.Float64bits(s); e != 0 && e-e == 0 && b&1 == 0 {
		if (e > 0) == (s > 0) {
			b++
		} else {
			b--
		}
		s = math.Float64frombits(b)
	}
	return float32(s)
}

func gemvF32Go(p0, p1, p2, p3 []float32, x []float32, out *[64]float32) {
	for i, p := range [4][]float32{p0, p1, p2, p3} {
		var acc [PanelRows]float32
		for k, xk := range x {
			fmaScaled(acc[:], p[k*PanelRows:(k+1)*PanelRows], xk)
		}
		copy(out[i*PanelRows:], acc[:])
	}
}

// q8RowGo sets out[i] (16 values) for one Q8 panel p with scales s and one
// quantized activation row x with block scales xs (see q8.go).
func q8RowGo(p []int8, s []float32, x []int8, xs []float32, out []float32) {
	out = out[:PanelRows]
	clear(out)
	for b := range len(x) / Q8Block {
		for i := range out {
			var isum int32
			for k := b * Q8Block; k < (b+1)*Q8Block; k++ {
				isum += int32(p[(k/4)*64+i*4+k%4]) * int32(x[k])
			}
			d := float32(s[b*PanelRows+i] * xs[b])
			out[i] += float32(float32(isum) * d)
		}
	}
}

// gemm16x4Q8Go computes acc[16j+i] for the four quantized activation rows
// x_j over one Q8 panel p with scales s.
func gemm16x4Q8Go(p []int8, s []float32, x0, x1, x2, x3 []int8, xs0, xs1, xs2, xs3 []float32, acc *[64]float32) {
	xs := [4][]float32{xs0, xs1, xs2, xs3}
	for j, x := range [4][]int8{x0, x1, x2, x3} {
		q8RowGo(p, s, x, xs[j], acc[j*PanelRows:])
	}
}

// gemvQ8Go computes out[16i+j] for panels p0..p3 with scales s0..s3 and
// one quantized activation row x with scales xs.
func gemvQ8Go(p0, p1, p2, p3 []int8, s0, s1, s2, s3 []float32, x []int8, xs []float32, out *[64]float32) {
	ss := [4][]float32{s0, s1, s2, s3}
	for i, p := range [4][]int8{p0, p1, p2, p3} {
		q8RowGo(p, ss[i], x, xs, out[i*PanelRows:])
	}
}

func gemm16x6Go(p, x0, x1, x2, x3, x4, x5 []float32, acc *[96]float32) {
	for j, x := range [6][]float32{x0, x1, x2, x3, x4, x5} {
		a := acc[j*PanelRows : (j+1)*PanelRows]
		for k, xk := range x {
			fmaScaled(a, p[k*PanelRows:(k+1)*PanelRows], xk)
		}
	}
}

// gemm16x6ExactGo is gemm16x6Go for products that are exact in float32
// (widened bf16 weights times bf16-rounded activations): a multiply then
// an add rounds once, as fma32 would, and costs less.
func gemm16x6ExactGo(p, x0, x1, x2, x3, x4, x5 []float32, acc *[96]float32) {
	for j, x := range [6][]float32{x0, x1, x2, x3, x4, x5} {
		a := acc[j*PanelRows : (j+1)*PanelRows]
		for k, xk := range x {
			row := p[k*PanelRows : (k+1)*PanelRows]
			for i := range a {
				a[i] += float32(row[i] * xk)
			}
		}
	}
}

// gemm16x12Go is gemm16x6Go over rows x[j*stride:] for j < 12.
func gemm16x12Go(p, x []float32, stride int, acc *[192]float32) {
	k := len(p) / PanelRows
	row := func(j int) []float32 { return x[j*stride : j*stride+k] }
	gemm16x6Go(p, row(0), row(1), row(2), row(3), row(4), row(5), (*[96]float32)(acc[:96]))
	gemm16x6Go(p, row(6), row(7), row(8), row(9), row(10), row(11), (*[96]float32)(acc[96:]))
}

// sum8 reduces eight lanes in the same tree as the assembly.
func sum8(a *[8]float32) float32 {
	l0, l1, l2, l3 := a[0]+a[4], a[1]+a[5], a[2]+a[6], a[3]+a[7]
	return (l0 + l2) + (l1 + l3)
}

func dot8Go(a, b []float32) float32 {
	var acc [8]float32
	b = b[:len(a)]
	for k := 0; k+8 <= len(a); k += 8 {
		for j := range 8 {
			acc[j] = fma32(a[k+j], b[k+j], acc[j])
		}
	}
	return sum8(&acc)
}

func axpyGo(alpha float32, x, y []float32) {
	y = y[:len(x)]
	for k, v := range x {
		y[k] += float32(alpha * v)
	}
}

func sum4Go(a, b, c, d []float32) float32 {
	b, c, d = b[:len(a)], c[:len(a)], d[:len(a)]
	var s0, s1, s2, s3 float32
	for k := range a {
		s0 += a[k]
		s1 += b[k]
		s2 += c[k]
		s3 += d[k]
	}
	return (s0 + s1) + (s2 + s3)
}
