// rmsnorm.cuh: RMSNorm as the CPU computes it: x * rsqrt(mean(x^2) + eps)
// * w, the sum of squares in float64 (here in a fixed tree order), the rest
// in float32.
#pragma once
#include "common.cuh"

// sum_sq adds v's square to a thread's share of a row's sum of squares.
// Every kernel that normalises a row sums through it, each thread over
// the elements i = threadIdx.x + j * blockDim.x in order of j, so a fused
// kernel (reduce.cuh) gets rmsnorm's bits.
__device__ __forceinline__ double sum_sq(double ss, float v) { return ss + (double)v * (double)v; }

// rmsnorm_row finishes a row of hidden values at src whose threads' shares
// of the sum of squares are ss: dst = src * rsqrt(mean + eps) * w. One
// block of 256 threads; scratch holds 256 values.
template <typename T>
__device__ __forceinline__ void rmsnorm_row(T *dst, const float *src, const float *w, double ss, int hidden, float eps,
                                            double *scratch) {
    ss = block_sum_d(ss, scratch);
    float ms = (float)(ss / (double)hidden);
    float inv = (float)(1.0 / sqrt((double)__fadd_rn(ms, eps)));
    // Four elements a thread at a time, loaded before any is stored.
    for (int base = threadIdx.x; base < hidden; base += 4 * blockDim.x) {
        float a[4], b[4];
#pragma unroll
        for (int u = 0; u < 4; u++) {
            int i = base + u * blockDim.x;
            a[u] = i < hidden ? w[i] : 0.f;
            b[u] = i < hidden ? src[i] : 0.f;
        }
#pragma unroll
        for (int u = 0; u < 4; u++) {
            int i = base + u * blockDim.x;
            if (i < hidden) store(&dst[i], __fmul_rn(a[u], __fmul_rn(b[u], inv)));
        }
    }
}

// rmsnorm normalises row rows[r] of x (or row r when rows is null) into row
// r of out; one block of 256 threads per output row.
template <typename T>
__device__ void rmsnorm(T *out, const float *x, const float *w, const int *rows, int hidden, float eps) {
    __shared__ double scratch[256];
    int r = blockIdx.x;
    const float *src = x + (size_t)(rows ? rows[r] : r) * hidden;
    double ss = 0;
#pragma unroll 8
    for (int i = threadIdx.x; i < hidden; i += blockDim.x) ss = sum_sq(ss, src[i]);
    rmsnorm_row(out + (size_t)r * hidden, src, w, ss, hidden, eps, scratch);
}

extern "C" __global__ void rmsnorm_bf16(bf16 *out, const float *x, const float *w, const int *rows, int hidden, float eps) {
    rmsnorm(out, x, w, rows, hidden, eps);
}
extern "C" __global__ void rmsnorm_f32(float *out, const float *x, const float *w, const int *rows, int hidden, float eps) {
    rmsnorm(out, x, w, rows, hidden, eps);
}
