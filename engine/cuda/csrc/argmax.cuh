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

// argmax finds the best (largest, then lowest index) of row r's n logits,
// r = blockIdx.x, one block of 256 threads per part of the row: with
// gridDim.y == 1 it writes the index to out[r] (0 if all are NaN); with
// gridDim.y = P > 1, block p takes the p-th of P spans of the row (a
// multiple of 4 logits each) and writes its best value and index to
// pv[r*P + p] and pi[r*P + p] for argmax_merge. The answer is fixed by the
// order alone, so the threads and the parts may visit the row in any
// order: here four values a load, four loads in flight.
extern "C" __global__ void argmax(int *out, float *pv, int *pi, const float *logits, int n) {
    __shared__ float sv[256];
    __shared__ int si[256];
    int r = blockIdx.x, t = threadIdx.x, parts = gridDim.y, p = blockIdx.y;
    int span = ((n + parts - 1) / parts + 3) / 4 * 4;
    int lo = min(n, p * span), hi = min(n, lo + span);
    const float *row = logits + (size_t)r * n;
    float bv = NAN;
    int bi = 0;
    // Four at a time from lo (a multiple of 4) where the row's rows are
    // 16-byte aligned, then one at a time.
    int n4 = n % 4 == 0 ? (hi - lo) / 4 : 0;
    const float4 *row4 = (const float4 *)(row + lo);
    for (int c = t; c < n4; c += 4 * blockDim.x) {
        float4 v[4];
#pragma unroll
        for (int u = 0; u < 4; u++) v[u] = c + u * blockDim.x < n4 ? row4[c + u * blockDim.x] : make_float4(NAN, NAN, NAN, NAN);
#pragma unroll
        for (int u = 0; u < 4; u++) {
            int i = lo + (c + u * blockDim.x) * 4;
            if (better(v[u].x, i, bv, bi)) bv = v[u].x, bi = i;
            if (better(v[u].y, i + 1, bv, bi)) bv = v[u].y, bi = i + 1;
            if (better(v[u].z, i + 2, bv, bi)) bv = v[u].z, bi = i + 2;
            if (better(v[u].w, i + 3, bv, bi)) bv = v[u].w, bi = i + 3;
        }
    }
    for (int i = lo + 4 * n4 + t; i < hi; i += blockDim.x)
        if (better(row[i], i, bv, bi)) bv = row[i], bi = i;
    sv[t] = bv, si[t] = bi;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (t < s && better(sv[t + s], si[t + s], sv[t], si[t])) sv[t] = sv[t + s], si[t] = si[t + s];
        __syncthreads();
    }
    if (t != 0) return;
    if (parts == 1) {
        out[r] = si[0];
    } else {
        pv[r * parts + p] = sv[0];
        pi[r * parts + p] = si[0];
    }
}

// argmax_merge writes to out[r] the best of row r's parts partial bests
// (argmax with gridDim.y = parts), one warp a row.
extern "C" __global__ void argmax_merge(int *out, const float *pv, const int *pi, int parts) {
    int r = blockIdx.x, t = threadIdx.x;
    float bv = NAN;
    int bi = 0;
    for (int p = t; p < parts; p += 32)
        if (better(pv[r * parts + p], pi[r * parts + p], bv, bi)) bv = pv[r * parts + p], bi = pi[r * parts + p];
    for (int o = 16; o > 0; o >>= 1) {
        float ov = __shfl_xor_sync(0xffffffffu, bv, o);
        int oi = __shfl_xor_sync(0xffffffffu, bi, o);
        if (better(ov, oi, bv, bi)) bv = ov, bi = oi;
    }
    if (t == 0) out[r] = bi;
}
