// argmax.cuh: the greedy next token of each logits row.
#pragma once
#include "common.cuh"

// better orders candidates as the CPU's sample.Greedy does: the largest
// value, the lowest index among equals, NaN never (a NaN best means none).
__device__ __forceinline__ bool better(float v, int i, float bv, int bi) {
    if (isnan(v)) return false;
    if (isnan(bv)) return true;
    return v > bv || (v == bv && i < bi);
}

// argmax writes to out[r] the index of the largest of row r's n logits
// (0 if all are NaN); one block of 256 threads per row.
extern "C" __global__ void argmax(int *out, const float *logits, int n) {
    __shared__ float sv[256];
    __shared__ int si[256];
    int r = blockIdx.x, t = threadIdx.x;
    const float *row = logits + (size_t)r * n;
    float bv = NAN;
    int bi = 0;
    for (int i = t; i < n; i += blockDim.x)
        if (better(row[i], i, bv, bi)) bv = row[i], bi = i;
    sv[t] = bv, si[t] = bi;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (t < s && better(sv[t + s], si[t + s], sv[t], si[t])) sv[t] = sv[t + s], si[t] = si[t + s];
        __syncthreads();
    }
    if (t == 0) out[r] = si[0];
}
