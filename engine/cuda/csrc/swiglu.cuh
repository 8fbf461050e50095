// swiglu.cuh: silu(gate) * up over the fused Gate|Up output.
#pragma once
#include "common.cuh"

__device__ __forceinline__ float silu_mul(float g, float u) {
    float sg = __fdiv_rn(g, __fadd_rn(1.f, expf(-g)));
    return __fmul_rn(sg, u);
}

// swiglu writes out[r][i] = silu(gu[r][i]) * gu[r][inter + i], silu(g) =
// g / (1 + exp(-g)), for row r = blockIdx.x; each thread takes four
// consecutive i (blockIdx.y picks the span of blockDim.x*4), read and
// written four at a time when inter is a multiple of 4. Every element's
// operations are the same either way.
template <typename T>
__device__ void swiglu(T *out, const float *gu, int inter) {
    int r = blockIdx.x, i0 = (blockIdx.y * blockDim.x + threadIdx.x) * 4;
    if (i0 >= inter) return;
    const float *g = gu + (size_t)r * 2 * inter, *u = g + inter;
    T *o = out + (size_t)r * inter;
    if (inter % 4 == 0) {
        float4 gv = *(const float4 *)(g + i0), uv = *(const float4 *)(u + i0);
        store(&o[i0], silu_mul(gv.x, uv.x));
        store(&o[i0 + 1], silu_mul(gv.y, uv.y));
        store(&o[i0 + 2], silu_mul(gv.z, uv.z));
        store(&o[i0 + 3], silu_mul(gv.w, uv.w));
        return;
    }
    for (int i = i0; i < min(i0 + 4, inter); i++) store(&o[i], silu_mul(g[i], u[i]));
}

extern "C" __global__ void swiglu_bf16(bf16 *out, const float *gu, int inter) { swiglu(out, gu, inter); }
extern "C" __global__ void swiglu_f32(float *out, const float *gu, int inter) { swiglu(out, gu, inter); }
