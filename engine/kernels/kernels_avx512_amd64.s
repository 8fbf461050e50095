//go:build !purego

#include "textflag.h"

// AVX-512 kernels: the 12-row gemm tiles. A zmm register holds the 16 rows
// of a panel column, so twelve activation rows take twelve accumulators
// and each column of weights is loaded (and widened) once for all of them.
// Each output lives in one lane and takes its products in order of k
// through VFMADD231PS, as in the AVX2 kernels, so the bits are the same.

// G12SETUP loads the arguments shared by both kernels: SI the panel, R8
// rows 0-2 of x, R9 rows 3-5, R10 rows 6-8, R11 rows 9-11 (each base then
// +DX and +2*DX bytes), CX the columns, DI the accumulators, R14/R15 the
// prefetch pointer and stride; Z0-Z11 the accumulators.
#define G12SETUP \
	MOVQ    p+0(FP), SI; \
	MOVQ    x+8(FP), R8; \
	MOVQ    stride+16(FP), DX; \
	MOVQ    k+24(FP), CX; \
	MOVQ    acc+32(FP), DI; \
	MOVQ    pf+40(FP), R14; \
	MOVQ    pfStride+48(FP), R15; \
	SHLQ    $2, DX; \
	LEAQ    (DX)(DX*2), BX; \
	LEAQ    (R8)(BX*1), R9; \
	LEAQ    (R9)(BX*1), R10; \
	LEAQ    (R10)(BX*1), R11; \
	VMOVUPS 0(DI), Z0; \
	VMOVUPS 64(DI), Z1; \
	VMOVUPS 128(DI), Z2; \
	VMOVUPS 192(DI), Z3; \
	VMOVUPS 256(DI), Z4; \
	VMOVUPS 320(DI), Z5; \
	VMOVUPS 384(DI), Z6; \
	VMOVUPS 448(DI), Z7; \
	VMOVUPS 512(DI), Z8; \
	VMOVUPS 576(DI), Z9; \
	VMOVUPS 640(DI), Z10; \
	VMOVUPS 704(DI), Z11

// G12STEP multiplies the weights in Z12 by activation k of the twelve rows
// (broadcast from memory) into Z0-Z11 and moves the row pointers to k+1.
#define G12STEP \
	PREFETCHT0           (R14); \
	ADDQ                 R15, R14; \
	VFMADD231PS.BCST     (R8), Z12, Z0; \
	VFMADD231PS.BCST     (R8)(DX*1), Z12, Z1; \
	VFMADD231PS.BCST     (R8)(DX*2), Z12, Z2; \
	VFMADD231PS.BCST     (R9), Z12, Z3; \
	VFMADD231PS.BCST     (R9)(DX*1), Z12, Z4; \
	VFMADD231PS.BCST     (R9)(DX*2), Z12, Z5; \
	VFMADD231PS.BCST     (R10), Z12, Z6; \
	VFMADD231PS.BCST     (R10)(DX*1), Z12, Z7; \
	VFMADD231PS.BCST     (R10)(DX*2), Z12, Z8; \
	VFMADD231PS.BCST     (R11), Z12, Z9; \
	VFMADD231PS.BCST     (R11)(DX*1), Z12, Z10; \
	VFMADD231PS.BCST     (R11)(DX*2), Z12, Z11; \
	ADDQ                 $4, R8; \
	ADDQ                 $4, R9; \
	ADDQ                 $4, R10; \
	ADDQ                 $4, R11

#define G12STORE \
	VMOVUPS Z0, 0(DI); \
	VMOVUPS Z1, 64(DI); \
	VMOVUPS Z2, 128(DI); \
	VMOVUPS Z3, 192(DI); \
	VMOVUPS Z4, 256(DI); \
	VMOVUPS Z5, 320(DI); \
	VMOVUPS Z6, 384(DI); \
	VMOVUPS Z7, 448(DI); \
	VMOVUPS Z8, 512(DI); \
	VMOVUPS Z9, 576(DI); \
	VMOVUPS Z10, 640(DI); \
	VMOVUPS Z11, 704(DI); \
	VZEROUPPER

// func gemm16x12AVX512(p, x *float32, stride, k int, acc *[192]float32, pf unsafe.Pointer, pfStride int)
TEXT ·gemm16x12AVX512(SB), NOSPLIT, $0-56
	G12SETUP

g12_loop:
	VMOVUPS (SI), Z12
	G12STEP
	ADDQ    $64, SI
	DECQ    CX
	JNZ     g12_loop
	G12STORE
	RET

// func fmaLoopAVX512(iters int)
// fmaLoopAVX512 runs iters rounds of 24 independent 16-lane fused
// multiply-adds (768 flops a round): the core's float32 FMA peak.
TEXT ·fmaLoopAVX512(SB), NOSPLIT, $0-8
	MOVQ    iters+0(FP), CX
	VPXORD  Z0, Z0, Z0
	VMOVAPS Z0, Z1
	VMOVAPS Z0, Z2
	VMOVAPS Z0, Z3
	VMOVAPS Z0, Z4
	VMOVAPS Z0, Z5
	VMOVAPS Z0, Z6
	VMOVAPS Z0, Z7
	VMOVAPS Z0, Z8
	VMOVAPS Z0, Z9
	VMOVAPS Z0, Z10
	VMOVAPS Z0, Z11
	VMOVAPS Z0, Z12
	VMOVAPS Z0, Z13
	VMOVAPS Z0, Z14
	VMOVAPS Z0, Z15
	VMOVAPS Z0, Z16
	VMOVAPS Z0, Z17
	VMOVAPS Z0, Z18
	VMOVAPS Z0, Z19
	VMOVAPS Z0, Z20
	VMOVAPS Z0, Z21
	VMOVAPS Z0, Z22
	VMOVAPS Z0, Z23
	VMOVAPS Z0, Z24
	VMOVAPS Z0, Z25
	TESTQ   CX, CX
	JLE     fma512_done

fma512_loop:
	VFMADD231PS Z24, Z25, Z0
	VFMADD231PS Z24, Z25, Z1
	VFMADD231PS Z24, Z25, Z2
	VFMADD231PS Z24, Z25, Z3
	VFMADD231PS Z24, Z25, Z4
	VFMADD231PS Z24, Z25, Z5
	VFMADD231PS Z24, Z25, Z6
	VFMADD231PS Z24, Z25, Z7
	VFMADD231PS Z24, Z25, Z8
	VFMADD231PS Z24, Z25, Z9
	VFMADD231PS Z24, Z25, Z10
	VFMADD231PS Z24, Z25, Z11
	VFMADD231PS Z24, Z25, Z12
	VFMADD231PS Z24, Z25, Z13
	VFMADD231PS Z24, Z25, Z14
	VFMADD231PS Z24, Z25, Z15
	VFMADD231PS Z24, Z25, Z16
	VFMADD231PS Z24, Z25, Z17
	VFMADD231PS Z24, Z25, Z18
	VFMADD231PS Z24, Z25, Z19
	VFMADD231PS Z24, Z25, Z20
	VFMADD231PS Z24, Z25, Z21
	VFMADD231PS Z24, Z25, Z22
	VFMADD231PS Z24, Z25, Z23
	DECQ        CX
	JNZ         fma512_loop

fma512_done:
	VZEROUPPER
	RET
