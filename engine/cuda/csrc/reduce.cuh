// reduce.cuh: the end of a split product (gemm.cuh): its S partial planes
// added in order of the split, into Y or onto it (the residual stream),
// and optionally the row's RMSNorm, fused so that the residual's rows are
// read once.
#pragma once
#include "common.cuh"
#include "rmsnorm.cuh"

// A thread's elements in flight at once, and the planes read with them
// (gemm.go splits K in at most 4).
#define RED_UNROLL 8
#define RED_PLANES 4

// reduce sums row r = blockIdx.x of the planes P[s] (M x N each, s = 0 ..
// S-1, left to right) into row r of Y, added to what Y holds when
// accumulate (one more rounding, as gemm's epilogue adds). When w is not
// null it then writes RMSNorm(Y[r]) * w to row r of Yn with the bits of
// rmsnorm.cuh: the same threads sum the same values in the same order, and
// each reads back the values it wrote. One block of 256 threads a row.
template <typename T>
__device__ void reduce(float *Y, T *Yn, const float *__restrict__ P, const float *w, int S, int M, int N, int accumulate, float eps) {
    __shared__ double scratch[256];
    int r = blockIdx.x;
    size_t plane = (size_t)M * N;
    const float *p = P + (size_t)r * N;
    float *y = Y + (size_t)r * N;
    double ss = 0;
    // RED_UNROLL elements a thread at a time, all their loads issued before
    // the first add, so that a row's few blocks wait for memory once per
    // batch, not once per value. Each element still adds its planes left to
    // right, and each thread takes its elements in order.
    for (int base = threadIdx.x; base < N; base += RED_UNROLL * blockDim.x) {
        float part[RED_UNROLL][RED_PLANES], old[RED_UNROLL];
#pragma unroll
        for (int u = 0; u < RED_UNROLL; u++) {
            int i = base + u * blockDim.x;
#pragma unroll
            for (int s = 0; s < RED_PLANES; s++) part[u][s] = i < N && s < S ? p[s * plane + i] : 0.f;
            old[u] = i < N && accumulate ? y[i] : 0.f;
        }
#pragma unroll
        for (int u = 0; u < RED_UNROLL; u++) {
            int i = base + u * blockDim.x;
            if (i >= N) break;
            float v = part[u][0];
#pragma unroll
            for (int s = 1; s < RED_PLANES; s++)
                if (s < S) v = __fadd_rn(v, part[u][s]);
            for (int s = RED_PLANES; s < S; s++) v = __fadd_rn(v, p[s * plane + i]); // more planes than gemm.go splits
            if (accumulate) v = __fadd_rn(old[u], v);
            y[i] = v;
            ss = sum_sq(ss, v);
        }
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
