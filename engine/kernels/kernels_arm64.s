//go:build !purego

#include "textflag.h"

// NEON kernels over packed panels (16 rows interleaved column by column).
// Each output lives in one lane and takes its products in order of k through
// FMLA, whatever the kernel or tile, so results never depend on batching.

#define ZERO16 \
	VEOR V0.B16, V0.B16, V0.B16; \
	VEOR V1.B16, V1.B16, V1.B16; \
	VEOR V2.B16, V2.B16, V2.B16; \
	VEOR V3.B16, V3.B16, V3.B16; \
	VEOR V4.B16, V4.B16, V4.B16; \
	VEOR V5.B16, V5.B16, V5.B16; \
	VEOR V6.B16, V6.B16, V6.B16; \
	VEOR V7.B16, V7.B16, V7.B16; \
	VEOR V8.B16, V8.B16, V8.B16; \
	VEOR V9.B16, V9.B16, V9.B16; \
	VEOR V10.B16, V10.B16, V10.B16; \
	VEOR V11.B16, V11.B16, V11.B16; \
	VEOR V12.B16, V12.B16, V12.B16; \
	VEOR V13.B16, V13.B16, V13.B16; \
	VEOR V14.B16, V14.B16, V14.B16; \
	VEOR V15.B16, V15.B16, V15.B16

#define STORE16(R) \
	VST1.P [V0.S4, V1.S4, V2.S4, V3.S4], 64(R); \
	VST1.P [V4.S4, V5.S4, V6.S4, V7.S4], 64(R); \
	VST1.P [V8.S4, V9.S4, V10.S4, V11.S4], 64(R); \
	VST1.P [V12.S4, V13.S4, V14.S4, V15.S4], 64(R)

// GEMV4ARGS loads the arguments of the f32 and bf16 gemv kernels (panels
// R0-R3, activations R4, columns R5, output R6) and zeroes the
// accumulators.
#define GEMV4ARGS \
	MOVD p0+0(FP), R0; \
	MOVD p1+8(FP), R1; \
	MOVD p2+16(FP), R2; \
	MOVD p3+24(FP), R3; \
	MOVD x+32(FP), R4; \
	MOVD k+40(FP), R5; \
	MOVD out+48(FP), R6; \
	ZERO16

// F32PANEL loads the next 16 weights of panel P and accumulates their
// product with the broadcast activation V16 into A0..A3.
#define F32PANEL(PTR, A0, A1, A2, A3) \
	VLD1.P 64(PTR), [V20.S4, V21.S4, V22.S4, V23.S4]; \
	VFMLA  V16.S4, V20.S4, A0.S4; \
	VFMLA  V16.S4, V21.S4, A1.S4; \
	VFMLA  V16.S4, V22.S4, A2.S4; \
	VFMLA  V16.S4, V23.S4, A3.S4

// func gemvF32NEON(p0, p1, p2, p3, x *float32, k int, out *[64]float32)
TEXT ·gemvF32NEON(SB), NOSPLIT, $0-56
	GEMV4ARGS

gemvf32_loop:
	VLD1R.P 4(R4), [V16.S4]
	F32PANEL(R0, V0, V1, V2, V3)
	F32PANEL(R1, V4, V5, V6, V7)
	F32PANEL(R2, V8, V9, V10, V11)
	F32PANEL(R3, V12, V13, V14, V15)
	SUBS    $1, R5, R5
	BNE     gemvf32_loop
	STORE16(R6)
	RET

// PAIRPANEL loads the next 16 weight pairs of panel P (column 2m in the
// low halfword of each 32-bit word, 2m+1 in the high one) and accumulates
// their products with the broadcast activations V16 (column 2m+1) and V17
// (column 2m) into A0..A3, the odd column first (the pair step, bf16.go).
// TRN2 against the zero V31 keeps each word's high halfword (column 2m+1
// as float32), TRN1 moves its low one up (column 2m).
#define PAIRPANEL(PTR, A0, A1, A2, A3) \
	VLD1.P 64(PTR), [V20.H8, V21.H8, V22.H8, V23.H8]; \
	VTRN2  V20.H8, V31.H8, V24.H8; \
	VTRN2  V21.H8, V31.H8, V25.H8; \
	VTRN2  V22.H8, V31.H8, V26.H8; \
	VTRN2  V23.H8, V31.H8, V27.H8; \
	VFMLA  V16.S4, V24.S4, A0.S4; \
	VFMLA  V16.S4, V25.S4, A1.S4; \
	VFMLA  V16.S4, V26.S4, A2.S4; \
	VFMLA  V16.S4, V27.S4, A3.S4; \
	VTRN1  V20.H8, V31.H8, V24.H8; \
	VTRN1  V21.H8, V31.H8, V25.H8; \
	VTRN1  V22.H8, V31.H8, V26.H8; \
	VTRN1  V23.H8, V31.H8, V27.H8; \
	VFMLA  V17.S4, V24.S4, A0.S4; \
	VFMLA  V17.S4, V25.S4, A1.S4; \
	VFMLA  V17.S4, V26.S4, A2.S4; \
	VFMLA  V17.S4, V27.S4, A3.S4

// func gemvBF16NEON(p0, p1, p2, p3 *uint16, x *float32, k int, out *[64]float32)
// k is the number of column pairs; x holds the swapped activations
// (bf16Acts.f).
TEXT ·gemvBF16NEON(SB), NOSPLIT, $0-56
	GEMV4ARGS
	VEOR V31.B16, V31.B16, V31.B16

gemvbf16_loop:
	VLD1R.P 4(R4), [V16.S4]
	VLD1R.P 4(R4), [V17.S4]
	PAIRPANEL(R0, V0, V1, V2, V3)
	PAIRPANEL(R1, V4, V5, V6, V7)
	PAIRPANEL(R2, V8, V9, V10, V11)
	PAIRPANEL(R3, V12, V13, V14, V15)
	SUBS    $1, R5, R5
	BNE     gemvbf16_loop
	STORE16(R6)
	RET

// GEMMX broadcasts activation k of row X and accumulates it times the panel
// row in V24..V27 into A0..A3.
#define GEMMX(X, A0, A1, A2, A3) \
	VLD1R.P 4(X), [V28.S4]; \
	VFMLA   V28.S4, V24.S4, A0.S4; \
	VFMLA   V28.S4, V25.S4, A1.S4; \
	VFMLA   V28.S4, V26.S4, A2.S4; \
	VFMLA   V28.S4, V27.S4, A3.S4

// func gemm16x6NEON(p, x0, x1, x2, x3, x4, x5 *float32, k int, acc *[96]float32)
TEXT ·gemm16x6NEON(SB), NOSPLIT, $0-72
	MOVD p+0(FP), R0
	MOVD x0+8(FP), R1
	MOVD x1+16(FP), R2
	MOVD x2+24(FP), R3
	MOVD x3+32(FP), R4
	MOVD x4+40(FP), R5
	MOVD x5+48(FP), R6
	MOVD k+56(FP), R7
	MOVD acc+64(FP), R8
	MOVD R8, R9
	VLD1.P 64(R9), [V0.S4, V1.S4, V2.S4, V3.S4]
	VLD1.P 64(R9), [V4.S4, V5.S4, V6.S4, V7.S4]
	VLD1.P 64(R9), [V8.S4, V9.S4, V10.S4, V11.S4]
	VLD1.P 64(R9), [V12.S4, V13.S4, V14.S4, V15.S4]
	VLD1.P 64(R9), [V16.S4, V17.S4, V18.S4, V19.S4]
	VLD1.P 64(R9), [V20.S4, V21.S4, V22.S4, V23.S4]

gemm_loop:
	VLD1.P 64(R0), [V24.S4, V25.S4, V26.S4, V27.S4]
	GEMMX(R1, V0, V1, V2, V3)
	GEMMX(R2, V4, V5, V6, V7)
	GEMMX(R3, V8, V9, V10, V11)
	GEMMX(R4, V12, V13, V14, V15)
	GEMMX(R5, V16, V17, V18, V19)
	GEMMX(R6, V20, V21, V22, V23)
	SUBS   $1, R7, R7
	BNE    gemm_loop
	VST1.P [V0.S4, V1.S4, V2.S4, V3.S4], 64(R8)
	VST1.P [V4.S4, V5.S4, V6.S4, V7.S4], 64(R8)
	VST1.P [V8.S4, V9.S4, V10.S4, V11.S4], 64(R8)
	VST1.P [V12.S4, V13.S4, V14.S4, V15.S4], 64(R8)
	VST1.P [V16.S4, V17.S4, V18.S4, V19.S4], 64(R8)
	VST1.P [V20.S4, V21.S4, V22.S4, V23.S4], 64(R8)
	RET
