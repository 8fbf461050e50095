// rmsnorm.cuh: RMSNorm as the CPU computes it: x * rsqrt(mean(x^2) + eps)
// * w, the sum of squares in float64 (here in a fixed tree order), the rest
// in float32.
#pragma once
#include "common.cuh"

// rmsnorm normalises row rows[r] of x (or row r when rows is null) into row
// r of out; one block of 256 threads per output row.
template <typename T>
__device__ void rmsnorm(T *out, const float *x, const float *w, const int *rows, int hidden, float eps) {
    __shared__ double scratch[256];
    int r = blockIdx.x;
    const float *src = x + (size_t)(rows ? rows[r] : r) * hidden;
    double ss = 0;
    for (int i = threadIdx.x; i < hidden; i += blockDim.x) ss += (double)src[i] * (double)src[i];
    ss = block_sum_d(ss, scratch);
    float ms = (float)(ss / (double)hidden);
    float inv = (float)(1.0 / sqrt((double)__fadd_rn(ms, eps)));
    T *dst = out + (size_t)r * hidden;
    for (int i = threadIdx.x; i < hidden; i += blockDim.x) store(&dst[i], __fmul_rn(w[i], __fmul_rn(src[i], inv)));
}

extern "C" __global__ void rmsnorm_bf16(bf16 *out, const float *x, const float *w, const int *rows, int hidden, float eps) {
    rmsnorm(out, x, w, rows, hidden, eps);
}
extern "C" __global__ void rmsnorm_f32(float *out, const float *x, const float *w, const int *rows, int hidden, float eps) {
    rmsnorm(out, x, w, rows, hidden, eps);
}
