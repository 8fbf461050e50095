// attention.cuh: causal attention of each row's query heads over its own
// sequence's paged KV cache.
#pragma once
#include "common.cuh"

#define ATT_MAX_HD 128
#define ATT_MAX_GROUP 16

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = __fadd_rn(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// attention computes softmax(q . K^T * scale) . V for row blockIdx.x and
// the query heads of KV head blockIdx.y (query head h reads KV head h /
// (heads / kvheads)), one warp per query head, over the row's pos+1 cached
// positions. The warps of a block share their KV head, so its rows are
// read from memory once. Positions go 32 at a time, one a lane: the lane's
// score is a dot product in order of the head's dimensions; an online
// softmax rescales the running sums; the weighted sum of values walks the
// 32 positions in order, each lane holding dimensions lane, lane+32, ...
// Every reduction is a fixed butterfly of the warp, so a row's result
// depends on its query and its cache alone.
template <typename T>
__device__ void attention(T *out, const float *qkv, const int *pos, const int *ptoff, const int *pagetab,
                          const float *kc, const float *vc, int heads, int kvheads, int hd, int page, long pstride, float scale) {
    __shared__ __align__(16) float qs[ATT_MAX_GROUP][ATT_MAX_HD];
    int r = blockIdx.x, kvh = blockIdx.y, w = threadIdx.x / 32, lane = threadIdx.x % 32;
    int group = heads / kvheads, h = kvh * group + w;
    int qdim = heads * hd, kvdim = kvheads * hd, off = kvh * hd;
    const float *row = qkv + (size_t)r * (qdim + 2 * kvdim);
    for (int i = lane; i < hd; i += 32) qs[w][i] = row[h * hd + i];
    __syncwarp();
    int npos = pos[r] + 1;
    const int *pt = pagetab + ptoff[r];
    float m = -INFINITY, l = 0, acc[ATT_MAX_HD / 32];
#pragma unroll
    for (int a = 0; a < ATT_MAX_HD / 32; a++) acc[a] = 0;
    for (int c0 = 0; c0 < npos; c0 += 32) {
        int t = c0 + lane, n = min(32, npos - c0);
        float s = -INFINITY;
        if (t < npos) {
            const float *k = kc + (size_t)pt[t / page] * pstride + (size_t)(t % page) * kvdim + off;
            float d = 0;
            if (hd % 4 == 0) {
                for (int i = 0; i < hd; i += 4) {
                    float4 kv = *(const float4 *)(k + i);
                    d = __fmaf_rn(qs[w][i], kv.x, d);
                    d = __fmaf_rn(qs[w][i + 1], kv.y, d);
                    d = __fmaf_rn(qs[w][i + 2], kv.z, d);
                    d = __fmaf_rn(qs[w][i + 3], kv.w, d);
                }
            } else {
                for (int i = 0; i < hd; i++) d = __fmaf_rn(qs[w][i], k[i], d);
            }
            s = __fmul_rn(d, scale);
        }
        float mn = fmaxf(m, warp_max(s));
        float e = t < npos ? expf(__fsub_rn(s, mn)) : 0.f;
        float corr = expf(__fsub_rn(m, mn)); // 0 on the first chunk
        l = __fadd_rn(__fmul_rn(l, corr), warp_sum(e));
#pragma unroll
        for (int a = 0; a < ATT_MAX_HD / 32; a++) acc[a] = __fmul_rn(acc[a], corr);
#pragma unroll 8
        for (int j = 0; j < n; j++) {
            float p = __shfl_sync(0xffffffffu, e, j);
            int tp = c0 + j;
            const float *v = vc + (size_t)pt[tp / page] * pstride + (size_t)(tp % page) * kvdim + off;
#pragma unroll
            for (int a = 0; a < ATT_MAX_HD / 32; a++)
                if (lane + 32 * a < hd) acc[a] = __fmaf_rn(p, v[lane + 32 * a], acc[a]);
        }
        m = mn;
    }
    T *o = out + (size_t)r * qdim + h * hd;
#pragma unroll
    for (int a = 0; a < ATT_MAX_HD / 32; a++)
        if (lane + 32 * a < hd) store(&o[lane + 32 * a], __fdiv_rn(acc[a], l));
}

extern "C" __global__ void attention_bf16(bf16 *out, const float *qkv, const int *pos, const int *ptoff, const int *pagetab,
                                          const float *kc, const float *vc, int heads, int kvheads, int hd, int page, long pstride, float scale) {
    attention(out, qkv, pos, ptoff, pagetab, kc, vc, heads, kvheads, hd, page, pstride, scale);
}
extern "C" __global__ void attention_f32(float *out, const float *qkv, const int *pos, const int *ptoff, const int *pagetab,
                                         const float *kc, const float *vc, int heads, int kvheads, int hd, int page, long pstride, float scale) {
    attention(out, qkv, pos, ptoff, pagetab, kc, vc, heads, kvheads, hd, page, pstride, scale);
}
