//go:build !purego

#include "textflag.h"
#include "q8_amd64.h"

// AVX-512 VNNI Q8 kernels (see q8.go). A zmm register holds one group of a
// panel: sixteen rows by four columns. VPDPBUSD multiplies unsigned by
// signed bytes and adds each row's four products into its 32-bit lane
// without saturating, so the weights go in offset by 128 (w^0x80 is w+128
// as an unsigned byte), once per group, against the activations as the
// signed operand: the lane then holds isum + 128*sum(x), and each block's
// correction 128*sum(x), which the activations carry (q8Acts), is
// subtracted in float32. Both terms are integers below 2^24, so the
// difference is exactly float32(isum). Per block, the sums are scaled and
// added in float32 with separate roundings, as gemm16x4Q8Go does, so the
// bits equal the AVX2 and Go kernels'.

// VNNIOFFSET sets Z28 to bytes of 0x80 and AX to the distance from an
// activation row's block scales to its block corrections (4*blocks).
#define VNNIOFFSET \
	MOVL         $0x80808080, AX; \
	VPBROADCASTD AX, Z28; \
	MOVQ         CX, AX; \
	SHLQ         $2, AX

// VDOT adds the group at woff(P), offset by 128, times the broadcast
// activations X into ACC (T is scratch).
#define VDOT(woff, P, X, T, ACC) \
	VPXORD   woff(P), Z28, T; \
	VPDPBUSD X, T, ACC

// VFLUSH finishes a block of ACC for the activation row whose block scale
// (broadcast in Z30) and correction XS points at: OUT += (float32(ACC) -
// correction) * float32(SC * scale), SC being the 16 rows' scales (in
// memory or a register); Z24-Z25 are scratch.
#define VFLUSH(SC, XS, ACC, OUT) \
	VCVTDQ2PS        ACC, Z25; \
	VSUBPS.BCST      (XS)(AX*1), Z25, Z25; \
	VMULPS           SC, Z30, Z24; \
	VMULPS           Z24, Z25, Z25; \
	VADDPS           Z25, OUT, OUT

#define VZERO4 \
	VPXORD Z0, Z0, Z0; \
	VPXORD Z1, Z1, Z1; \
	VPXORD Z2, Z2, Z2; \
	VPXORD Z3, Z3, Z3

// VXGROUP broadcasts the four activation bytes at xoff(SI) into Z16 and
// takes the group at woff of the four panels R8-R11.
#define VXGROUP(xoff, woff) \
	VPBROADCASTD xoff(SI), Z16; \
	VDOT(woff, R8, Z16, Z20, Z0); \
	VDOT(woff, R9, Z16, Z21, Z1); \
	VDOT(woff, R10, Z16, Z22, Z2); \
	VDOT(woff, R11, Z16, Z23, Z3)

// func gemvQ8VNNI(p0, p1, p2, p3 *int8, s0, s1, s2, s3 *float32, x *int8, xs *float32, blocks int, out *[64]float32)
TEXT ·gemvQ8VNNI(SB), NOSPLIT, $0-96
	Q8GEMVARGS
	VNNIOFFSET
	VPXORD Z8, Z8, Z8
	VPXORD Z9, Z9, Z9
	VPXORD Z10, Z10, Z10
	VPXORD Z11, Z11, Z11

gemvvnni_block:
	VZERO4
	VXGROUP(0, 0)
	VXGROUP(4, 64)
	VXGROUP(8, 128)
	VXGROUP(12, 192)
	VXGROUP(16, 256)
	VXGROUP(20, 320)
	VXGROUP(24, 384)
	VXGROUP(28, 448)
	VBROADCASTSS (DX), Z30
	VFLUSH(0(R12), DX, Z0, Z8)
	VFLUSH(0(R13), DX, Z1, Z9)
	VFLUSH(0(R14), DX, Z2, Z10)
	VFLUSH(0(R15), DX, Z3, Z11)
	Q8GEMVNEXT(gemvvnni_block)
	VMOVUPS Z8, 0(DI)
	VMOVUPS Z9, 64(DI)
	VMOVUPS Z10, 128(DI)
	VMOVUPS Z11, 192(DI)
	VZEROUPPER
	RET

// VMGROUP takes one group of four columns of the panel at woff(SI), offset
// by 128, for the four activation rows R8-R11 (broadcast memory operands).
#define VMGROUP(xoff, woff) \
	VPXORD        woff(SI), Z28, Z20; \
	VPDPBUSD.BCST xoff(R8), Z20, Z0; \
	VPDPBUSD.BCST xoff(R9), Z20, Z1; \
	VPDPBUSD.BCST xoff(R10), Z20, Z2; \
	VPDPBUSD.BCST xoff(R11), Z20, Z3

// VMFLUSH is VFLUSH for the gemm's activation row XS, with the panel's
// scales in Z26.
#define VMFLUSH(XS, ACC, OUT) \
	VBROADCASTSS (XS), Z30; \
	VFLUSH(Z26, XS, ACC, OUT)

// func gemm16x4Q8VNNI(p *int8, s *float32, x0, x1, x2, x3 *int8, xs0, xs1, xs2, xs3 *float32, blocks int, acc *[64]float32)
TEXT ·gemm16x4Q8VNNI(SB), NOSPLIT, $0-96
	Q8GEMMARGS
	VNNIOFFSET
	VPXORD Z8, Z8, Z8
	VPXORD Z9, Z9, Z9
	VPXORD Z10, Z10, Z10
	VPXORD Z11, Z11, Z11

gemmvnni_block:
	VZERO4
	VMGROUP(0, 0)
	VMGROUP(4, 64)
	VMGROUP(8, 128)
	VMGROUP(12, 192)
	VMGROUP(16, 256)
	VMGROUP(20, 320)
	VMGROUP(24, 384)
	VMGROUP(28, 448)
	VMOVUPS (DX), Z26
	VMFLUSH(R12, Z0, Z8)
	VMFLUSH(R13, Z1, Z9)
	VMFLUSH(R14, Z2, Z10)
	VMFLUSH(R15, Z3, Z11)
	Q8GEMMNEXT(gemmvnni_block)
	VMOVUPS Z8, 0(DI)
	VMOVUPS Z9, 64(DI)
	VMOVUPS Z10, 128(DI)
	VMOVUPS Z11, 192(DI)
	VZEROUPPER
	RET
