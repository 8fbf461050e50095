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
    size_t slot = (size_t)pagetab[ptoff[r] + p / page] * pstride + (size_t)(p % page) * kvdim;
    // Four pairs a thread at a time, loaded before any is written back, so
    // that a row's block waits for memory once per batch.
    int pairs = (heads + kvheads) * half;
    for (int base = threadIdx.x; base < pairs; base += 4 * blockDim.x) {
        float a[4], b[4], cs[4], sn[4];
#pragma unroll
        for (int u = 0; u < 4; u++) {
            int i = base + u * blockDim.x, h = i / half, j = i % half;
            bool in = i < pairs;
            a[u] = in ? row[h * hd + j] : 0.f; // query heads, then key heads right after
            b[u] = in ? row[h * hd + j + half] : 0.f;
            cs[u] = in ? c[j] : 0.f;
            sn[u] = in ? s[j] : 0.f;
        }
#pragma unroll
        for (int u = 0; u < 4; u++) {
            int i = base + u * blockDim.x, h = i / half, j = i % half;
            if (i >= pairs) break;
            row[h * hd + j] = __fsub_rn(__fmul_rn(a[u], cs[u]), __fmul_rn(b[u], sn[u]));
            row[h * hd + j + half] = __fadd_rn(__fmul_rn(b[u], cs[u]), __fmul_rn(a[u], sn[u]));
        }
    }
    __syncthreads();
    for (int base = threadIdx.x; base < kvdim; base += 4 * blockDim.x) {
        float k[4], v[4];
#pragma unroll
        for (int u = 0; u < 4; u++) {
            int i = base + u * blockDim.x;
            k[u] = i < kvdim ? row[qdim + i] : 0.f;
            v[u] = i < kvdim ? row[qdim + kvdim + i] : 0.f;
        }
#pragma unroll
        for (int u = 0; u < 4; u++) {
            int i = base + u * blockDim.x;
            if (i >= kvdim) break;
            store(&kc[slot + i], k[u]);
            store(&vc[slot + i], v[u]);
        }
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
