// rope.cuh: rotary position embedding (Hugging Face rotate_half: element j
// pairs with j + head_dim/2) on the queries and keys of the fused Q|K|V
// output, then the keys and values stored in the paged KV cache.
#pragma once
#include "common.cuh"

// rope_store handles row blockIdx.x of qkv ([rows][qdim + 2*kvdim]): it
// rotates its query and key heads in place with the angles of its position
// (cos and sin: [positions][head_dim/2], computed on the host exactly as the
// CPU computes them), then writes its key and value to slot pos % page of
// page pagetab[ptoff + pos / page] of kc and vc (page p's slot s at
// p*pstride + s*kvdim elements of KV).
// Each product is rounded on its own, as on the CPU.
template <typename KV>
__device__ void rope_store(float *qkv, const int *pos, const int *ptoff, const int *pagetab,
                           const float *cosT, const float *sinT, KV *kc, KV *vc,
                           int heads, int kvheads, int hd, int page, long pstride) {
    int r = blockIdx.x;
    int half = hd / 2, qdim = heads * hd, kvdim = kvheads * hd;
    float *row = qkv + (size_t)r * (qdim + 2 * kvdim);
    int p = pos[r];
    const float *c = cosT + (size_t)p * half, *s = sinT + (size_t)p * half;
    for (int i = threadIdx.x; i < (heads + kvheads) * half; i += blockDim.x) {
        int h = i / half, j = i % half;
        float *v = row + h * hd; // query heads, then key heads right after
        float a = v[j], b = v[j + half];
        v[j] = __fsub_rn(__fmul_rn(a, c[j]), __fmul_rn(b, s[j]));
        v[j + half] = __fadd_rn(__fmul_rn(b, c[j]), __fmul_rn(a, s[j]));
    }
    __syncthreads();
    size_t slot = (size_t)pagetab[ptoff[r] + p / page] * pstride + (size_t)(p % page) * kvdim;
    for (int i = threadIdx.x; i < kvdim; i += blockDim.x) {
        store(&kc[slot + i], row[qdim + i]);
        store(&vc[slot + i], row[qdim + kvdim + i]);
    }
}

// rope_store_f32 keeps the cache in float32 (dtype f32); rope_store_bf16
// rounds keys and values to the nearest bf16, ties to even, as it stores
// them (dtype bf16). The rotated queries stay float32 either way.
extern "C" __global__ void rope_store_f32(float *qkv, const int *pos, const int *ptoff, const int *pagetab, const float *cosT,
                                          const float *sinT, float *kc, float *vc, int heads, int kvheads, int hd, int page, long pstride) {
    rope_store(qkv, pos, ptoff, pagetab, cosT, sinT, kc, vc, heads, kvheads, hd, page, pstride);
}
extern "C" __global__ void rope_store_bf16(float *qkv, const int *pos, const int *ptoff, const int *pagetab, const float *cosT,
                                           const float *sinT, bf16 *kc, bf16 *vc, int heads, int kvheads, int hd, int page, long pstride) {
    rope_store(qkv, pos, ptoff, pagetab, cosT, sinT, kc, vc, heads, kvheads, hd, page, pstride);
}
