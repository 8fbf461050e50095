// attention.cuh: causal attention of each row's query heads over its own
// sequence's paged KV cache.
#pragma once
#include "common.cuh"

#define ATT_THREADS 128
#define ATT_MAX_HD 128

// attention computes, for row blockIdx.x and query head blockIdx.y,
// softmax(q . K^T * scale) . V over the row's pos+1 cached positions,
// reading KV head h / (heads / kvheads). It walks the positions in chunks
// of ATT_THREADS with an online softmax, every reduction in a fixed order,
// so a row's result depends on its query and its cache alone.
template <typename T>
__device__ void attention(T *out, const float *qkv, const int *pos, const int *ptoff, const int *pagetab,
                          const float *kc, const float *vc, int heads, int kvheads, int hd, int page, long pstride, float scale) {
    __shared__ float q[ATT_MAX_HD];
    __shared__ float p[ATT_THREADS];
    __shared__ float scratch[ATT_THREADS];
    int r = blockIdx.x, h = blockIdx.y, t = threadIdx.x;
    int qdim = heads * hd, kvdim = kvheads * hd;
    int off = (h / (heads / kvheads)) * hd;
    const float *row = qkv + (size_t)r * (qdim + 2 * kvdim);
    if (t < hd) q[t] = row[h * hd + t];
    __syncthreads();
    int npos = pos[r] + 1;
    const int *pt = pagetab + ptoff[r];
    float m = -INFINITY, l = 0, acc = 0;
    for (int c0 = 0; c0 < npos; c0 += ATT_THREADS) {
        int n = min(ATT_THREADS, npos - c0);
        float sc = -INFINITY;
        if (t < n) {
            int tp = c0 + t;
            const float *k = kc + (size_t)pt[tp / page] * pstride + (size_t)(tp % page) * kvdim + off;
            float d = 0;
            for (int i = 0; i < hd; i++) d = __fmaf_rn(q[i], k[i], d);
            sc = __fmul_rn(d, scale);
        }
        float cm = block_max_f(sc, scratch);
        float mn = fmaxf(m, cm);
        float e = t < n ? expf(__fsub_rn(sc, mn)) : 0.f;
        p[t] = e;
        float cs = block_sum_f(e, scratch); // also orders p[] before its reads
        float corr = expf(__fsub_rn(m, mn)); // 0 on the first chunk
        l = __fadd_rn(__fmul_rn(l, corr), cs);
        if (t < hd) {
            float a = __fmul_rn(acc, corr);
            for (int j = 0; j < n; j++) {
                int tp = c0 + j;
                const float *v = vc + (size_t)pt[tp / page] * pstride + (size_t)(tp % page) * kvdim + off;
                a = __fmaf_rn(p[j], v[t], a);
            }
            acc = a;
        }
        m = mn;
        __syncthreads();
    }
    if (t < hd) store(&out[(size_t)r * qdim + h * hd + t], __fdiv_rn(acc, l));
}

extern "C" __global__ void attention_bf16(bf16 *out, const float *qkv, const int *pos, const int *ptoff, const int *pagetab,
                                          const float *kc, const float *vc, int heads, int kvheads, int hd, int page, long pstride, float scale) {
    attention(out, qkv, pos, ptoff, pagetab, kc, vc, heads, kvheads, hd, page, pstride, scale);
}
extern "C" __global__ void attention_f32(float *out, const float *qkv, const int *pos, const int *ptoff, const int *pagetab,
                                         const float *kc, const float *vc, int heads, int kvheads, int hd, int page, long pstride, float scale) {
    attention(out, qkv, pos, ptoff, pagetab, kc, vc, heads, kvheads, hd, page, pstride, scale);
}
