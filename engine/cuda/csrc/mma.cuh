// mma.cuh: the asynchronous copies, shared-memory matrix loads and
// tensor-core step that the products and attention share.
#pragma once
#include "common.cuh"

// cp_async16_s copies 16 bytes (bytes of them, the rest zero-filled) from
// global memory to the shared-space address s; cp_async16 takes a generic
// pointer to shared memory.
__device__ __forceinline__ void cp_async16_s(unsigned s, const void *gmem, int bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(bytes));
}
__device__ __forceinline__ void cp_async16(void *smem, const void *gmem, int bytes) {
    cp_async16_s((unsigned)__cvta_generic_to_shared(smem), gmem, bytes);
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }

__device__ __forceinline__ void mma_bf16(float *c, unsigned a0, unsigned a1, unsigned a2, unsigned a3, unsigned b0, unsigned b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

template <int N> __device__ __forceinline__ void cp_async_wait_n() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

// ldmatrix_x4_s loads four 8 x 8 bf16 matrices from the shared-space
// address s (lanes 0-7, 8-15, 16-23, 24-31 address the rows of matrix 0,
// 1, 2, 3); ldmatrix_x4 takes a generic pointer to shared memory.
__device__ __forceinline__ void ldmatrix_x4_s(unsigned *r, unsigned s) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(s));
}
__device__ __forceinline__ void ldmatrix_x4(unsigned *r, const void *p) {
    ldmatrix_x4_s(r, (unsigned)__cvta_generic_to_shared(p));
}

// ldmatrix_x4_trans is ldmatrix_x4 with each 8 x 8 matrix transposed: a
// thread gets the elements at rows 2 (lane % 4) and 2 (lane % 4) + 1 of
// column lane / 4.
__device__ __forceinline__ void ldmatrix_x4_trans(unsigned *r, const void *p) {
    unsigned s = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(s));
}
