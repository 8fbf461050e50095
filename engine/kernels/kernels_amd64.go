//go:build !purego

package kernels

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// archImpls returns the AVX2+FMA kernels when the CPU and OS support them,
// then the AVX-512 ones (AVX2 plus 12-row gemm tiles in zmm registers).
func archImpls() []*impl {
	if !cpu.X86.HasAVX2 || !cpu.X86.HasFMA {
		return nil
	}
	if !cpu.X86.HasAVX512F || !cpu.X86.HasAVX512BW {
		return []*impl{avx2}
	}
	return []*impl{avx2, avx512, avx512bf16, amx}
}

// avx512bf16 is avx512 with the BF16 products on VDPBF16PS, where the CPU
// has AVX512_BF16 (nil otherwise).
var avx512bf16 = func() *impl {
	if !cpu.X86.HasAVX512F || !cpu.X86.HasAVX512BW || !cpu.X86.HasAVX512BF16 {
		return nil
	}
	im := *avx512
	im.name = "avx512bf16"
	im.gemvBF16, im.widenPairs = nil, nil
	im.gemvBF16DP = func(p0, p1, p2, p3 []uint16, x []uint16, out *[64]float32) {
		n := len(x) * PanelRows
		_, _, _, _ = p0[n-1], p1[n-1], p2[n-1], p3[n-1]
		gemvBF16DPAVX512(&p0[0], &p1[0], &p2[0], &p3[0], &x[0], len(x)/2, out)
	}
	im.gemm16x12BF16DP = func(p []uint16, x []uint16, stride int, acc *[192]float32, pf unsafe.Pointer, pfStride int) {
		k := len(p) / PanelRows
		_ = x[11*stride+k-1]
		gemm16x12BF16DPAVX512(&p[0], &x[0], stride, k/2, acc, pf, 2*pfStride)
	}
	im.gemm16x16BF16DP = func(p []uint16, x []uint16, stride int, acc *[256]float32, pf unsafe.Pointer, pfStride int) {
		k := len(p) / PanelRows
		_ = x[15*stride+k-1]
		gemm16x16BF16DPAVX512(&p[0], &x[0], stride, k/2, acc, pf, 2*pfStride)
	}
	im.gemm32x8BF16DP = func(p0, p1 []uint16, x []uint16, stride int, acc0, acc1 *[128]float32, pf unsafe.Pointer, pfStride int) {
		k := len(p0) / PanelRows
		_, _ = p1[k*PanelRows-1], x[7*stride+k-1]
		pstride := int(uintptr(unsafe.Pointer(&p1[0])) - uintptr(unsafe.Pointer(&p0[0])))
		gemm32x8BF16DPAVX512(&p0[0], pstride, &x[0], stride, k/2, acc0, acc1, pf, 2*pfStride)
	}
	im.gemm16x4BF16DP = func(p []uint16, x0, x1, x2, x3 []uint16, acc *[64]float32, pf unsafe.Pointer, pfStride int) {
		k := len(p) / PanelRows
		_, _, _, _ = x0[k-1], x1[k-1], x2[k-1], x3[k-1]
		gemm16x4BF16DPAVX512(&p[0], &x0[0], &x1[0], &x2[0], &x3[0], k/2, acc, pf, 2*pfStride)
	}
	return &im
}()

// amx is avx512 (avx512bf16 where the CPU has it) with the AMX Q8 gemm,
// where the CPU has AMX-INT8 and the OS grants the tile state (nil
// otherwise). AMX-BF16 is left out: see docs/numerics.md.
var amx = func() *impl {
	if !cpu.X86.HasAVX512F || !cpu.X86.HasAVX512BW || !cpu.X86.HasAVX512VNNI ||
		!cpu.X86.HasAMXTile || !cpu.X86.HasAMXInt8 || !requestAMX() {
		return nil
	}
	im := *avx512
	if avx512bf16 != nil {
		im = *avx512bf16
	}
	im.name = "amx"
	im.gemm16x16Q8 = func(p []int8, s []float32, a *q8Acts, row, cols int, tiles *[512]int32, acc *[256]float32) {
		kp, nb := q8Cols(cols), q8Blocks(cols)
		_, _ = p[nb*Q8Block*PanelRows-1], s[nb*PanelRows-1]
		_, _ = a.q[(row+16)*kp-1], a.s[(2*(row+15)+1)*nb-1]
		gemm16x16Q8AMX(&amxConfig, &p[0], &s[0], &a.q[row*kp], kp, &a.s[2*row*nb], 2*nb*4, nb, tiles, acc)
	}
	return &im
}()

// amxConfig is the tile configuration gemm16x16Q8AMX loads (palette 1):
// tmm0 and tmm3 16 rows x 32 bytes, tmm1 and tmm4 8 rows x 64 bytes,
// tmm2 and tmm5 16 rows x 64 bytes.
var amxConfig = func() (c [64]byte) {
	c[0] = 1
	for t, sh := range [6]struct{ rows, colsb byte }{{16, 32}, {8, 64}, {16, 64}, {16, 32}, {8, 64}, {16, 64}} {
		c[16+2*t] = sh.colsb
		c[48+t] = sh.rows
	}
	return c
}()

// avx512 is avx2 with the 12-row gemm kernels, and the VNNI Q8 kernels
// where the CPU has AVX512_VNNI.
var avx512 = func() *impl {
	im := *avx2
	im.name = "avx512"
	im.fmaLoop, im.fmaLoopFlops = fmaLoopAVX512, 768
	im.gemm16x12 = func(p []float32, x []float32, stride int, acc *[192]float32, pf unsafe.Pointer, pfStride int) {
		k := len(p) / PanelRows
		_ = x[11*stride+k-1]
		gemm16x12AVX512(&p[0], &x[0], stride, k, acc, pf, pfStride)
	}
	if cpu.X86.HasAVX512VNNI {
		// The VNNI kernels also read each activation row's block
		// corrections, which follow its scales (q8Acts): xs[:2*nb].
		im.gemvQ8 = func(p0, p1, p2, p3 []int8, s0, s1, s2, s3 []float32, x []int8, xs []float32, out *[64]float32) {
			nb := checkGemvQ8(p0, p1, p2, p3, s0, s1, s2, s3, x, xs)
			_ = xs[:2*nb]
			gemvQ8VNNI(&p0[0], &p1[0], &p2[0], &p3[0], &s0[0], &s1[0], &s2[0], &s3[0], &x[0], &xs[0], nb, out)
		}
		im.gemm16x4Q8 = func(p []int8, s []float32, x0, x1, x2, x3 []int8, xs0, xs1, xs2, xs3 []float32, acc *[64]float32) {
			nb := checkGemmQ8(p, s, x0, x1, x2, x3, xs0, xs1, xs2, xs3)
			_, _, _, _ = xs0[:2*nb], xs1[:2*nb], xs2[:2*nb], xs3[:2*nb]
			gemm16x4Q8VNNI(&p[0], &s[0], &x0[0], &x1[0], &x2[0], &x3[0], &xs0[0], &xs1[0], &xs2[0], &xs3[0], nb, acc)
		}
	}
	return &im
}()

var avx2 = &impl{
	name: "avx2",
	gemvQ8: func(p0, p1, p2, p3 []int8, s0, s1, s2, s3 []float32, x []int8, xs []float32, out *[64]float32) {
		nb := checkGemvQ8(p0, p1, p2, p3, s0, s1, s2, s3, x, xs)
		gemvQ8AVX2(&p0[0], &p1[0], &p2[0], &p3[0], &s0[0], &s1[0], &s2[0], &s3[0], &x[0], &xs[0], nb, out)
	},
	gemm16x4Q8: func(p []int8, s []float32, x0, x1, x2, x3 []int8, xs0, xs1, xs2, xs3 []float32, acc *[64]float32) {
		nb := checkGemmQ8(p, s, x0, x1, x2, x3, xs0, xs1, xs2, xs3)
		gemm16x4Q8AVX2(&p[0], &s[0], &x0[0], &x1[0], &x2[0], &x3[0], &xs0[0], &xs1[0], &xs2[0], &xs3[0], nb, acc)
	},
	gemvF32: func(p0, p1, p2, p3 []float32, x []float32, out *[64]float32) {
		gemvF32AVX2(&p0[0], &p1[0], &p2[0], &p3[0], &x[0], len(x), out)
	},
	gemvBF16: func(p0, p1, p2, p3 []uint16, x []float32, out *[64]float32) {
		_, _, _, _ = p0[len(x)*PanelRows-1], p1[len(x)*PanelRows-1], p2[len(x)*PanelRows-1], p3[len(x)*PanelRows-1]
		gemvBF16AVX2(&p0[0], &p1[0], &p2[0], &p3[0], &x[0], len(x)/2, out)
	},
	gemm16x6: func(p, x0, x1, x2, x3, x4, x5 []float32, acc *[96]float32, pf unsafe.Pointer, pfStride int) {
		gemm16x6AVX2(&p[0], &x0[0], &x1[0], &x2[0], &x3[0], &x4[0], &x5[0], len(x0), acc, pf, pfStride)
	},
	gemm16x4: func(p, x0, x1, x2, x3 []float32, acc *[64]float32, pf unsafe.Pointer, pfStride int) {
		gemm16x4AVX2(&p[0], &x0[0], &x1[0], &x2[0], &x3[0], len(x0), acc, pf, pfStride)
	},
	widenPairs: func(dst []float32, src []uint16) {
		_ = dst[len(src)-1]
		widenPairsAVX2(&dst[0], &src[0], len(src)/(2*PanelRows))
	},
	roundBF16: roundBF16Go,
	dot: func(a, b []float32) float32 {
		return dotAVX2(&a[0], &b[0], len(a))
	},
	axpy: func(alpha float32, x, y []float32) {
		axpyAVX2(alpha, &x[0], &y[0], len(x))
	},
	sum4: func(a, b, c, d []float32) float32 {
		return sum4AVX2(&a[0], &b[0], &c[0], &d[0], len(a))
	},
	siluMul: func(dst, gate, up []float32) {
		byGroups(len(dst), func(i int) int { return siluMulAVX2(&dst[i], &gate[i], &up[i], len(dst)-i) },
			func(lo, hi int) { siluMulGo(dst[lo:hi], gate[lo:hi], up[lo:hi]) })
	},
	quantize32: func(dst []int8, src []float32) (float32, int32, bool) {
		_, _ = dst[Q8Block-1], src[Q8Block-1]
		return quantize32AVX2(&dst[0], &src[0])
	},
	expSub: func(s []float32, m float32) {
		byGroups(len(s), func(i int) int { return expSubAVX2(&s[i], m, len(s)-i) },
			func(lo, hi int) { expSubGo(s[lo:hi], m) })
	},
	dotRows: func(q, rows []float32, stride int, out []float32) {
		dotRowsAVX2(&q[0], &rows[0], 4*stride, len(q), len(out), &out[0])
	},
	axpyRows: func(p, rows []float32, stride int, y []float32) {
		axpyRowsAVX2(&p[0], &rows[0], 4*stride, len(y), len(p), &y[0])
	},
	fmaLoop:      fmaLoopAVX2,
	fmaLoopFlops: 192,
}

// The assembly kernels (kernels_amd64.s); lengths as in impl, all positive.

//go:noescape
func gemvF32AVX2(p0, p1, p2, p3, x *float32, k int, out *[64]float32)

// gemvBF16AVX2 is gemvBF16 over pairs column pairs; widenPairsAVX2 is
// widenPairs over pairs column pairs of a panel.
//
//go:noescape
func gemvBF16AVX2(p0, p1, p2, p3 *uint16, x *float32, k int, out *[64]float32)

//go:noescape
func widenPairsAVX2(dst *float32, src *uint16, pairs int)

//go:noescape
func gemm16x6AVX2(p, x0, x1, x2, x3, x4, x5 *float32, k int, acc *[96]float32, pf unsafe.Pointer, pfStride int)

//go:noescape
func gemm16x4AVX2(p, x0, x1, x2, x3 *float32, k int, acc *[64]float32, pf unsafe.Pointer, pfStride int)

//go:noescape
func dotAVX2(a, b *float32, k8 int) float32

//go:noescape
func axpyAVX2(alpha float32, x, y *float32, k8 int)

//go:noescape
func sum4AVX2(a, b, c, d *float32, k16 int) float32

//go:noescape
func fmaLoopAVX2(iters int)

//go:noescape
func dotRowsAVX2(q, rows *float32, stride, k8, n int, out *float32)

//go:noescape
func axpyRowsAVX2(p, rows *float32, stride, k8, n int, y *float32)

// The AVX-512 kernels (kernels_avx512_amd64.s): stride is in float32s.

//go:noescape
func gemm16x12AVX512(p, x *float32, stride, k int, acc *[192]float32, pf unsafe.Pointer, pfStride int)

//go:noescape
func fmaLoopAVX512(iters int)

// The AVX512_BF16 kernels (kernels_bf16_amd64.s): k counts column pairs,
// and pfStride is per pair (twice the gemm's, which is per column).

//go:noescape
func gemvBF16DPAVX512(p0, p1, p2, p3 *uint16, x *uint16, k int, out *[64]float32)

//go:noescape
func gemm16x12BF16DPAVX512(p *uint16, x *uint16, stride, k int, acc *[192]float32, pf unsafe.Pointer, pfStride int)

//go:noescape
func gemm16x16BF16DPAVX512(p *uint16, x *uint16, stride, k int, acc *[256]float32, pf unsafe.Pointer, pfStride int)

//go:noescape
func gemm32x8BF16DPAVX512(p *uint16, pstride int, x *uint16, stride, k int, acc0, acc1 *[128]float32, pf unsafe.Pointer, pfStride int)

//go:noescape
func gemm16x4BF16DPAVX512(p *uint16, x0, x1, x2, x3 *uint16, k int, acc *[64]float32, pf unsafe.Pointer, pfStride int)

//go:noescape
func gemvQ8AVX2(p0, p1, p2, p3 *int8, s0, s1, s2, s3 *float32, x *int8, xs *float32, blocks int, out *[64]float32)

//go:noescape
func gemm16x4Q8AVX2(p *int8, s *float32, x0, x1, x2, x3 *int8, xs0, xs1, xs2, xs3 *float32, blocks int, acc *[64]float32)

//go:noescape
func gemvQ8VNNI(p0, p1, p2, p3 *int8, s0, s1, s2, s3 *float32, x *int8, xs *float32, blocks int, out *[64]float32)

//go:noescape
func gemm16x4Q8VNNI(p *int8, s *float32, x0, x1, x2, x3 *int8, xs0, xs1, xs2, xs3 *float32, blocks int, acc *[64]float32)

//go:noescape
func gemm16x16Q8AMX(cfg *[64]byte, p *int8, s *float32, x *int8, xstride int, xs *float32, xsstride int, blocks int, tiles *[512]int32, acc *[256]float32)

// siluMulAVX2 and expSubAVX2 do SiLUMul's and ExpSub's groups of four from
// the start while every argument of math.Exp in the group is within
// +-700, and return how many values they did.
//
//go:noescape
func siluMulAVX2(dst, gate, up *float32, n int) int

//go:noescape
func expSubAVX2(s *float32, m float32, n int) int

//go:noescape
func quantize32AVX2(dst *int8, src *float32) (scale float32, sum int32, ok bool)

// byGroups runs a vector kernel over [0, n): kernel(i) does whole groups of
// four from i on and returns how many values it did, stopping at the tail
// or at a group it leaves to math.Exp; scalar(lo, hi) does those.
func byGroups(n int, kernel func(i int) int, scalar func(lo, hi int)) {
	for i := 0; i < n; {
		i += kernel(i)
		end := min(i+4, n)
		scalar(i, end)
		i = end
	}
}
