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
// (0 if all are NaN); one block of 256 threads per row. The answer is
// fixed by the order alone (largest value, then lowest index), so the
// threads may visit the row in any order: here four values a load, four
// loads in flight.
extern "C" __global__ void argmax(int *out, const float *logits, int n) {
    __shared__ float sv[256];
    __shared__ int si[256];
    int r = blockIdx.x, t = threadIdx.x;
    const float *row = logits + (size_t)r * n;
    float bv = NAN;
    int bi = 0;
    int n4 = n % 4 == 0 ? n / 4 : 0;
    const float4 *row4 = (const float4 *)row;
    for (int c = t; c < n4; c += 4 * blockDim.x) {
        float4 v[4];
#pragma unroll
        for (int u = 0; u < 4; u++) v[u] = c + u * blockDim.x < n4 ? row4[c + u * blockDim.x] : make_float4(NAN, NAN, NAN, NAN);
#pragma unroll
        for (int u = 0; u < 4; u++) {
            int i = (c + u * blockDim.x) * 4;
            if (better(v[u].x, i, bv, bi)) bv = v[u].x, bi = i;
            if (better(v[u].y, i + 1, bv, bi)) bv = v[u].y, bi = i + 1;
            if (better(v[u].z, i + 2, bv, bi)) bv = v[u].z, bi = i + 2;
            if (better(v[u].w, i + 3, bv, bi)) bv = v[u].w, bi = i + 3;
        }
    }
    for (int i = 4 * n4 + t; i < n; i += blockDim.x)
        if (better(row[i], i, bv, bi)) bv = row[i], bi = i;
    sv[t] = bv, si[t] = bi;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (t < s && better(sv[t + s], si[t + s], sv[t], si[t])) sv[t] = sv[t + s], si[t] = si[t + s];
        __syncthreads();
    }
    if (t == 0) out[r] = si[0];
}
