// swiglu.cuh: silu(gate) * up over the fused Gate|Up output.
#pragma once
#include "common.cuh"

__device__ __forceinline__ float silu_mul(float g, float u) {
    float sg = __fdiv_rn(g, __fadd_rn(1.f, expf(-g)));
    return __fmul_rn(sg, u);
}

// The fused Gate|Up matrix's rows (the product's columns) come in one of
// two layouts. Plain: gate's row i is row i, up's row i is row inter + i.
// Interleaved (engine/cuda uploads it so wherever inter is a multiple of
// GU_GROUP): groups of GU_GROUP gate rows and GU_GROUP up rows take turns,
// gate's row i at 2*GU_GROUP*(i/GU_GROUP) + i%GU_GROUP and up's at that +
// GU_GROUP, so that a tensor-core tile of 16 columns holds 8 gates and
// their 8 ups (the products' swiglu epilogue, gemm.cuh).
#define GU_GROUP 8

__device__ __forceinline__ int gu_gate(int i, int inter, int interleaved) {
    return interleaved ? 2 * GU_GROUP * (i / GU_GROUP) + i % GU_GROUP : i;
}
__device__ __forceinline__ int gu_up(int i, int inter, int interleaved) {
    return interleaved ? 2 * GU_GROUP * (i / GU_GROUP) + i % GU_GROUP + GU_GROUP : inter + i;
}

// swiglu writes out[r][i] = silu(gate_i) * up_i, silu(g) = g / (1 +
// exp(-g)), from row r = blockIdx.x of gu (2*inter float32s, plain or
// interleaved); each thread takes four consecutive i (blockIdx.y picks
// the span of blockDim.x*4), read and written four at a time when inter
// is a multiple of 4 (the four gates, and the four ups, are then
// consecutive in either layout: an interleaved group holds 8). Every
// element's operations are the same either way.
template <typename T>
__device__ void swiglu(T *out, const float *gu, int inter, int interleaved) {
    int r = blockIdx.x, i0 = (blockIdx.y * blockDim.x + threadIdx.x) * 4;
    if (i0 >= inter) return;
    const float *row = gu + (size_t)r * 2 * inter;
    T *o = out + (size_t)r * inter;
    if (inter % 4 == 0) {
        float4 gv = *(const float4 *)(row + gu_gate(i0, inter, interleaved));
        float4 uv = *(const float4 *)(row + gu_up(i0, inter, interleaved));
        store(&o[i0], silu_mul(gv.x, uv.x));
        store(&o[i0 + 1], silu_mul(gv.y, uv.y));
        store(&o[i0 + 2], silu_mul(gv.z, uv.z));
        store(&o[i0 + 3], silu_mul(gv.w, uv.w));
        return;
    }
    for (int i = i0; i < min(i0 + 4, inter); i++)
        store(&o[i], silu_mul(row[gu_gate(i, inter, interleaved)], row[gu_up(i, inter, interleaved)]));
}

extern "C" __global__ void swiglu_bf16(bf16 *out, const float *gu, int inter, int interleaved) {
    swiglu(out, gu, inter, interleaved);
}
extern "C" __global__ void swiglu_f32(float *out, const float *gu, int inter, int interleaved) {
    swiglu(out, gu, inter, interleaved);
}
