// reduce.cuh: the end of a split product (gemm.cuh): its S partial planes
// added in order of the split, into Y or onto it (the residual stream),
// and optionally the row's RMSNorm, fused so that the residual's rows are
// read once.
#pragma once
#include "common.cuh"
#include "rmsnorm.cuh"

// reduce sums row r = blockIdx.x of the planes P[s] (M x N each, s = 0 ..
// S-1, left to right) into row r of Y, added to what Y holds when
// accumulate (one more rounding, as gemm's epilogue adds). When w is not
// null it then writes RMSNorm(Y[r]) * w to row r of Yn with the bits of
// rmsnorm.cuh: the same threads sum the same values in the same order, and
// each reads back the values it wrote. One block of 256 threads a row.
template <typename T>
__device__ void reduce(float *Y, T *Yn, const float *P, const float *w, int S, int M, int N, int accumulate, float eps) {
    __shared__ double scratch[256];
    int r = blockIdx.x;
    size_t plane = (size_t)M * N;
    const float *p = P + (size_t)r * N;
    float *y = Y + (size_t)r * N;
    double ss = 0;
    for (int i = threadIdx.x; i < N; i += blockDim.x) {
        float v = p[i];
        for (int s = 1; s < S; s++) v = __fadd_rn(v, p[s * plane + i]);
        if (accumulate) v = __fadd_rn(y[i], v);
        y[i] = v;
        ss = sum_sq(ss, v);
    }
    if (w) rmsnorm_row(Yn + (size_t)r * N, y, w, ss, N, eps, scratch);
}

extern "C" __global__ void reduce_bf16(float *Y, bf16 *Yn, const float *P, const float *w, int S, int M, int N, int accumulate,
                                       float eps) {
    reduce(Y, Yn, P, w, S, M, N, accumulate, eps);
}
extern "C" __global__ void reduce_f32(float *Y, float *Yn, const float *P, const float *w, int S, int M, int N, int accumulate,
                                      float eps) {
    reduce(Y, Yn, P, w, S, M, N, accumulate, eps);
}
