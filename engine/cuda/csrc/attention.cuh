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
// (heads / kvheads)) over the row's pos+1 cached positions. The block has
// splits warps per query head: warp (part, head) takes the 32-position
// chunks part, part+splits, ... (one position a lane: the lane's score is
// a dot product in order of the head's dimensions), keeping an online
// softmax and its weighted sum of values (each lane holding dimensions
// lane, lane+32, ...); then the parts are combined in order of part. The
// warps share their KV head, so its rows are read from memory once.
// Every reduction is a fixed butterfly of a warp or a fixed order of
// parts, and splits depends on the model alone, so a row's result depends
// on its query and its cache alone, whatever the batch.
template <typename T>
__device__ void attention(T *out, const float *qkv, const int *pos, const int *ptoff, const int *pagetab,
                          const float *kc, const float *vc, int heads, int kvheads, int hd, int page, long pstride, float scale,
                          int splits) {
    __shared__ __align__(16) float qs[ATT_MAX_GROUP][ATT_MAX_HD];
    __shared__ float pm[32], pl[32];
    __shared__ float pacc[32][ATT_MAX_HD];
    int r = blockIdx.x, kvh = blockIdx.y, w = threadIdx.x / 32, lane = threadIdx.x % 32;
    int group = heads / kvheads, hl = w % group, part = w / group, h = kvh * group + hl;
    int qdim = heads * hd, kvdim = kvheads * hd, off = kvh * hd;
    const float *row = qkv + (size_t)r * (qdim + 2 * kvdim);
    if (part == 0)
        for (int i = lane; i < hd; i += 32) qs[hl][i] = row[h * hd + i];
    __syncthreads();
    int npos = pos[r] + 1;
    const int *pt = pagetab + ptoff[r];
    const float *q = qs[hl];
    float m = -INFINITY, l = 0, acc[ATT_MAX_HD / 32];
#pragma unroll
    for (int a = 0; a < ATT_MAX_HD / 32; a++) acc[a] = 0;
    for (int c0 = part * 32; c0 < npos; c0 += splits * 32) {
        int t = c0 + lane, n = min(32, npos - c0);
        float s = -INFINITY;
        if (t < npos) {
            const float *k = kc + (size_t)pt[t / page] * pstride + (size_t)(t % page) * kvdim + off;
            float d = 0;
            if (hd % 4 == 0) {
                for (int i = 0; i < hd; i += 4) {
                    float4 kv = *(const float4 *)(k + i);
                    d = __fmaf_rn(q[i], kv.x, d);
                    d = __fmaf_rn(q[i + 1], kv.y, d);
                    d = __fmaf_rn(q[i + 2], kv.z, d);
                    d = __fmaf_rn(q[i + 3], kv.w, d);
                }
            } else {
                for (int i = 0; i < hd; i++) d = __fmaf_rn(q[i], k[i], d);
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
    // Combine the parts in order: a part that saw no position has m = -inf
    // and weighs exp(-inf) = 0.
    if (lane == 0) pm[w] = m, pl[w] = l;
#pragma unroll
    for (int a = 0; a < ATT_MAX_HD / 32; a++)
        if (lane + 32 * a < hd) pacc[w][lane + 32 * a] = acc[a];
    __syncthreads();
    if (part != 0) return;
    float M = -INFINITY;
    for (int p = 0; p < splits; p++) M = fmaxf(M, pm[p * group + hl]);
    float L = 0, o[ATT_MAX_HD / 32];
#pragma unroll
    for (int a = 0; a < ATT_MAX_HD / 32; a++) o[a] = 0;
    for (int p = 0; p < splits; p++) {
        int pw = p * group + hl;
        float f = expf(__fsub_rn(pm[pw], M));
        L = __fadd_rn(L, __fmul_rn(pl[pw], f));
#pragma unroll
        for (int a = 0; a < ATT_MAX_HD / 32; a++)
            if (lane + 32 * a < hd) o[a] = __fmaf_rn(pacc[pw][lane + 32 * a], f, o[a]);
    }
    T *dst = out + (size_t)r * qdim + h * hd;
#pragma unroll
    for (int a = 0; a < ATT_MAX_HD / 32; a++)
        if (lane + 32 * a < hd) store(&dst[lane + 32 * a], __fdiv_rn(o[a], L));
}

extern "C" __global__ void attention_bf16(bf16 *out, const float *qkv, const int *pos, const int *ptoff, const int *pagetab,
                                          const float *kc, const float *vc, int heads, int kvheads, int hd, int page, long pstride, float scale,
                                          int splits) {
    attention(out, qkv, pos, ptoff, pagetab, kc, vc, heads, kvheads, hd, page, pstride, scale, splits);
}
extern "C" __global__ void attention_f32(float *out, const float *qkv, const int *pos, const int *ptoff, const int *pagetab,
                                         const float *kc, const float *vc, int heads, int kvheads, int hd, int page, long pstride, float scale,
                                         int splits) {
    attention(out, qkv, pos, ptoff, pagetab, kc, vc, heads, kvheads, hd, page, pstride, scale, splits);
}
