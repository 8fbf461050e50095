//go:build !purego

#include "textflag.h"

// quantize32AVX2 is quantizeBlock for one whole block of 32 finite values
// with a nonzero scale (see q8.go), and also sums the quantized values.
// It takes the same steps: max|v| from the float bits, scale = max/127 in
// float32, inv = 1/scale in float64, each value v*inv in float64 rounded
// to the nearest integer, ties to even (VCVTPD2DQ under the default
// rounding mode), clamped to +-127. It returns ok = false, leaving the
// block to the Go code, when max|v| is not finite or the scale is 0.

DATA q32c<>+0(SB)/4, $0x7fffffff   // magnitude mask
DATA q32c<>+4(SB)/4, $127.0        // float32
DATA q32c<>+8(SB)/8, $1.0          // float64
DATA q32c<>+16(SB)/2, $127         // int16 clamp bounds
DATA q32c<>+18(SB)/2, $-127
DATA q32c<>+20(SB)/2, $1           // int16 one
GLOBL q32c<>(SB), RODATA|NOPTR, $24

// Q4 converts four float32 values at off(SI) to float64, scales them by
// Y11 and rounds them to int32 in X.
#define Q4(off, X) \
	VCVTPS2PD  off(SI), Y12; \
	VMULPD     Y11, Y12, Y12; \
	VCVTPD2DQY Y12, X

// func quantize32AVX2(dst *int8, src *float32) (scale float32, sum int32, ok bool)
TEXT ·quantize32AVX2(SB), NOSPLIT, $0-25
	MOVQ src+8(FP), SI
	MOVQ dst+0(FP), DI
	MOVB $0, ok+24(FP)

	// max|v| over the bits without the sign
	VPBROADCASTD q32c<>+0(SB), Y8
	VPAND        0(SI), Y8, Y0
	VPAND        32(SI), Y8, Y1
	VPAND        64(SI), Y8, Y2
	VPAND        96(SI), Y8, Y3
	VPMAXUD      Y1, Y0, Y0
	VPMAXUD      Y3, Y2, Y2
	VPMAXUD      Y2, Y0, Y0
	VEXTRACTI128 $1, Y0, X1
	VPMAXUD      X1, X0, X0
	VPSHUFD      $0x4e, X0, X1
	VPMAXUD      X1, X0, X0
	VPSHUFD      $0xb1, X0, X1
	VPMAXUD      X1, X0, X0
	VMOVD        X0, AX
	CMPL         AX, $0x7f800000
	JAE          q32_fail

	// scale = max/127 (float32); inv = 1/float64(scale)
	VDIVSS       q32c<>+4(SB), X0, X10
	VXORPS       X9, X9, X9
	VUCOMISS     X9, X10
	JEQ          q32_fail
	VCVTSS2SD    X10, X10, X11
	VMOVSD       q32c<>+8(SB), X9
	VDIVSD       X11, X9, X11
	VBROADCASTSD X11, Y11

	Q4(0, X0)
	Q4(16, X1)
	Q4(32, X2)
	Q4(48, X3)
	Q4(64, X4)
	Q4(80, X5)
	Q4(96, X6)
	Q4(112, X7)

	// to int16 (no value saturates: |q| < 2^15), clamp to +-127, sum
	VPACKSSDW    X1, X0, X0
	VPACKSSDW    X3, X2, X2
	VPACKSSDW    X5, X4, X4
	VPACKSSDW    X7, X6, X6
	VINSERTI128  $1, X2, Y0, Y0
	VINSERTI128  $1, X6, Y4, Y4
	VPBROADCASTW q32c<>+16(SB), Y8
	VPBROADCASTW q32c<>+18(SB), Y9
	VPMINSW      Y8, Y0, Y0
	VPMAXSW      Y9, Y0, Y0
	VPMINSW      Y8, Y4, Y4
	VPMAXSW      Y9, Y4, Y4
	VPADDW       Y4, Y0, Y1
	VPBROADCASTW q32c<>+20(SB), Y8
	VPMADDWD     Y8, Y1, Y1
	VEXTRACTI128 $1, Y1, X2
	VPADDD       X2, X1, X1
	VPSHUFD      $0x4e, X1, X2
	VPADDD       X2, X1, X1
	VPSHUFD      $0xb1, X1, X2
	VPADDD       X2, X1, X1

	// to int8: Y0 holds values 0-7 | 8-15 as int16, Y4 16-23 | 24-31; the
	// per-lane pack gives 0-7, 16-23 | 8-15, 24-31, which VPERMQ orders
	VPACKSSWB    Y4, Y0, Y0
	VPERMQ       $0xd8, Y0, Y0
	VMOVDQU      Y0, (DI)

	VMOVSS X10, scale+16(FP)
	VMOVD  X1, AX
	MOVL   AX, sum+20(FP)
	MOVB   $1, ok+24(FP)
	VZEROUPPER
	RET

q32_fail:
	VZEROUPPER
	RET
