//go:build !purego

#include "textflag.h"
#include "q8_amd64.h"

// AVX-512 VNNI Q8 kernels (see q8.go). A zmm register holds one group of a
// panel: sixteen rows by four columns. VPDPBUSD multiplies unsigned by
// signed bytes and adds each row's four products into its 32-bit lane
// without saturating, so one side goes in offset by 128 (v^0x80 is v+128
// as an unsigned byte) and each block's sum is corrected by 128 times the
// other side's sum, which the same instruction takes against bytes of one:
// isum = sum((x+128)*w) - 128*sum(w), exact. The gemv offsets the
// activation (one per group) and sums the weights; the gemm offsets the
// weights (once per group for four rows) and takes each row's activations
// as a broadcast memory operand, summing those. Per block, the sums are scaled
// and added in float32 with separate roundings, as gemm16x4Q8Go does, so
// the bits equal the AVX2 and Go kernels'.

// VNNICONSTS sets Z28 to bytes of 0x80 and Z29 to bytes of 1.
#define VNNICONSTS \
	MOVL         $0x80808080, AX; \
	VPBROADCASTD AX, Z28; \
	MOVL         $0x01010101, AX; \
	VPBROADCASTD AX, Z29

// VGROUP takes one group for the four panels R8-R11 at woff: the offset
// activations are in Z16.
#define VGROUP(woff) \
	VMOVDQU64 woff(R8), Z20; \
	VMOVDQU64 woff(R9), Z21; \
	VMOVDQU64 woff(R10), Z22; \
	VMOVDQU64 woff(R11), Z23; \
	VPDPBUSD  Z20, Z16, Z0; \
	VPDPBUSD  Z20, Z29, Z4; \
	VPDPBUSD  Z21, Z16, Z1; \
	VPDPBUSD  Z21, Z29, Z5; \
	VPDPBUSD  Z22, Z16, Z2; \
	VPDPBUSD  Z22, Z29, Z6; \
	VPDPBUSD  Z23, Z16, Z3; \
	VPDPBUSD  Z23, Z29, Z7

// VXGROUP broadcasts the four activation bytes at xoff(SI), offset by 128,
// into Z16 and takes the group at woff.
#define VXGROUP(xoff, woff) \
	VPBROADCASTD xoff(SI), Z16; \
	VPXORD       Z28, Z16, Z16; \
	VGROUP(woff)

// VSUBSUM turns ACC into the block sum: ACC -= 128*SUM (T is scratch).
#define VSUBSUM(SUM, T, ACC) \
	VPSLLD $7, SUM, T; \
	VPSUBD T, ACC, ACC

// VSCALEADD adds float32(ACC) * float32(SC * Z30) to OUT, SC being the 16
// rows' scales (in memory or a register); Z24-Z25 are scratch.
#define VSCALEADD(SC, ACC, OUT) \
	VMULPS    SC, Z30, Z24; \
	VCVTDQ2PS ACC, Z25; \
	VMULPS    Z24, Z25, Z25; \
	VADDPS    Z25, OUT, OUT

// VFLUSH finishes a gemv block: ACC less 128 times the weight sums WS,
// scaled by the scales at soff(S) and the block scale in Z30, into OUT.
#define VFLUSH(soff, S, ACC, WS, OUT) \
	VSUBSUM(WS, Z24, ACC); \
	VSCALEADD(soff(S), ACC, OUT)

#define VZERO8 \
	VPXORD Z0, Z0, Z0; \
	VPXORD Z1, Z1, Z1; \
	VPXORD Z2, Z2, Z2; \
	VPXORD Z3, Z3, Z3; \
	VPXORD Z4, Z4, Z4; \
	VPXORD Z5, Z5, Z5; \
	VPXORD Z6, Z6, Z6; \
	VPXORD Z7, Z7, Z7

// func gemvQ8VNNI(p0, p1, p2, p3 *int8, s0, s1, s2, s3 *float32, x *int8, xs *float32, blocks int, out *[64]float32)
TEXT ·gemvQ8VNNI(SB), NOSPLIT, $0-96
	Q8GEMVARGS
	VNNICONSTS
	VPXORD Z8, Z8, Z8
	VPXORD Z9, Z9, Z9
	VPXORD Z10, Z10, Z10
	VPXORD Z11, Z11, Z11

gemvvnni_block:
	VZERO8
	VXGROUP(0, 0)
	VXGROUP(4, 64)
	VXGROUP(8, 128)
	VXGROUP(12, 192)
	VXGROUP(16, 256)
	VXGROUP(20, 320)
	VXGROUP(24, 384)
	VXGROUP(28, 448)
	VBROADCASTSS (DX), Z30
	VFLUSH(0, R12, Z0, Z4, Z8)
	VFLUSH(0, R13, Z1, Z5, Z9)
	VFLUSH(0, R14, Z2, Z6, Z10)
	VFLUSH(0, R15, Z3, Z7, Z11)
	Q8GEMVNEXT(gemvvnni_block)
	VMOVUPS Z8, 0(DI)
	VMOVUPS Z9, 64(DI)
	VMOVUPS Z10, 128(DI)
	VMOVUPS Z11, 192(DI)
	VZEROUPPER
	RET

// VMROW adds, for the activation row at X, the group at xoff times the
// offset weights in Z20 into ACC, and the group's activation sum into XSUM
// (the activations are the broadcast signed operand, so no offset is
// needed on their side).
#define VMROW(xoff, X, ACC, XSUM) \
	VPDPBUSD.BCST xoff(X), Z20, ACC; \
	VPDPBUSD.BCST xoff(X), Z29, XSUM

// VMGROUP takes one group of four columns of the panel at woff(SI), offset
// by 128 (w^0x80), for the four activation rows R8-R11.
#define VMGROUP(xoff, woff) \
	VPXORD woff(SI), Z28, Z20; \
	VMROW(xoff, R8, Z0, Z4); \
	VMROW(xoff, R9, Z1, Z5); \
	VMROW(xoff, R10, Z2, Z6); \
	VMROW(xoff, R11, Z3, Z7)

// VMFLUSH turns ACC, less 128 times the activation sums XSUM, into the
// block sum and adds float32(isum) * float32(scales Z26 * the block scale
// at (XS)) to OUT.
#define VMFLUSH(XS, ACC, XSUM, OUT) \
	VSUBSUM(XSUM, Z27, ACC); \
	VBROADCASTSS (XS), Z30; \
	VSCALEADD(Z26, ACC, OUT)

// func gemm16x4Q8VNNI(p *int8, s *float32, x0, x1, x2, x3 *int8, xs0, xs1, xs2, xs3 *float32, blocks int, acc *[64]float32)
TEXT ·gemm16x4Q8VNNI(SB), NOSPLIT, $0-96
	Q8GEMMARGS
	VNNICONSTS
	VPXORD Z8, Z8, Z8
	VPXORD Z9, Z9, Z9
	VPXORD Z10, Z10, Z10
	VPXORD Z11, Z11, Z11

gemmvnni_block:
	VZERO8
	VMGROUP(0, 0)
	VMGROUP(4, 64)
	VMGROUP(8, 128)
	VMGROUP(12, 192)
	VMGROUP(16, 256)
	VMGROUP(20, 320)
	VMGROUP(24, 384)
	VMGROUP(28, 448)
	VMOVUPS (DX), Z26
	VMFLUSH(R12, Z0, Z4, Z8)
	VMFLUSH(R13, Z1, Z5, Z9)
	VMFLUSH(R14, Z2, Z6, Z10)
	VMFLUSH(R15, Z3, Z7, Z11)
	Q8GEMMNEXT(gemmvnni_block)
	VMOVUPS Z8, 0(DI)
	VMOVUPS Z9, 64(DI)
	VMOVUPS Z10, 128(DI)
	VMOVUPS Z11, 192(DI)
	VZEROUPPER
	RET
