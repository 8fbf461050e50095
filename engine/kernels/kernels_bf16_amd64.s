//go:build !purego

#include "textflag.h"

// AVX512_BF16 kernels: the BF16 products (bf16.go) on VDPBF16PS. Each
// instruction adds, per 32-bit lane, a weight pair's two products with an
// activation pair to the lane's float32 sum, the odd column first, as the
// pair step of the other kernels does; each output lives in one lane and
// takes its pairs in order of k, so the bits are theirs.
//
// The Go assembler has no VDPBF16PS: each one below is BYTEs, with the
// instruction they encode on the line above (TestBF16EncodingsMatchAs
// assembles those lines with GNU as and compares).

// vdpbf16ps (%r8),%zmm16,%zmm0
#define DPGEMV0 BYTE $0x62; BYTE $0xd2; BYTE $0x7e; BYTE $0x40; BYTE $0x52; BYTE $0x00

// vdpbf16ps (%r9),%zmm16,%zmm1
#define DPGEMV1 BYTE $0x62; BYTE $0xd2; BYTE $0x7e; BYTE $0x40; BYTE $0x52; BYTE $0x09

// vdpbf16ps (%r10),%zmm16,%zmm2
#define DPGEMV2 BYTE $0x62; BYTE $0xd2; BYTE $0x7e; BYTE $0x40; BYTE $0x52; BYTE $0x12

// vdpbf16ps (%r11),%zmm16,%zmm3
#define DPGEMV3 BYTE $0x62; BYTE $0xd2; BYTE $0x7e; BYTE $0x40; BYTE $0x52; BYTE $0x1b

// vdpbf16ps (%r8){1to16},%zmm12,%zmm0
#define DPROW0 BYTE $0x62; BYTE $0xd2; BYTE $0x1e; BYTE $0x58; BYTE $0x52; BYTE $0x00

// vdpbf16ps (%r8,%rdx,1){1to16},%zmm12,%zmm1
#define DPROW1 BYTE $0x62; BYTE $0xd2; BYTE $0x1e; BYTE $0x58; BYTE $0x52; BYTE $0x0c; BYTE $0x10

// vdpbf16ps (%r8,%rdx,2){1to16},%zmm12,%zmm2
#define DPROW2 BYTE $0x62; BYTE $0xd2; BYTE $0x1e; BYTE $0x58; BYTE $0x52; BYTE $0x14; BYTE $0x50

// vdpbf16ps (%r9){1to16},%zmm12,%zmm3
#define DPROW3 BYTE $0x62; BYTE $0xd2; BYTE $0x1e; BYTE $0x58; BYTE $0x52; BYTE $0x19

// vdpbf16ps (%r9,%rdx,1){1to16},%zmm12,%zmm4
#define DPROW4 BYTE $0x62; BYTE $0xd2; BYTE $0x1e; BYTE $0x58; BYTE $0x52; BYTE $0x24; BYTE $0x11

// vdpbf16ps (%r9,%rdx,2){1to16},%zmm12,%zmm5
#define DPROW5 BYTE $0x62; BYTE $0xd2; BYTE $0x1e; BYTE $0x58; BYTE $0x52; BYTE $0x2c; BYTE $0x51

// vdpbf16ps (%r10){1to16},%zmm12,%zmm6
#define DPROW6 BYTE $0x62; BYTE $0xd2; BYTE $0x1e; BYTE $0x58; BYTE $0x52; BYTE $0x32

// vdpbf16ps (%r10,%rdx,1){1to16},%zmm12,%zmm7
#define DPROW7 BYTE $0x62; BYTE $0xd2; BYTE $0x1e; BYTE $0x58; BYTE $0x52; BYTE $0x3c; BYTE $0x12

// vdpbf16ps (%r10,%rdx,2){1to16},%zmm12,%zmm8
#define DPROW8 BYTE $0x62; BYTE $0x52; BYTE $0x1e; BYTE $0x58; BYTE $0x52; BYTE $0x04; BYTE $0x52

// vdpbf16ps (%r11){1to16},%zmm12,%zmm9
#define DPROW9 BYTE $0x62; BYTE $0x52; BYTE $0x1e; BYTE $0x58; BYTE $0x52; BYTE $0x0b

// vdpbf16ps (%r11,%rdx,1){1to16},%zmm12,%zmm10
#define DPROW10 BYTE $0x62; BYTE $0x52; BYTE $0x1e; BYTE $0x58; BYTE $0x52; BYTE $0x14; BYTE $0x13

// vdpbf16ps (%r11,%rdx,2){1to16},%zmm12,%zmm11
#define DPROW11 BYTE $0x62; BYTE $0x52; BYTE $0x1e; BYTE $0x58; BYTE $0x52; BYTE $0x1c; BYTE $0x53

// vdpbf16ps (%r8){1to16},%zmm16,%zmm0
#define DP16ROW0 BYTE $0x62; BYTE $0xd2; BYTE $0x7e; BYTE $0x50; BYTE $0x52; BYTE $0x00

// vdpbf16ps (%r8,%rdx,1){1to16},%zmm16,%zmm1
#define DP16ROW1 BYTE $0x62; BYTE $0xd2; BYTE $0x7e; BYTE $0x50; BYTE $0x52; BYTE $0x0c; BYTE $0x10

// vdpbf16ps (%r8,%rdx,2){1to16},%zmm16,%zmm2
#define DP16ROW2 BYTE $0x62; BYTE $0xd2; BYTE $0x7e; BYTE $0x50; BYTE $0x52; BYTE $0x14; BYTE $0x50

// vdpbf16ps (%r8,%rbx,1){1to16},%zmm16,%zmm3
#define DP16ROW3 BYTE $0x62; BYTE $0xd2; BYTE $0x7e; BYTE $0x50; BYTE $0x52; BYTE $0x1c; BYTE $0x18

// vdpbf16ps (%r9){1to16},%zmm16,%zmm4
#define DP16ROW4 BYTE $0x62; BYTE $0xd2; BYTE $0x7e; BYTE $0x50; BYTE $0x52; BYTE $0x21

// vdpbf16ps (%r9,%rdx,1){1to16},%zmm16,%zmm5
#define DP16ROW5 BYTE $0x62; BYTE $0xd2; BYTE $0x7e; BYTE $0x50; BYTE $0x52; BYTE $0x2c; BYTE $0x11

// vdpbf16ps (%r9,%rdx,2){1to16},%zmm16,%zmm6
#define DP16ROW6 BYTE $0x62; BYTE $0xd2; BYTE $0x7e; BYTE $0x50; BYTE $0x52; BYTE $0x34; BYTE $0x51

// vdpbf16ps (%r9,%rbx,1){1to16},%zmm16,%zmm7
#define DP16ROW7 BYTE $0x62; BYTE $0xd2; BYTE $0x7e; BYTE $0x50; BYTE $0x52; BYTE $0x3c; BYTE $0x19

// vdpbf16ps (%r10){1to16},%zmm16,%zmm8
#define DP16ROW8 BYTE $0x62; BYTE $0x52; BYTE $0x7e; BYTE $0x50; BYTE $0x52; BYTE $0x02

// vdpbf16ps (%r10,%rdx,1){1to16},%zmm16,%zmm9
#define DP16ROW9 BYTE $0x62; BYTE $0x52; BYTE $0x7e; BYTE $0x50; BYTE $0x52; BYTE $0x0c; BYTE $0x12

// vdpbf16ps (%r10,%rdx,2){1to16},%zmm16,%zmm10
#define DP16ROW10 BYTE $0x62; BYTE $0x52; BYTE $0x7e; BYTE $0x50; BYTE $0x52; BYTE $0x14; BYTE $0x52

// vdpbf16ps (%r10,%rbx,1){1to16},%zmm16,%zmm11
#define DP16ROW11 BYTE $0x62; BYTE $0x52; BYTE $0x7e; BYTE $0x50; BYTE $0x52; BYTE $0x1c; BYTE $0x1a

// vdpbf16ps (%r11){1to16},%zmm16,%zmm12
#define DP16ROW12 BYTE $0x62; BYTE $0x52; BYTE $0x7e; BYTE $0x50; BYTE $0x52; BYTE $0x23

// vdpbf16ps (%r11,%rdx,1){1to16},%zmm16,%zmm13
#define DP16ROW13 BYTE $0x62; BYTE $0x52; BYTE $0x7e; BYTE $0x50; BYTE $0x52; BYTE $0x2c; BYTE $0x13

// vdpbf16ps (%r11,%rdx,2){1to16},%zmm16,%zmm14
#define DP16ROW14 BYTE $0x62; BYTE $0x52; BYTE $0x7e; BYTE $0x50; BYTE $0x52; BYTE $0x34; BYTE $0x53

// vdpbf16ps (%r11,%rbx,1){1to16},%zmm16,%zmm15
#define DP16ROW15 BYTE $0x62; BYTE $0x52; BYTE $0x7e; BYTE $0x50; BYTE $0x52; BYTE $0x3c; BYTE $0x1b

// func gemm16x16BF16DPAVX512(p *uint16, x *uint16, stride, k int, acc *[256]float32, pf unsafe.Pointer, pfStride int)
// gemm16x16BF16DPAVX512 is gemm16x12BF16DPAVX512 for sixteen rows: R8
// holds rows 0-3 (base, +DX, +2*DX, +BX = 3*DX bytes), R9 4-7, R10 8-11,
// R11 12-15; Z0-Z15 the accumulators, Z16 the weight pairs.
TEXT ·gemm16x16BF16DPAVX512(SB), NOSPLIT, $0-56
	MOVQ    p+0(FP), SI
	MOVQ    x+8(FP), R8
	MOVQ    stride+16(FP), DX
	MOVQ    k+24(FP), CX
	MOVQ    acc+32(FP), DI
	MOVQ    pf+40(FP), R14
	MOVQ    pfStride+48(FP), R15
	SHLQ    $1, DX
	LEAQ    (DX)(DX*2), BX
	LEAQ    (R8)(DX*4), R9
	LEAQ    (R9)(DX*4), R10
	LEAQ    (R10)(DX*4), R11
	VMOVUPS 0(DI), Z0
	VMOVUPS 64(DI), Z1
	VMOVUPS 128(DI), Z2
	VMOVUPS 192(DI), Z3
	VMOVUPS 256(DI), Z4
	VMOVUPS 320(DI), Z5
	VMOVUPS 384(DI), Z6
	VMOVUPS 448(DI), Z7
	VMOVUPS 512(DI), Z8
	VMOVUPS 576(DI), Z9
	VMOVUPS 640(DI), Z10
	VMOVUPS 704(DI), Z11
	VMOVUPS 768(DI), Z12
	VMOVUPS 832(DI), Z13
	VMOVUPS 896(DI), Z14
	VMOVUPS 960(DI), Z15

dp16_loop:
	VMOVDQU32  (SI), Z16
	PREFETCHT0 (R14)
	ADDQ       R15, R14
	DP16ROW0
	DP16ROW1
	DP16ROW2
	DP16ROW3
	DP16ROW4
	DP16ROW5
	DP16ROW6
	DP16ROW7
	DP16ROW8
	DP16ROW9
	DP16ROW10
	DP16ROW11
	DP16ROW12
	DP16ROW13
	DP16ROW14
	DP16ROW15
	ADDQ       $4, R8
	ADDQ       $4, R9
	ADDQ       $4, R10
	ADDQ       $4, R11
	ADDQ       $64, SI
	DECQ       CX
	JNZ        dp16_loop
	VMOVUPS Z0, 0(DI)
	VMOVUPS Z1, 64(DI)
	VMOVUPS Z2, 128(DI)
	VMOVUPS Z3, 192(DI)
	VMOVUPS Z4, 256(DI)
	VMOVUPS Z5, 320(DI)
	VMOVUPS Z6, 384(DI)
	VMOVUPS Z7, 448(DI)
	VMOVUPS Z8, 512(DI)
	VMOVUPS Z9, 576(DI)
	VMOVUPS Z10, 640(DI)
	VMOVUPS Z11, 704(DI)
	VMOVUPS Z12, 768(DI)
	VMOVUPS Z13, 832(DI)
	VMOVUPS Z14, 896(DI)
	VMOVUPS Z15, 960(DI)
	VZEROUPPER
	RET

// vdpbf16ps %zmm16,%zmm18,%zmm0
#define DP2W0R0 BYTE $0x62; BYTE $0xb2; BYTE $0x6e; BYTE $0x40; BYTE $0x52; BYTE $0xc0

// vdpbf16ps %zmm17,%zmm18,%zmm8
#define DP2W1R0 BYTE $0x62; BYTE $0x32; BYTE $0x6e; BYTE $0x40; BYTE $0x52; BYTE $0xc1

// vdpbf16ps %zmm16,%zmm19,%zmm1
#define DP2W0R1 BYTE $0x62; BYTE $0xb2; BYTE $0x66; BYTE $0x40; BYTE $0x52; BYTE $0xc8

// vdpbf16ps %zmm17,%zmm19,%zmm9
#define DP2W1R1 BYTE $0x62; BYTE $0x32; BYTE $0x66; BYTE $0x40; BYTE $0x52; BYTE $0xc9

// vdpbf16ps %zmm16,%zmm20,%zmm2
#define DP2W0R2 BYTE $0x62; BYTE $0xb2; BYTE $0x5e; BYTE $0x40; BYTE $0x52; BYTE $0xd0

// vdpbf16ps %zmm17,%zmm20,%zmm10
#define DP2W1R2 BYTE $0x62; BYTE $0x32; BYTE $0x5e; BYTE $0x40; BYTE $0x52; BYTE $0xd1

// vdpbf16ps %zmm16,%zmm21,%zmm3
#define DP2W0R3 BYTE $0x62; BYTE $0xb2; BYTE $0x56; BYTE $0x40; BYTE $0x52; BYTE $0xd8

// vdpbf16ps %zmm17,%zmm21,%zmm11
#define DP2W1R3 BYTE $0x62; BYTE $0x32; BYTE $0x56; BYTE $0x40; BYTE $0x52; BYTE $0xd9

// vdpbf16ps %zmm16,%zmm18,%zmm4
#define DP2W0R4 BYTE $0x62; BYTE $0xb2; BYTE $0x6e; BYTE $0x40; BYTE $0x52; BYTE $0xe0

// vdpbf16ps %zmm17,%zmm18,%zmm12
#define DP2W1R4 BYTE $0x62; BYTE $0x32; BYTE $0x6e; BYTE $0x40; BYTE $0x52; BYTE $0xe1

// vdpbf16ps %zmm16,%zmm19,%zmm5
#define DP2W0R5 BYTE $0x62; BYTE $0xb2; BYTE $0x66; BYTE $0x40; BYTE $0x52; BYTE $0xe8

// vdpbf16ps %zmm17,%zmm19,%zmm13
#define DP2W1R5 BYTE $0x62; BYTE $0x32; BYTE $0x66; BYTE $0x40; BYTE $0x52; BYTE $0xe9

// vdpbf16ps %zmm16,%zmm20,%zmm6
#define DP2W0R6 BYTE $0x62; BYTE $0xb2; BYTE $0x5e; BYTE $0x40; BYTE $0x52; BYTE $0xf0

// vdpbf16ps %zmm17,%zmm20,%zmm14
#define DP2W1R6 BYTE $0x62; BYTE $0x32; BYTE $0x5e; BYTE $0x40; BYTE $0x52; BYTE $0xf1

// vdpbf16ps %zmm16,%zmm21,%zmm7
#define DP2W0R7 BYTE $0x62; BYTE $0xb2; BYTE $0x56; BYTE $0x40; BYTE $0x52; BYTE $0xf8

// vdpbf16ps %zmm17,%zmm21,%zmm15
#define DP2W1R7 BYTE $0x62; BYTE $0x32; BYTE $0x56; BYTE $0x40; BYTE $0x52; BYTE $0xf9

// func gemm32x8BF16DPAVX512(p *uint16, pstride int, x *uint16, stride, k int, acc0, acc1 *[128]float32, pf unsafe.Pointer, pfStride int)
// gemm32x8BF16DPAVX512 runs two panels' segments at once, the second
// pstride bytes after the first, over eight activation rows (R8 rows 0-3
// at base, +DX, +2*DX, +BX = 3*DX bytes; R9 rows 4-7): each activation
// pair is broadcast once for both panels. Z0-Z7 and Z8-Z15 are the two
// panels' accumulators (acc0, acc1), Z16 and Z17 their weight pairs. It
// prefetches at pf and pf+pstride.
TEXT ·gemm32x8BF16DPAVX512(SB), NOSPLIT, $0-72
	MOVQ    p+0(FP), SI
	MOVQ    pstride+8(FP), R12
	MOVQ    x+16(FP), R8
	MOVQ    stride+24(FP), DX
	MOVQ    k+32(FP), CX
	MOVQ    acc0+40(FP), DI
	MOVQ    acc1+48(FP), R13
	MOVQ    pf+56(FP), R14
	MOVQ    pfStride+64(FP), R15
	SHLQ    $1, DX
	LEAQ    (DX)(DX*2), BX
	LEAQ    (R8)(DX*4), R9
	VMOVUPS 0(DI), Z0
	VMOVUPS 64(DI), Z1
	VMOVUPS 128(DI), Z2
	VMOVUPS 192(DI), Z3
	VMOVUPS 256(DI), Z4
	VMOVUPS 320(DI), Z5
	VMOVUPS 384(DI), Z6
	VMOVUPS 448(DI), Z7
	VMOVUPS 0(R13), Z8
	VMOVUPS 64(R13), Z9
	VMOVUPS 128(R13), Z10
	VMOVUPS 192(R13), Z11
	VMOVUPS 256(R13), Z12
	VMOVUPS 320(R13), Z13
	VMOVUPS 384(R13), Z14
	VMOVUPS 448(R13), Z15

dp32x8_loop:
	VMOVDQU32  (SI), Z16
	VMOVDQU32  (SI)(R12*1), Z17
	PREFETCHT0 (R14)
	PREFETCHT0 (R14)(R12*1)
	ADDQ       R15, R14
	VPBROADCASTD (R8), Z18
	DP2W0R0
	DP2W1R0
	VPBROADCASTD (R8)(DX*1), Z19
	DP2W0R1
	DP2W1R1
	VPBROADCASTD (R8)(DX*2), Z20
	DP2W0R2
	DP2W1R2
	VPBROADCASTD (R8)(BX*1), Z21
	DP2W0R3
	DP2W1R3
	VPBROADCASTD (R9), Z18
	DP2W0R4
	DP2W1R4
	VPBROADCASTD (R9)(DX*1), Z19
	DP2W0R5
	DP2W1R5
	VPBROADCASTD (R9)(DX*2), Z20
	DP2W0R6
	DP2W1R6
	VPBROADCASTD (R9)(BX*1), Z21
	DP2W0R7
	DP2W1R7
	ADDQ       $4, R8
	ADDQ       $4, R9
	ADDQ       $64, SI
	DECQ       CX
	JNZ        dp32x8_loop
	VMOVUPS Z0, 0(DI)
	VMOVUPS Z1, 64(DI)
	VMOVUPS Z2, 128(DI)
	VMOVUPS Z3, 192(DI)
	VMOVUPS Z4, 256(DI)
	VMOVUPS Z5, 320(DI)
	VMOVUPS Z6, 384(DI)
	VMOVUPS Z7, 448(DI)
	VMOVUPS Z8, 0(R13)
	VMOVUPS Z9, 64(R13)
	VMOVUPS Z10, 128(R13)
	VMOVUPS Z11, 192(R13)
	VMOVUPS Z12, 256(R13)
	VMOVUPS Z13, 320(R13)
	VMOVUPS Z14, 384(R13)
	VMOVUPS Z15, 448(R13)
	VZEROUPPER
	RET

// func gemvBF16DPAVX512(p0, p1, p2, p3 *uint16, x *uint16, k int, out *[64]float32)
// k is the number of column pairs; x holds them as bf16 pairs.
TEXT ·gemvBF16DPAVX512(SB), NOSPLIT, $0-56
	MOVQ   p0+0(FP), R8
	MOVQ   p1+8(FP), R9
	MOVQ   p2+16(FP), R10
	MOVQ   p3+24(FP), R11
	MOVQ   x+32(FP), SI
	MOVQ   k+40(FP), CX
	MOVQ   out+48(FP), DI
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3

dpgemv_loop:
	VPBROADCASTD (SI), Z16
	DPGEMV0
	DPGEMV1
	DPGEMV2
	DPGEMV3
	ADDQ         $4, SI
	ADDQ         $64, R8
	ADDQ         $64, R9
	ADDQ         $64, R10
	ADDQ         $64, R11
	DECQ         CX
	JNZ          dpgemv_loop
	VMOVUPS      Z0, 0(DI)
	VMOVUPS      Z1, 64(DI)
	VMOVUPS      Z2, 128(DI)
	VMOVUPS      Z3, 192(DI)
	VZEROUPPER
	RET

// func gemm16x12BF16DPAVX512(p *uint16, x *uint16, stride, k int, acc *[192]float32, pf unsafe.Pointer, pfStride int)
// Rows j of x start at x[j*stride] (bf16 values); k is the number of
// column pairs. R8 holds rows 0-2, R9 3-5, R10 6-8, R11 9-11 (each base,
// +DX and +2*DX bytes), Z0-Z11 the accumulators, Z12 the weight pairs.
TEXT ·gemm16x12BF16DPAVX512(SB), NOSPLIT, $0-56
	MOVQ    p+0(FP), SI
	MOVQ    x+8(FP), R8
	MOVQ    stride+16(FP), DX
	MOVQ    k+24(FP), CX
	MOVQ    acc+32(FP), DI
	MOVQ    pf+40(FP), R14
	MOVQ    pfStride+48(FP), R15
	SHLQ    $1, DX
	LEAQ    (DX)(DX*2), BX
	LEAQ    (R8)(BX*1), R9
	LEAQ    (R9)(BX*1), R10
	LEAQ    (R10)(BX*1), R11
	VMOVUPS 0(DI), Z0
	VMOVUPS 64(DI), Z1
	VMOVUPS 128(DI), Z2
	VMOVUPS 192(DI), Z3
	VMOVUPS 256(DI), Z4
	VMOVUPS 320(DI), Z5
	VMOVUPS 384(DI), Z6
	VMOVUPS 448(DI), Z7
	VMOVUPS 512(DI), Z8
	VMOVUPS 576(DI), Z9
	VMOVUPS 640(DI), Z10
	VMOVUPS 704(DI), Z11

dp12_loop:
	VMOVDQU32  (SI), Z12
	PREFETCHT0 (R14)
	ADDQ       R15, R14
	DPROW0
	DPROW1
	DPROW2
	DPROW3
	DPROW4
	DPROW5
	DPROW6
	DPROW7
	DPROW8
	DPROW9
	DPROW10
	DPROW11
	ADDQ       $4, R8
	ADDQ       $4, R9
	ADDQ       $4, R10
	ADDQ       $4, R11
	ADDQ       $64, SI
	DECQ       CX
	JNZ        dp12_loop
	VMOVUPS    Z0, 0(DI)
	VMOVUPS    Z1, 64(DI)
	VMOVUPS    Z2, 128(DI)
	VMOVUPS    Z3, 192(DI)
	VMOVUPS    Z4, 256(DI)
	VMOVUPS    Z5, 320(DI)
	VMOVUPS    Z6, 384(DI)
	VMOVUPS    Z7, 448(DI)
	VMOVUPS    Z8, 512(DI)
	VMOVUPS    Z9, 576(DI)
	VMOVUPS    Z10, 640(DI)
	VMOVUPS    Z11, 704(DI)
	VZEROUPPER
	RET

// func gemm16x4BF16DPAVX512(p *uint16, x0, x1, x2, x3 *uint16, k int, acc *[64]float32, pf unsafe.Pointer, pfStride int)
// gemm16x4BF16DPAVX512 is the 12-row kernel for four rows, one pointer
// each (R8-R11), accumulating in Z0, Z3, Z6 and Z9 so that it shares the
// 12-row kernel's encodings.
TEXT ·gemm16x4BF16DPAVX512(SB), NOSPLIT, $0-72
	MOVQ    p+0(FP), SI
	MOVQ    x0+8(FP), R8
	MOVQ    x1+16(FP), R9
	MOVQ    x2+24(FP), R10
	MOVQ    x3+32(FP), R11
	MOVQ    k+40(FP), CX
	MOVQ    acc+48(FP), DI
	MOVQ    pf+56(FP), R14
	MOVQ    pfStride+64(FP), R15
	VMOVUPS 0(DI), Z0
	VMOVUPS 64(DI), Z3
	VMOVUPS 128(DI), Z6
	VMOVUPS 192(DI), Z9

dp4_loop:
	VMOVDQU32  (SI), Z12
	PREFETCHT0 (R14)
	ADDQ       R15, R14
	DPROW0
	DPROW3
	DPROW6
	DPROW9
	ADDQ       $4, R8
	ADDQ       $4, R9
	ADDQ       $4, R10
	ADDQ       $4, R11
	ADDQ       $64, SI
	DECQ       CX
	JNZ        dp4_loop
	VMOVUPS    Z0, 0(DI)
	VMOVUPS    Z3, 64(DI)
	VMOVUPS    Z6, 128(DI)
	VMOVUPS    Z9, 192(DI)
	VZEROUPPER
	RET
