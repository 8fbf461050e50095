// swiglu.cuh: silu(gate) * up over the fused Gate|Up output.
#pragma once
#include "common.cuh"

// swiglu writes out[r][i] = silu(gu[r][i]) * gu[r][inter + i] for n = rows *
// inter elements, silu(g) = g / (1 + exp(-g)).
template <typename T>
__device__ void swiglu(T *out, const float *gu, int inter, long n) {
    for (long e = (long)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += (long)gridDim.x * blockDim.x) {
        long r = e / inter, i = e % inter;
        float g = gu[r * 2 * inter + i], u = gu[r * 2 * inter + inter + i];
        float sg = __fdiv_rn(g, __fadd_rn(1.f, expf(-g)));
        store(&out[e], __fmul_rn(sg, u));
    }
}

extern "C" __global__ void swiglu_bf16(bf16 *out, const float *gu, int inter, long n) { swiglu(out, gu, inter, n); }
extern "C" __global__ void swiglu_f32(float *out, const float *gu, int inter, long n) { swiglu(out, gu, inter, n); }
