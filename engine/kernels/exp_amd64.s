//go:build !purego

#include "textflag.h"

// siluMulAVX2 and expSubAVX2 (see exp.go) evaluate, four lanes at a time,
// the steps of the Go runtime's amd64 math.Exp on CPUs with FMA (math/exp_amd64.s, the
// "avxfma" path: k = round(x*log2(e)), a two-part ln(2) reduction with
// fused multiply-adds, the same Taylor polynomial and squarings, then
// 2^k), so each lane's result has its bits. It only takes groups whose
// arguments are all within +-700, where that code takes none of its
// special branches (not finite, overflow, subnormal result).

// The constants, four copies of each (one ymm register), and their names.
// NEG: sign bit
DATA expc<>+0(SB)/8, $0x8000000000000000
DATA expc<>+8(SB)/8, $0x8000000000000000
DATA expc<>+16(SB)/8, $0x8000000000000000
DATA expc<>+24(SB)/8, $0x8000000000000000
// ABS: all but the sign bit
DATA expc<>+32(SB)/8, $0x7fffffffffffffff
DATA expc<>+40(SB)/8, $0x7fffffffffffffff
DATA expc<>+48(SB)/8, $0x7fffffffffffffff
DATA expc<>+56(SB)/8, $0x7fffffffffffffff
// LIM: 700
DATA expc<>+64(SB)/8, $0x4085e00000000000
DATA expc<>+72(SB)/8, $0x4085e00000000000
DATA expc<>+80(SB)/8, $0x4085e00000000000
DATA expc<>+88(SB)/8, $0x4085e00000000000
// LOG2E: log2(e)
DATA expc<>+96(SB)/8, $0x3ff71547652b82fe
DATA expc<>+104(SB)/8, $0x3ff71547652b82fe
DATA expc<>+112(SB)/8, $0x3ff71547652b82fe
DATA expc<>+120(SB)/8, $0x3ff71547652b82fe
// LN2U: ln(2), upper part
DATA expc<>+128(SB)/8, $0x3fe62e42fefa3000
DATA expc<>+136(SB)/8, $0x3fe62e42fefa3000
DATA expc<>+144(SB)/8, $0x3fe62e42fefa3000
DATA expc<>+152(SB)/8, $0x3fe62e42fefa3000
// LN2L: ln(2), lower part
DATA expc<>+160(SB)/8, $0x3d53de6af278ece6
DATA expc<>+168(SB)/8, $0x3d53de6af278ece6
DATA expc<>+176(SB)/8, $0x3d53de6af278ece6
DATA expc<>+184(SB)/8, $0x3d53de6af278ece6
// SIXTEENTH: 1/16
DATA expc<>+192(SB)/8, $0x3fb0000000000000
DATA expc<>+200(SB)/8, $0x3fb0000000000000
DATA expc<>+208(SB)/8, $0x3fb0000000000000
DATA expc<>+216(SB)/8, $0x3fb0000000000000
// C8: 1/8!
DATA expc<>+224(SB)/8, $0x3efa01a01a01a01a
DATA expc<>+232(SB)/8, $0x3efa01a01a01a01a
DATA expc<>+240(SB)/8, $0x3efa01a01a01a01a
DATA expc<>+248(SB)/8, $0x3efa01a01a01a01a
// C7: 1/7!
DATA expc<>+256(SB)/8, $0x3f2a01a01a01a01a
DATA expc<>+264(SB)/8, $0x3f2a01a01a01a01a
DATA expc<>+272(SB)/8, $0x3f2a01a01a01a01a
DATA expc<>+280(SB)/8, $0x3f2a01a01a01a01a
// C6: 1/6!
DATA expc<>+288(SB)/8, $0x3f56c16c16c16c17
DATA expc<>+296(SB)/8, $0x3f56c16c16c16c17
DATA expc<>+304(SB)/8, $0x3f56c16c16c16c17
DATA expc<>+312(SB)/8, $0x3f56c16c16c16c17
// C5: 1/5!
DATA expc<>+320(SB)/8, $0x3f81111111111111
DATA expc<>+328(SB)/8, $0x3f81111111111111
DATA expc<>+336(SB)/8, $0x3f81111111111111
DATA expc<>+344(SB)/8, $0x3f81111111111111
// C4: 1/4!
DATA expc<>+352(SB)/8, $0x3fa5555555555555
DATA expc<>+360(SB)/8, $0x3fa5555555555555
DATA expc<>+368(SB)/8, $0x3fa5555555555555
DATA expc<>+376(SB)/8, $0x3fa5555555555555
// C3: 1/3!
DATA expc<>+384(SB)/8, $0x3fc5555555555555
DATA expc<>+392(SB)/8, $0x3fc5555555555555
DATA expc<>+400(SB)/8, $0x3fc5555555555555
DATA expc<>+408(SB)/8, $0x3fc5555555555555
// HALF: 1/2
DATA expc<>+416(SB)/8, $0x3fe0000000000000
DATA expc<>+424(SB)/8, $0x3fe0000000000000
DATA expc<>+432(SB)/8, $0x3fe0000000000000
DATA expc<>+440(SB)/8, $0x3fe0000000000000
// ONE: 1
DATA expc<>+448(SB)/8, $0x3ff0000000000000
DATA expc<>+456(SB)/8, $0x3ff0000000000000
DATA expc<>+464(SB)/8, $0x3ff0000000000000
DATA expc<>+472(SB)/8, $0x3ff0000000000000
// TWO: 2
DATA expc<>+480(SB)/8, $0x4000000000000000
DATA expc<>+488(SB)/8, $0x4000000000000000
DATA expc<>+496(SB)/8, $0x4000000000000000
DATA expc<>+504(SB)/8, $0x4000000000000000
// BIAS: 1023, the exponent bias (int64)
DATA expc<>+512(SB)/8, $0x00000000000003ff
DATA expc<>+520(SB)/8, $0x00000000000003ff
DATA expc<>+528(SB)/8, $0x00000000000003ff
DATA expc<>+536(SB)/8, $0x00000000000003ff
GLOBL expc<>(SB), RODATA|NOPTR, $544

#define NEG expc<>+0(SB)
#define ABS expc<>+32(SB)
#define LIM expc<>+64(SB)
#define LOG2E expc<>+96(SB)
#define LN2U expc<>+128(SB)
#define LN2L expc<>+160(SB)
#define SIXTEENTH expc<>+192(SB)
#define C8 expc<>+224(SB)
#define C7 expc<>+256(SB)
#define C6 expc<>+288(SB)
#define C5 expc<>+320(SB)
#define C4 expc<>+352(SB)
#define C3 expc<>+384(SB)
#define HALF expc<>+416(SB)
#define ONE expc<>+448(SB)
#define TWO expc<>+480(SB)
#define BIAS expc<>+512(SB)

// EXP4 sets Y1 = exp(Y1), lane by lane (|Y1| <= 700), through Y3-Y6:
// k = round(x*log2(e)) (X4); r = (x - k*ln2u - k*ln2l) / 16;
// p = ((((((c8*r + c7)*r + c6)*r + c5)*r + c4)*r + c3)*r + 1/2)*r + 1;
// y = r*p, then four times y = y*(y + 2), the last one fused with + 1;
// then y times 2^k, built from k's exponent bits.
#define EXP4 \
	VMULPD       LOG2E, Y1, Y3; \
	VCVTPD2DQY   Y3, X4; \
	VCVTDQ2PD    X4, Y3; \
	VFNMADD231PD LN2U, Y3, Y1; \
	VFNMADD231PD LN2L, Y3, Y1; \
	VMULPD       SIXTEENTH, Y1, Y1; \
	VMOVUPD     C8, Y5; \
	VFMADD213PD C7, Y1, Y5; \
	VFMADD213PD C6, Y1, Y5; \
	VFMADD213PD C5, Y1, Y5; \
	VFMADD213PD C4, Y1, Y5; \
	VFMADD213PD C3, Y1, Y5; \
	VFMADD213PD HALF, Y1, Y5; \
	VFMADD213PD ONE, Y1, Y5; \
	VMULPD      Y5, Y1, Y1; \
	VADDPD      TWO, Y1, Y5; \
	VMULPD      Y5, Y1, Y1; \
	VADDPD      TWO, Y1, Y5; \
	VMULPD      Y5, Y1, Y1; \
	VADDPD      TWO, Y1, Y5; \
	VMULPD      Y5, Y1, Y1; \
	VADDPD      TWO, Y1, Y5; \
	VFMADD213PD ONE, Y5, Y1; \
	VPMOVSXDQ X4, Y6; \
	VPADDQ    BIAS, Y6, Y6; \
	VPSLLQ    $52, Y6, Y6; \
	VMULPD    Y6, Y1, Y1

// func siluMulAVX2(dst, gate, up *float32, n int) int
TEXT ·siluMulAVX2(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ gate+8(FP), SI
	MOVQ up+16(FP), DX
	MOVQ n+24(FP), CX
	XORQ AX, AX

silu_group:
	LEAQ 4(AX), BX
	CMPQ BX, CX
	JGT  silu_done
	VCVTPS2PD (SI)(AX*4), Y0       // g, in float64
	VXORPD    NEG, Y0, Y1      // x = -g
	VANDPD    ABS, Y1, Y2
	VCMPPD    $2, LIM, Y2, Y2  // |x| <= 700 (false for NaN)
	VMOVMSKPD Y2, BX
	CMPQ      BX, $15
	JNE       silu_done

	EXP4

	// silu(g) = float32(g / (1 + exp(-g))), times up in float32
	VADDPD     ONE, Y1, Y1
	VDIVPD     Y1, Y0, Y0
	VCVTPD2PSY Y0, X0
	VMULPS     (DX)(AX*4), X0, X0
	VMOVUPS    X0, (DI)(AX*4)
	ADDQ       $4, AX
	JMP        silu_group

silu_done:
	VZEROUPPER
	MOVQ AX, ret+32(FP)
	RET

// func expSubAVX2(s *float32, m float32, n int) int
TEXT ·expSubAVX2(SB), NOSPLIT, $0-32
	MOVQ         s+0(FP), DI
	VBROADCASTSS m+8(FP), X7
	MOVQ         n+16(FP), CX
	XORQ         AX, AX

expsub_group:
	LEAQ      4(AX), BX
	CMPQ      BX, CX
	JGT       expsub_done
	VMOVUPS   (DI)(AX*4), X0
	VSUBPS    X7, X0, X0          // s - m, in float32
	VCVTPS2PD X0, Y1
	VANDPD    ABS, Y1, Y2
	VCMPPD    $2, LIM, Y2, Y2
	VMOVMSKPD Y2, BX
	CMPQ      BX, $15
	JNE       expsub_done
	EXP4
	VCVTPD2PSY Y1, X1
	VMOVUPS    X1, (DI)(AX*4)
	ADDQ       $4, AX
	JMP        expsub_group

expsub_done:
	VZEROUPPER
	MOVQ AX, ret+24(FP)
	RET
