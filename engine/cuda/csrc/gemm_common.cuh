// gemm_common.cuh: what every bf16 product kernel shares (gemm.cuh, and
// gemm_wg.cuh for Hopper): the split-K ranges and the SwiGLU epilogue.
#pragma once
#include "common.cuh"
#include "mma.cuh"
#include "swiglu.cuh"

// GEMM_SWIGLU as accumulate asks gemm_bf16, gemm_bf16_128 and the 128 x
// 256 kernels (those whose threads hold the n8 tiles of a whole 16-column
// group: a warp's columns start at a multiple of 16 and span a multiple of
// 16) for the SwiGLU epilogue over W's interleaved gate|up rows
// (swiglu.cuh): Y is then bf16 act[M][N/2], and each thread's pair of n8
// tiles j (gate) and j + 1 (up) becomes act[row][(col/16)*8 + col%8] =
// silu_mul(gate, up) for its gate columns col. The sums are those the
// plain epilogue stores, and silu_mul on them gives the bits of the
// swiglu kernel on the float32 product: the same bits whichever path
// runs. Only for launches of gridDim.z 1 (no split) and N a multiple of
// 16; the other kernels (one n8 tile a warp) do not take it.
#define GEMM_SWIGLU 2

// swiglu_epilogue is GEMM_SWIGLU's store of a warp's TI x TJ tensor-core
// tiles (m16 x n8, mma's accumulator layout), whose first row is r0 and
// first column c0 (a multiple of 16), for the lane (g, tq). col is even
// and a group of 8 holds col and col + 1, so the two outputs are one
// aligned bf16 pair.
template <int TI, int TJ>
__device__ __forceinline__ void swiglu_epilogue(float *Y, const float (*acc)[TJ][4], int M, int N, int r0, int c0, int g,
                                                int tq) {
    static_assert(TJ % 2 == 0, "swiglu_epilogue: whole 16-column groups");
    bf16 *act = (bf16 *)Y;
#pragma unroll
    for (int i = 0; i < TI; i++)
#pragma unroll
        for (int h = 0; h < 2; h++) {
            int row = r0 + i * 16 + g + h * 8;
            if (row >= M) continue;
#pragma unroll
            for (int j = 0; j < TJ; j += 2) {
                int col = c0 + j * 8 + tq * 2;
                if (col >= N) continue;
                bf16 *o = act + (size_t)row * (N / 2) + (col / 16) * GU_GROUP + col % GU_GROUP;
                *(__nv_bfloat162 *)o = __halves2bfloat162(__float2bfloat16_rn(silu_mul(acc[i][j][2 * h], acc[i][j + 1][2 * h])),
                                                          __float2bfloat16_rn(silu_mul(acc[i][j][2 * h + 1], acc[i][j + 1][2 * h + 1])));
            }
        }
}

// split_k gives a block of a split launch its range of K: A and W move to
// the range's first k, and Kz is its length (K when gridDim.z is 1).
__device__ __forceinline__ int split_k(const bf16 *&A, const bf16 *&W, int K) {
    int Kz = K / (int)gridDim.z;
    A += (size_t)blockIdx.z * Kz;
    W += (size_t)blockIdx.z * Kz;
    return Kz;
}

// split_out is where a block of a split launch writes: plane z of Y, never
// accumulated, when gridDim.z > 1; Y itself otherwise.
__device__ __forceinline__ float *split_out(float *Y, int M, int N, int &accumulate) {
    if (gridDim.z == 1) return Y;
    accumulate = 0;
    return Y + (size_t)blockIdx.z * M * N;
}


// store_epilogue stores a warp's TI x TJ tensor-core tiles (m16 x n8,
// mma's accumulator layout), whose first row is r0 and first column c0,
// for the lane (g, tq) into Y, or adds them onto it when accumulate (one
// more rounding). col is even: where N is even and Y 8-byte aligned,
// (col, col + 1) is one float2.
template <int TI, int TJ>
__device__ __forceinline__ void store_epilogue(float *Y, const float (*acc)[TJ][4], int M, int N, int r0, int c0, int g,
                                               int tq, int accumulate) {
    bool pairs = N % 2 == 0 && ((size_t)Y & 7) == 0;
#pragma unroll
    for (int i = 0; i < TI; i++)
#pragma unroll
        for (int h = 0; h < 2; h++) {
            int row = r0 + i * 16 + g + h * 8;
            if (row >= M) continue;
#pragma unroll
            for (int j = 0; j < TJ; j++) {
                int col = c0 + j * 8 + tq * 2;
                float v0 = acc[i][j][2 * h], v1 = acc[i][j][2 * h + 1];
                float *y = &Y[(size_t)row * N + col];
                if (pairs && col < N) {
                    float2 o = make_float2(v0, v1);
                    if (accumulate) {
                        float2 p = *(const float2 *)y;
                        o = make_float2(__fadd_rn(p.x, v0), __fadd_rn(p.y, v1));
                    }
                    *(float2 *)y = o;
                } else {
                    if (col < N) y[0] = accumulate ? __fadd_rn(y[0], v0) : v0;
                    if (col + 1 < N) y[1] = accumulate ? __fadd_rn(y[1], v1) : v1;
                }
            }
        }
}
