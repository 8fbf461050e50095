// embed.cuh: the token embedding lookup.
#pragma once
#include "common.cuh"

// embed writes x[r][:] = table[tokens[r]][:] as float32, one block per row.
template <typename T>
__device__ void embed(float *x, const T *table, const int *tokens, int hidden) {
    int r = blockIdx.x;
    const T *src = table + (size_t)tokens[r] * hidden;
    float *dst = x + (size_t)r * hidden;
    for (int i = threadIdx.x; i < hidden; i += blockDim.x) dst[i] = to_f32(src[i]);
}

extern "C" __global__ void embed_bf16(float *x, const bf16 *table, const int *tokens, int hidden) {
    embed(x, table, tokens, hidden);
}
extern "C" __global__ void embed_f32(float *x, const float *table, const int *tokens, int hidden) {
    embed(x, table, tokens, hidden);
}
