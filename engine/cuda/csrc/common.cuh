// common.cuh: types and helpers shared by the kernels. Every kernel here is
// batch-invariant: the value of one output element is computed by the same
// operations in the same order whatever the number of rows in the launch
// and whatever the other rows hold.
#pragma once
#include <cuda_bf16.h>
#include <stdint.h>

typedef __nv_bfloat16 bf16;

// Programmatic dependent launch (compute capability 9.0; compiled where
// BT_EARLY is defined, in the Hopper module): a kernel launched early
// (the driver's LaunchEarly) may start while the kernel queued before it
// still runs. early_wait holds it until that kernel has finished and its
// writes are visible; a kernel so launched calls it before it reads or
// writes anything the kernels before it write or read (it may read its
// weights and the step's metadata before). early_release lets the kernel
// queued after this one start. In the other module both are nothing: its
// kernels are launched the plain way, each after the one before ends.
#ifdef BT_EARLY
__device__ __forceinline__ void early_wait() { asm volatile("griddepcontrol.wait;\n" ::: "memory"); }
__device__ __forceinline__ void early_release() { asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory"); }
#else
__device__ __forceinline__ void early_wait() {}
__device__ __forceinline__ void early_release() {}
#endif

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
