// Argument loading and per-block pointer steps shared by the AVX2 and
// AVX-512 Q8 kernels (kernels_q8_amd64.s, kernels_q8_avx512_amd64.s), whose
// gemv and gemm signatures are the same across the two files.

// Q8GEMVARGS loads the gemv's arguments: panels R8-R11, their scales
// R12-R15, the activations SI and their scales DX, the block count CX and
// the outputs DI.
#define Q8GEMVARGS \
	MOVQ p0+0(FP), R8; \
	MOVQ p1+8(FP), R9; \
	MOVQ p2+16(FP), R10; \
	MOVQ p3+24(FP), R11; \
	MOVQ s0+32(FP), R12; \
	MOVQ s1+40(FP), R13; \
	MOVQ s2+48(FP), R14; \
	MOVQ s3+56(FP), R15; \
	MOVQ x+64(FP), SI; \
	MOVQ xs+72(FP), DX; \
	MOVQ blocks+80(FP), CX; \
	MOVQ out+88(FP), DI

// Q8GEMVNEXT moves the gemv's pointers to the next block and loops.
#define Q8GEMVNEXT(loop) \
	ADDQ $32, SI; \
	ADDQ $4, DX; \
	ADDQ $512, R8; \
	ADDQ $512, R9; \
	ADDQ $512, R10; \
	ADDQ $512, R11; \
	ADDQ $64, R12; \
	ADDQ $64, R13; \
	ADDQ $64, R14; \
	ADDQ $64, R15; \
	DECQ CX; \
	JNZ  loop

// Q8GEMMARGS loads the gemm's arguments: the panel SI and its scales DX,
// the activation rows R8-R11 and their scales R12-R15, the block count CX
// and the outputs DI.
#define Q8GEMMARGS \
	MOVQ p+0(FP), SI; \
	MOVQ s+8(FP), DX; \
	MOVQ x0+16(FP), R8; \
	MOVQ x1+24(FP), R9; \
	MOVQ x2+32(FP), R10; \
	MOVQ x3+40(FP), R11; \
	MOVQ xs0+48(FP), R12; \
	MOVQ xs1+56(FP), R13; \
	MOVQ xs2+64(FP), R14; \
	MOVQ xs3+72(FP), R15; \
	MOVQ blocks+80(FP), CX; \
	MOVQ acc+88(FP), DI

// Q8GEMMNEXT moves the gemm's pointers to the next block and loops.
#define Q8GEMMNEXT(loop) \
	ADDQ $512, SI; \
	ADDQ $64, DX; \
	ADDQ $32, R8; \
	ADDQ $32, R9; \
	ADDQ $32, R10; \
	ADDQ $32, R11; \
	ADDQ $4, R12; \
	ADDQ $4, R13; \
	ADDQ $4, R14; \
	ADDQ $4, R15; \
	DECQ CX; \
	JNZ  loop
