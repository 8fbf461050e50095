//go:build !purego

#include "textflag.h"

// AMX Q8 kernel (see q8.go): sixteen activation rows by one panel of
// sixteen weight rows, one block of 32 columns per tile product. The Go
// assembler has no AMX instructions, so they are spelled out as bytes; the
// tile registers and the general registers they address are fixed:
//
//	tmm0, tmm3: activations, 16 rows x 32 bytes from (SI) at stride CX
//	tmm1, tmm4: one block of the panel, 8 rows x 64 bytes (its groups of
//	            four columns by sixteen rows) from (DX) at stride BX = 64
//	tmm2, tmm5: the block sums, 16 activation rows x 16 int32, stored to
//	            (DI) and (AX) at stride BX
//
// TDPBSSD multiplies signed bytes by signed bytes into int32 sums, exact,
// so no offset or correction is needed. The loop takes two blocks at a
// time (in tmm0-2 and tmm3-5), so one block's sums can be scaled while the
// next block's product runs. Each stored block is then scaled and added in
// float32 with separate roundings, as gemm16x4Q8Go does, so the bits equal
// the other kernels'.

#define LDTILECFG_AX BYTE $0xc4; BYTE $0xe2; BYTE $0x78; BYTE $0x49; BYTE $0x00
#define TILERELEASE BYTE $0xc4; BYTE $0xe2; BYTE $0x78; BYTE $0x49; BYTE $0xc0
#define TILEZERO_T2 BYTE $0xc4; BYTE $0xe2; BYTE $0x7b; BYTE $0x49; BYTE $0xd0
#define TILEZERO_T5 BYTE $0xc4; BYTE $0xe2; BYTE $0x7b; BYTE $0x49; BYTE $0xe8
#define TILELOADD_T0_SI_CX BYTE $0xc4; BYTE $0xe2; BYTE $0x7b; BYTE $0x4b; BYTE $0x04; BYTE $0x0e
#define TILELOADD_T3_SI_CX BYTE $0xc4; BYTE $0xe2; BYTE $0x7b; BYTE $0x4b; BYTE $0x1c; BYTE $0x0e
#define TILELOADD_T1_DX_BX BYTE $0xc4; BYTE $0xe2; BYTE $0x7b; BYTE $0x4b; BYTE $0x0c; BYTE $0x1a
#define TILELOADD_T4_DX_BX BYTE $0xc4; BYTE $0xe2; BYTE $0x7b; BYTE $0x4b; BYTE $0x24; BYTE $0x1a
#define TDPBSSD_T2_T0_T1 BYTE $0xc4; BYTE $0xe2; BYTE $0x73; BYTE $0x5e; BYTE $0xd0
#define TDPBSSD_T5_T3_T4 BYTE $0xc4; BYTE $0xe2; BYTE $0x5b; BYTE $0x5e; BYTE $0xeb
#define TILESTORED_DI_BX_T2 BYTE $0xc4; BYTE $0xe2; BYTE $0x7a; BYTE $0x4b; BYTE $0x14; BYTE $0x1f
#define TILESTORED_AX_BX_T5 BYTE $0xc4; BYTE $0xe2; BYTE $0x7a; BYTE $0x4b; BYTE $0x2c; BYTE $0x18

// AROW adds, for activation row m (its sums at off(T), its block scale at
// (R11)), float32(isum) * float32(panel scales Z18 * scale) to ACC, and
// moves R11 to the next row's scale.
#define AROW(off, T, ACC) \
	VCVTDQ2PS   off(T), Z16; \
	VMULPS.BCST (R11), Z18, Z17; \
	VMULPS      Z17, Z16, Z16; \
	VADDPS      Z16, ACC, ACC; \
	ADDQ        R10, R11

// AFLUSH scales and adds the block sums stored at (T) into Z0-Z15, with
// the panel's scales at (R8) and the rows' block scales from (R9) at
// stride R10, then moves R8 and R9 to the next block.
#define AFLUSH(T) \
	VMOVUPS (R8), Z18; \
	MOVQ    R9, R11; \
	AROW(0, T, Z0); \
	AROW(64, T, Z1); \
	AROW(128, T, Z2); \
	AROW(192, T, Z3); \
	AROW(256, T, Z4); \
	AROW(320, T, Z5); \
	AROW(384, T, Z6); \
	AROW(448, T, Z7); \
	AROW(512, T, Z8); \
	AROW(576, T, Z9); \
	AROW(640, T, Z10); \
	AROW(704, T, Z11); \
	AROW(768, T, Z12); \
	AROW(832, T, Z13); \
	AROW(896, T, Z14); \
	AROW(960, T, Z15); \
	ADDQ    $64, R8; \
	ADDQ    $4, R9

// func gemm16x16Q8AMX(cfg *[64]byte, p *int8, s *float32, x *int8, xstride int, xs *float32, xsstride int, blocks int, tiles *[512]int32, acc *[256]float32)
TEXT ·gemm16x16Q8AMX(SB), NOSPLIT, $0-80
	MOVQ cfg+0(FP), AX
	LDTILECFG_AX
	MOVQ p+8(FP), DX
	MOVQ s+16(FP), R8
	MOVQ x+24(FP), SI
	MOVQ xstride+32(FP), CX
	MOVQ xs+40(FP), R9
	MOVQ xsstride+48(FP), R10
	MOVQ blocks+56(FP), R12
	MOVQ tiles+64(FP), DI
	LEAQ 1024(DI), AX
	MOVQ acc+72(FP), R13
	MOVQ $64, BX
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	VPXORD Z4, Z4, Z4
	VPXORD Z5, Z5, Z5
	VPXORD Z6, Z6, Z6
	VPXORD Z7, Z7, Z7
	VPXORD Z8, Z8, Z8
	VPXORD Z9, Z9, Z9
	VPXORD Z10, Z10, Z10
	VPXORD Z11, Z11, Z11
	VPXORD Z12, Z12, Z12
	VPXORD Z13, Z13, Z13
	VPXORD Z14, Z14, Z14
	VPXORD Z15, Z15, Z15

amx_pair:
	TILEZERO_T2
	TILELOADD_T0_SI_CX
	TILELOADD_T1_DX_BX
	TDPBSSD_T2_T0_T1
	ADDQ $32, SI
	ADDQ $512, DX
	TILEZERO_T5
	TILELOADD_T3_SI_CX
	TILELOADD_T4_DX_BX
	TDPBSSD_T5_T3_T4
	ADDQ $32, SI
	ADDQ $512, DX
	TILESTORED_DI_BX_T2
	AFLUSH(DI)
	TILESTORED_AX_BX_T5
	AFLUSH(AX)
	SUBQ $2, R12
	JNZ  amx_pair

	TILERELEASE
	VMOVUPS Z0, 0(R13)
	VMOVUPS Z1, 64(R13)
	VMOVUPS Z2, 128(R13)
	VMOVUPS Z3, 192(R13)
	VMOVUPS Z4, 256(R13)
	VMOVUPS Z5, 320(R13)
	VMOVUPS Z6, 384(R13)
	VMOVUPS Z7, 448(R13)
	VMOVUPS Z8, 512(R13)
	VMOVUPS Z9, 576(R13)
	VMOVUPS Z10, 640(R13)
	VMOVUPS Z11, 704(R13)
	VMOVUPS Z12, 768(R13)
	VMOVUPS Z13, 832(R13)
	VMOVUPS Z14, 896(R13)
	VMOVUPS Z15, 960(R13)
	VZEROUPPER
	RET
