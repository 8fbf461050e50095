//go:build !purego

#include "textflag.h"
#include "q8_amd64.h"

// AVX2 Q8 kernels (see q8.go). A 32-byte load of a panel holds eight rows by
// four columns. Each step broadcasts four activation bytes x, applies their
// signs to the weights (VPSIGNB) so |x| can be the unsigned operand of
// VPMADDUBSW (|x|, |w| <= 127 and two products per 16-bit lane: no
// saturation), and sums the pairs into 32-bit lanes with VPMADDWD by ones:
// exact integer block sums. Per block, each sum is scaled and added in
// float32 with separate roundings, as gemm16x4Q8Go does.

// Q8ONES sets Y8 to sixteen 16-bit ones.
#define Q8ONES \
	VPCMPEQW Y8, Y8, Y8; \
	VPSRLW   $15, Y8, Y8

#define ZEROI8 \
	VPXOR Y0, Y0, Y0; \
	VPXOR Y1, Y1, Y1; \
	VPXOR Y2, Y2, Y2; \
	VPXOR Y3, Y3, Y3; \
	VPXOR Y4, Y4, Y4; \
	VPXOR Y5, Y5, Y5; \
	VPXOR Y6, Y6, Y6; \
	VPXOR Y7, Y7, Y7

// ZEROOUT clears the 64 float32 outputs at (DI).
#define ZEROOUT \
	VXORPS  Y9, Y9, Y9; \
	VMOVUPS Y9, 0(DI); \
	VMOVUPS Y9, 32(DI); \
	VMOVUPS Y9, 64(DI); \
	VMOVUPS Y9, 96(DI); \
	VMOVUPS Y9, 128(DI); \
	VMOVUPS Y9, 160(DI); \
	VMOVUPS Y9, 192(DI); \
	VMOVUPS Y9, 224(DI)

// DOT4 adds to the eight 32-bit lanes of ACC the dot products of the four
// activation bytes X (broadcast; XA = |X|) with the eight rows of four
// weights in W, through T (which may be W).
#define DOT4(X, XA, W, T, ACC) \
	VPSIGNB    X, W, T; \
	VPMADDUBSW T, XA, T; \
	VPMADDWD   Y8, T, T; \
	VPADDD     T, ACC, ACC

// GV loads 32 weight bytes at off(P) into T and takes one DOT4 into ACC
// with the broadcast activations Y9 (|x| in Y10).
#define GV(off, P, T, ACC) \
	VMOVDQU off(P), T; \
	DOT4(Y9, Y10, T, T, ACC)

// GVGROUP takes one group of four columns of the four panels R8-R11: the
// activations at xoff(SI), the weights at woff and woff+32 of each panel.
#define GVGROUP(xoff, woff, woff2) \
	VPBROADCASTD xoff(SI), Y9; \
	VPABSB       Y9, Y10; \
	GV(woff, R8, Y11, Y0); \
	GV(woff2, R8, Y12, Y1); \
	GV(woff, R9, Y13, Y2); \
	GV(woff2, R9, Y14, Y3); \
	GV(woff, R10, Y11, Y4); \
	GV(woff2, R10, Y12, Y5); \
	GV(woff, R11, Y13, Y6); \
	GV(woff2, R11, Y14, Y7)

// FLUSH adds float32(ACC) * float32(SC * Y15) to the eight outputs at
// ooff(DI), SC being their eight scales (in memory or a register).
#define FLUSH(SC, ACC, ooff) \
	VMULPS    SC, Y15, Y11; \
	VCVTDQ2PS ACC, Y12; \
	VMULPS    Y11, Y12, Y12; \
	VADDPS    ooff(DI), Y12, Y12; \
	VMOVUPS   Y12, ooff(DI)

// func gemvQ8AVX2(p0, p1, p2, p3 *int8, s0, s1, s2, s3 *float32, x *int8, xs *float32, blocks int, out *[64]float32)
TEXT ·gemvQ8AVX2(SB), NOSPLIT, $0-96
	Q8GEMVARGS
	Q8ONES
	ZEROOUT

gemvq8_block:
	ZEROI8
	GVGROUP(0, 0, 32)
	GVGROUP(4, 64, 96)
	GVGROUP(8, 128, 160)
	GVGROUP(12, 192, 224)
	GVGROUP(16, 256, 288)
	GVGROUP(20, 320, 352)
	GVGROUP(24, 384, 416)
	GVGROUP(28, 448, 480)
	VBROADCASTSS (DX), Y15
	FLUSH(0(R12), Y0, 0)
	FLUSH(32(R12), Y1, 32)
	FLUSH(0(R13), Y2, 64)
	FLUSH(32(R13), Y3, 96)
	FLUSH(0(R14), Y4, 128)
	FLUSH(32(R14), Y5, 160)
	FLUSH(0(R15), Y6, 192)
	FLUSH(32(R15), Y7, 224)
	Q8GEMVNEXT(gemvq8_block)
	VZEROUPPER
	RET

// GMROW takes one group for the activation row at xoff(X) against the
// weights in Y9 (rows 0-7) and Y10 (rows 8-15), whose magnitudes are in
// Y13 and Y14, into A0 and A1: here the weights' signs go onto the
// activations, so |w| is taken once per group for all four rows.
#define GMROW(xoff, X, A0, A1) \
	VPBROADCASTD xoff(X), Y11; \
	VPSIGNB      Y9, Y11, Y12; \
	VPSIGNB      Y10, Y11, Y15; \
	VPMADDUBSW   Y12, Y13, Y12; \
	VPMADDUBSW   Y15, Y14, Y15; \
	VPMADDWD     Y8, Y12, Y12; \
	VPMADDWD     Y8, Y15, Y15; \
	VPADDD       Y12, A0, A0; \
	VPADDD       Y15, A1, A1

// GMGROUP takes one group of four columns of the panel at (SI) for the
// four activation rows R8-R11.
#define GMGROUP(xoff, woff, woff2) \
	VMOVDQU woff(SI), Y9; \
	VMOVDQU woff2(SI), Y10; \
	VPABSB  Y9, Y13; \
	VPABSB  Y10, Y14; \
	GMROW(xoff, R8, Y0, Y1); \
	GMROW(xoff, R9, Y2, Y3); \
	GMROW(xoff, R10, Y4, Y5); \
	GMROW(xoff, R11, Y6, Y7)

// GMFLUSH adds float32(A0:A1) * float32(scales Y9:Y10 * the block scale at
// (XS)) to the sixteen outputs at ooff(DI).
#define GMFLUSH(XS, A0, A1, ooff, ooff2) \
	VBROADCASTSS (XS), Y15; \
	FLUSH(Y9, A0, ooff); \
	FLUSH(Y10, A1, ooff2)

// func gemm16x4Q8AVX2(p *int8, s *float32, x0, x1, x2, x3 *int8, xs0, xs1, xs2, xs3 *float32, blocks int, acc *[64]float32)
TEXT ·gemm16x4Q8AVX2(SB), NOSPLIT, $0-96
	Q8GEMMARGS
	Q8ONES
	ZEROOUT

gemmq8_block:
	ZEROI8
	GMGROUP(0, 0, 32)
	GMGROUP(4, 64, 96)
	GMGROUP(8, 128, 160)
	GMGROUP(12, 192, 224)
	GMGROUP(16, 256, 288)
	GMGROUP(20, 320, 352)
	GMGROUP(24, 384, 416)
	GMGROUP(28, 448, 480)
	VMOVUPS (DX), Y9
	VMOVUPS 32(DX), Y10
	GMFLUSH(R12, Y0, Y1, 0, 32)
	GMFLUSH(R13, Y2, Y3, 64, 96)
	GMFLUSH(R14, Y4, Y5, 128, 160)
	GMFLUSH(R15, Y6, Y7, 192, 224)
	Q8GEMMNEXT(gemmq8_block)
	VZEROUPPER
	RET
