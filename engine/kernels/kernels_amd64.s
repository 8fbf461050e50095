//go:build !purego

#include "textflag.h"

// AVX2+FMA kernels over packed panels (16 rows interleaved column by
// column). Each output lives in one lane of an accumulator and takes its
// products in order of k through VFMADD231PS, whatever the kernel or tile,
// so results never depend on batching. dot keeps 8 lanes and reduces them
// with HSUM in the tree (a0+a4 + a2+a6) + (a1+a5 + a3+a7) that sum8 in
// kernels_generic.go repeats.

// HSUM leaves the lane sum of Y (whose low half is X) in X's lane 0; T is a
// scratch X register.
#define HSUM(Y, X, T) \
	VEXTRACTF128 $1, Y, T; \
	VADDPS       T, X, X; \
	VMOVHLPS     X, X, T; \
	VADDPS       T, X, X; \
	VMOVSHDUP    X, T; \
	VADDSS       T, X, X

// DOT8STEP accumulates the products of eight floats at (SI)(AX*4) and
// (DI)(AX*4) into Y0 (T is scratch), then loops while AX < CX.
#define DOT8STEP(T, loop) \
	VMOVUPS     (SI)(AX*4), T; \
	VFMADD231PS (DI)(AX*4), T, Y0; \
	ADDQ        $8, AX; \
	CMPQ        AX, CX; \
	JB          loop

#define STORE8(DI) \
	VMOVUPS Y0, 0(DI); \
	VMOVUPS Y1, 32(DI); \
	VMOVUPS Y2, 64(DI); \
	VMOVUPS Y3, 96(DI); \
	VMOVUPS Y4, 128(DI); \
	VMOVUPS Y5, 160(DI); \
	VMOVUPS Y6, 192(DI); \
	VMOVUPS Y7, 224(DI)

#define ZERO8 \
	VXORPS Y0, Y0, Y0; \
	VXORPS Y1, Y1, Y1; \
	VXORPS Y2, Y2, Y2; \
	VXORPS Y3, Y3, Y3; \
	VXORPS Y4, Y4, Y4; \
	VXORPS Y5, Y5, Y5; \
	VXORPS Y6, Y6, Y6; \
	VXORPS Y7, Y7, Y7

// LOAD8 and STORE8 move the accumulators of four activation rows (Y0-Y7),
// LOADACC and STOREACC those of six (Y0-Y11), from and to (DI).
#define LOAD8(DI) \
	VMOVUPS 0(DI), Y0; \
	VMOVUPS 32(DI), Y1; \
	VMOVUPS 64(DI), Y2; \
	VMOVUPS 96(DI), Y3; \
	VMOVUPS 128(DI), Y4; \
	VMOVUPS 160(DI), Y5; \
	VMOVUPS 192(DI), Y6; \
	VMOVUPS 224(DI), Y7

#define LOADACC \
	LOAD8(DI); \
	VMOVUPS 256(DI), Y8; \
	VMOVUPS 288(DI), Y9; \
	VMOVUPS 320(DI), Y10; \
	VMOVUPS 352(DI), Y11

#define STOREACC \
	STORE8(DI); \
	VMOVUPS Y8, 256(DI); \
	VMOVUPS Y9, 288(DI); \
	VMOVUPS Y10, 320(DI); \
	VMOVUPS Y11, 352(DI)

// G6ARGS loads the arguments of the 6-row gemm kernels (panel SI, rows
// R8-R13, columns CX, accumulators DI, prefetch R14/R15) and their
// accumulators; G4ARGS those of the 4-row ones.
#define G6ARGS \
	MOVQ p+0(FP), SI; \
	MOVQ x0+8(FP), R8; \
	MOVQ x1+16(FP), R9; \
	MOVQ x2+24(FP), R10; \
	MOVQ x3+32(FP), R11; \
	MOVQ x4+40(FP), R12; \
	MOVQ x5+48(FP), R13; \
	MOVQ k+56(FP), CX; \
	MOVQ acc+64(FP), DI; \
	MOVQ pf+72(FP), R14; \
	MOVQ pfStride+80(FP), R15; \
	LOADACC

#define G4ARGS \
	MOVQ p+0(FP), SI; \
	MOVQ x0+8(FP), R8; \
	MOVQ x1+16(FP), R9; \
	MOVQ x2+24(FP), R10; \
	MOVQ x3+32(FP), R11; \
	MOVQ k+40(FP), CX; \
	MOVQ acc+48(FP), DI; \
	MOVQ pf+56(FP), R14; \
	MOVQ pfStride+64(FP), R15; \
	LOAD8(DI)

// G6STEP and G4STEP prefetch and multiply the weights in Y12:Y13 by
// activation k of each row.
#define G6STEP \
	PF; \
	GEMMX(R8, Y0, Y1); \
	GEMMX(R9, Y2, Y3); \
	GEMMX(R10, Y4, Y5); \
	GEMMX(R11, Y6, Y7); \
	GEMMX(R12, Y8, Y9); \
	GEMMX(R13, Y10, Y11)

#define G4STEP \
	PF; \
	GEMMX(R8, Y0, Y1); \
	GEMMX(R9, Y2, Y3); \
	GEMMX(R10, Y4, Y5); \
	GEMMX(R11, Y6, Y7)

// GEMV4ARGS loads the arguments of the f32 and bf16 gemv kernels (panels
// R8-R11, activations SI, columns CX, output DI) and zeroes the
// accumulators; GEMV4NEXT(N) moves the four panels N bytes on and loops.
#define GEMV4ARGS \
	MOVQ p0+0(FP), R8; \
	MOVQ p1+8(FP), R9; \
	MOVQ p2+16(FP), R10; \
	MOVQ p3+24(FP), R11; \
	MOVQ x+32(FP), SI; \
	MOVQ k+40(FP), CX; \
	MOVQ out+48(FP), DI; \
	ZERO8; \
	XORQ AX, AX

#define GEMV4NEXT(N, loop) \
	ADDQ N, R8; \
	ADDQ N, R9; \
	ADDQ N, R10; \
	ADDQ N, R11; \
	INCQ AX; \
	CMPQ AX, CX; \
	JB   loop

// func gemvF32AVX2(p0, p1, p2, p3, x *float32, k int, out *[64]float32)
TEXT ·gemvF32AVX2(SB), NOSPLIT, $0-56
	GEMV4ARGS

gemvf32_loop:
	VBROADCASTSS (SI)(AX*4), Y15
	VFMADD231PS  (R8), Y15, Y0
	VFMADD231PS  32(R8), Y15, Y1
	VFMADD231PS  (R9), Y15, Y2
	VFMADD231PS  32(R9), Y15, Y3
	VFMADD231PS  (R10), Y15, Y4
	VFMADD231PS  32(R10), Y15, Y5
	VFMADD231PS  (R11), Y15, Y6
	VFMADD231PS  32(R11), Y15, Y7
	GEMV4NEXT($64, gemvf32_loop)
	STORE8(DI)
	VZEROUPPER
	RET

// PAIRHALF accumulates the products of eight rows' weight pairs at off(P)
// with the broadcast activations Y14 (column 2m+1) and Y13 (column 2m)
// into ACC, the odd column first (the pair step, bf16.go); Y15 holds
// 0xffff0000 in every lane, Y8 and Y9 are scratch.
#define PAIRHALF(off, P, ACC) \
	VPAND       off(P), Y15, Y8; \
	VFMADD231PS Y14, Y8, ACC; \
	VMOVDQU     off(P), Y9; \
	VPSLLD      $16, Y9, Y9; \
	VFMADD231PS Y13, Y9, ACC

// func gemvBF16AVX2(p0, p1, p2, p3 *uint16, x *float32, k int, out *[64]float32)
// k is the number of column pairs; x holds the swapped activations
// (bf16Acts.f).
TEXT ·gemvBF16AVX2(SB), NOSPLIT, $0-56
	GEMV4ARGS
	VPCMPEQD Y15, Y15, Y15
	VPSLLD   $16, Y15, Y15

gemvbf16_loop:
	VBROADCASTSS (SI)(AX*8), Y14
	VBROADCASTSS 4(SI)(AX*8), Y13
	PAIRHALF(0, R8, Y0)
	PAIRHALF(32, R8, Y1)
	PAIRHALF(0, R9, Y2)
	PAIRHALF(32, R9, Y3)
	PAIRHALF(0, R10, Y4)
	PAIRHALF(32, R10, Y5)
	PAIRHALF(0, R11, Y6)
	PAIRHALF(32, R11, Y7)
	GEMV4NEXT($64, gemvbf16_loop)
	STORE8(DI)
	VZEROUPPER
	RET

// GEMMX broadcasts activation k of row X and accumulates it times the panel
// row held in Y12:Y13 into A0:A1.
#define GEMMX(X, A0, A1) \
	VBROADCASTSS (X)(AX*4), Y14; \
	VFMADD231PS  Y14, Y12, A0; \
	VFMADD231PS  Y14, Y13, A1

// PF prefetches the next line of the weights the gemm reads next (R14,
// advancing R15 bytes per k): see impl.gemm16x6.
#define PF \
	PREFETCHT0 (R14); \
	ADDQ       R15, R14

// func gemm16x6AVX2(p, x0, x1, x2, x3, x4, x5 *float32, k int, acc *[96]float32, pf unsafe.Pointer, pfStride int)
TEXT ·gemm16x6AVX2(SB), NOSPLIT, $0-88
	G6ARGS
	XORQ AX, AX

gemm_loop:
	VMOVUPS (SI), Y12
	VMOVUPS 32(SI), Y13
	G6STEP
	ADDQ    $64, SI
	INCQ    AX
	CMPQ    AX, CX
	JB      gemm_loop
	STOREACC
	VZEROUPPER
	RET

// func gemm16x4AVX2(p, x0, x1, x2, x3 *float32, k int, acc *[64]float32, pf unsafe.Pointer, pfStride int)
// gemm16x4AVX2 is gemm16x6AVX2 for four activation rows.
TEXT ·gemm16x4AVX2(SB), NOSPLIT, $0-72
	G4ARGS
	XORQ AX, AX

gemm4_loop:
	VMOVUPS (SI), Y12
	VMOVUPS 32(SI), Y13
	G4STEP
	ADDQ    $64, SI
	INCQ    AX
	CMPQ    AX, CX
	JB      gemm4_loop
	STORE8(DI)
	VZEROUPPER
	RET

// func widenPairsAVX2(dst *float32, src *uint16, pairs int)
// widenPairsAVX2 writes, per column pair of a panel, the 16 rows' column
// 2m+1 (the high halves, masked) and then their column 2m (shifted up).
TEXT ·widenPairsAVX2(SB), NOSPLIT, $0-24
	MOVQ     dst+0(FP), DI
	MOVQ     src+8(FP), SI
	MOVQ     pairs+16(FP), CX
	VPCMPEQD Y15, Y15, Y15
	VPSLLD   $16, Y15, Y15

widen_loop:
	VMOVDQU (SI), Y0
	VMOVDQU 32(SI), Y1
	VPAND   Y0, Y15, Y2
	VPAND   Y1, Y15, Y3
	VPSLLD  $16, Y0, Y0
	VPSLLD  $16, Y1, Y1
	VMOVUPS Y2, (DI)
	VMOVUPS Y3, 32(DI)
	VMOVUPS Y0, 64(DI)
	VMOVUPS Y1, 96(DI)
	ADDQ    $64, SI
	ADDQ    $128, DI
	DECQ    CX
	JNZ     widen_loop
	VZEROUPPER
	RET

// func dotAVX2(a, b *float32, k8 int) float32
TEXT ·dotAVX2(SB), NOSPLIT, $0-28
	MOVQ   a+0(FP), SI
	MOVQ   b+8(FP), DI
	MOVQ   k8+16(FP), CX
	VXORPS Y0, Y0, Y0
	XORQ   AX, AX

dot_loop:
	DOT8STEP(Y1, dot_loop)
	HSUM(Y0, X0, X1)
	VMOVSS      X0, ret+24(FP)
	VZEROUPPER
	RET

// func axpyAVX2(alpha float32, x, y *float32, k8 int)
TEXT ·axpyAVX2(SB), NOSPLIT, $0-32
	VBROADCASTSS alpha+0(FP), Y0
	MOVQ         x+8(FP), SI
	MOVQ         y+16(FP), DI
	MOVQ         k8+24(FP), CX
	XORQ         AX, AX

axpy_loop:
	VMULPS  (SI)(AX*4), Y0, Y1
	VADDPS  (DI)(AX*4), Y1, Y1
	VMOVUPS Y1, (DI)(AX*4)
	ADDQ    $8, AX
	CMPQ    AX, CX
	JB      axpy_loop
	VZEROUPPER
	RET

// func sum4AVX2(a, b, c, d *float32, k16 int) float32
// sum4AVX2 streams four arrays at once, a cache line of each per round (the
// bandwidth benchmark's reader: as many streams per thread as the decode
// kernel reads).
TEXT ·sum4AVX2(SB), NOSPLIT, $0-44
	MOVQ   a+0(FP), SI
	MOVQ   b+8(FP), DI
	MOVQ   c+16(FP), R8
	MOVQ   d+24(FP), R9
	MOVQ   k16+32(FP), CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	XORQ   AX, AX

sum_loop:
	VADDPS (SI)(AX*4), Y0, Y0
	VADDPS 32(SI)(AX*4), Y1, Y1
	VADDPS (DI)(AX*4), Y2, Y2
	VADDPS 32(DI)(AX*4), Y3, Y3
	VADDPS (R8)(AX*4), Y4, Y4
	VADDPS 32(R8)(AX*4), Y5, Y5
	VADDPS (R9)(AX*4), Y6, Y6
	VADDPS 32(R9)(AX*4), Y7, Y7
	ADDQ   $16, AX
	CMPQ   AX, CX
	JB     sum_loop
	VADDPS Y1, Y0, Y0
	VADDPS Y3, Y2, Y2
	VADDPS Y5, Y4, Y4
	VADDPS Y7, Y6, Y6
	VADDPS Y2, Y0, Y0
	VADDPS Y6, Y4, Y4
	VADDPS Y4, Y0, Y0
	HSUM(Y0, X0, X1)
	VMOVSS X0, ret+40(FP)
	VZEROUPPER
	RET

// func fmaLoopAVX2(iters int)
// fmaLoopAVX2 runs iters rounds of twelve independent 8-lane fused
// multiply-adds (192 flops a round): the core's float32 FMA peak.
TEXT ·fmaLoopAVX2(SB), NOSPLIT, $0-8
	MOVQ   iters+0(FP), CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11
	VXORPS Y12, Y12, Y12
	VXORPS Y13, Y13, Y13
	TESTQ  CX, CX
	JLE    fma_done

fma_loop:
	VFMADD231PS Y12, Y13, Y0
	VFMADD231PS Y12, Y13, Y1
	VFMADD231PS Y12, Y13, Y2
	VFMADD231PS Y12, Y13, Y3
	VFMADD231PS Y12, Y13, Y4
	VFMADD231PS Y12, Y13, Y5
	VFMADD231PS Y12, Y13, Y6
	VFMADD231PS Y12, Y13, Y7
	VFMADD231PS Y12, Y13, Y8
	VFMADD231PS Y12, Y13, Y9
	VFMADD231PS Y12, Y13, Y10
	VFMADD231PS Y12, Y13, Y11
	DECQ        CX
	JNZ         fma_loop

fma_done:
	VZEROUPPER
	RET

// func dotRowsAVX2(q, rows *float32, stride, k8, n int, out *float32)
// dotRowsAVX2 sets out[t] to dotAVX2(q, row t) for n rows stride bytes
// apart, four rows at a time: each row keeps its own accumulator, the
// same FMA chain and the same HSUM as dotAVX2, so the bits are the same.
TEXT ·dotRowsAVX2(SB), NOSPLIT, $0-48
	MOVQ q+0(FP), SI
	MOVQ rows+8(FP), DI
	MOVQ stride+16(FP), DX
	MOVQ k8+24(FP), CX
	MOVQ n+32(FP), BX
	MOVQ out+40(FP), R8
	LEAQ (DX)(DX*2), R13

dr_group:
	CMPQ   BX, $4
	JB     dr_single
	LEAQ   (DI)(DX*1), R10
	LEAQ   (DI)(DX*2), R11
	LEAQ   (DI)(R13*1), R12
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	XORQ   AX, AX

dr_loop4:
	VMOVUPS     (SI)(AX*4), Y4
	VFMADD231PS (DI)(AX*4), Y4, Y0
	VFMADD231PS (R10)(AX*4), Y4, Y1
	VFMADD231PS (R11)(AX*4), Y4, Y2
	VFMADD231PS (R12)(AX*4), Y4, Y3
	ADDQ        $8, AX
	CMPQ        AX, CX
	JB          dr_loop4
	HSUM(Y0, X0, X5)
	HSUM(Y1, X1, X5)
	HSUM(Y2, X2, X5)
	HSUM(Y3, X3, X5)
	VMOVSS      X0, 0(R8)
	VMOVSS      X1, 4(R8)
	VMOVSS      X2, 8(R8)
	VMOVSS      X3, 12(R8)
	ADDQ        $16, R8
	LEAQ        (DI)(DX*4), DI
	SUBQ        $4, BX
	JMP         dr_group

dr_single:
	TESTQ  BX, BX
	JZ     dr_done
	VXORPS Y0, Y0, Y0
	XORQ   AX, AX

dr_loop1:
	DOT8STEP(Y4, dr_loop1)
	HSUM(Y0, X0, X5)
	VMOVSS      X0, 0(R8)
	ADDQ        $4, R8
	ADDQ        DX, DI
	DECQ        BX
	JMP         dr_single

dr_done:
	VZEROUPPER
	RET

// func axpyRowsAVX2(p, rows *float32, stride, k8, n int, y *float32)
// axpyRowsAVX2 does y += p[t] * row t for t < n in order, rows stride
// bytes apart, holding 32 (then 8) values of y in registers across all
// rows: per element the same unfused multiply and add as axpyAVX2, in the
// same order, so the bits are the same.
TEXT ·axpyRowsAVX2(SB), NOSPLIT, $0-48
	MOVQ p+0(FP), SI
	MOVQ rows+8(FP), DI
	MOVQ stride+16(FP), DX
	MOVQ k8+24(FP), CX
	MOVQ n+32(FP), BX
	MOVQ y+40(FP), R8
	XORQ AX, AX

ar_block4:
	MOVQ    CX, R9
	SUBQ    AX, R9
	CMPQ    R9, $32
	JB      ar_block1
	VMOVUPS (R8)(AX*4), Y0
	VMOVUPS 32(R8)(AX*4), Y1
	VMOVUPS 64(R8)(AX*4), Y2
	VMOVUPS 96(R8)(AX*4), Y3
	MOVQ    DI, R10
	XORQ    R11, R11

ar_t4:
	VBROADCASTSS (SI)(R11*4), Y4
	VMULPS       (R10)(AX*4), Y4, Y5
	VADDPS       Y5, Y0, Y0
	VMULPS       32(R10)(AX*4), Y4, Y6
	VADDPS       Y6, Y1, Y1
	VMULPS       64(R10)(AX*4), Y4, Y7
	VADDPS       Y7, Y2, Y2
	VMULPS       96(R10)(AX*4), Y4, Y8
	VADDPS       Y8, Y3, Y3
	ADDQ         DX, R10
	INCQ         R11
	CMPQ         R11, BX
	JB           ar_t4
	VMOVUPS      Y0, (R8)(AX*4)
	VMOVUPS      Y1, 32(R8)(AX*4)
	VMOVUPS      Y2, 64(R8)(AX*4)
	VMOVUPS      Y3, 96(R8)(AX*4)
	ADDQ         $32, AX
	JMP          ar_block4

ar_block1:
	CMPQ    AX, CX
	JAE     ar_done
	VMOVUPS (R8)(AX*4), Y0
	MOVQ    DI, R10
	XORQ    R11, R11

ar_t1:
	VBROADCASTSS (SI)(R11*4), Y4
	VMULPS       (R10)(AX*4), Y4, Y5
	VADDPS       Y5, Y0, Y0
	ADDQ         DX, R10
	INCQ         R11
	CMPQ         R11, BX
	JB           ar_t1
	VMOVUPS      Y0, (R8)(AX*4)
	ADDQ         $8, AX
	JMP          ar_block1

ar_done:
	VZEROUPPER
	RET
