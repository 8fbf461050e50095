// common.cuh: types and helpers shared by the kernels. Every kernel here is
// batch-invariant: the value of one output element is computed by the same
// operations in the same order whatever the number of rows in the launch
// and whatever the other rows hold.
#pragma once
#include <cuda_bf16.h>
#include <stdint.h>

typedef __nv_bfloat16 bf16;

// block_sum_d sums v over blockDim.x threads (a power of two up to 1024)
// in a fixed tree order; every thread gets the result. scratch holds
// blockDim.x values.
__device__ __forceinline__ double block_sum_d(double v, double *scratch) {
    int t = threadIdx.x;
    scratch[t] = v;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (t < s) scratch[t] += scratch[t + s];
        __syncthreads();
    }
    double r = scratch[0];
    __syncthreads();
    return r;
}

__device__ __forceinline__ float to_f32(float v) { return v; }
__device__ __forceinline__ float to_f32(bf16 v) { return __bfloat162float(v); }
__device__ __forceinline__ void store(float *p, float v) { *p = v; }
__device__ __forceinline__ void store(bf16 *p, float v) { *p = __float2bfloat16_rn(v); }
