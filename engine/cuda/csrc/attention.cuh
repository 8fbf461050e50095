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

// kdot is the dot product of a query and a cached key in order of the
// head's dimensions, one fused multiply-add a dimension from 0, reading
// 16 bytes of the key at a time where the head allows; a bf16 key is
// widened to float32 exactly, so both caches take the same operations.
__device__ __forceinline__ float kdot(const float *q, const float *k, int hd) {
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
    return d;
}

__device__ __forceinline__ float kdot(const float *q, const bf16 *k, int hd) {
    float d = 0;
    if (hd % 8 == 0) {
        for (int i = 0; i < hd; i += 8) {
            uint4 raw = *(const uint4 *)(k + i);
            const __nv_bfloat162 *p = (const __nv_bfloat162 *)&raw;
#pragma unroll
            for (int j = 0; j < 4; j++) {
                float2 f = __bfloat1622float2(p[j]);
                d = __fmaf_rn(q[i + 2 * j], f.x, d);
                d = __fmaf_rn(q[i + 2 * j + 1], f.y, d);
            }
        }
    } else {
        for (int i = 0; i < hd; i++) d = __fmaf_rn(q[i], __bfloat162float(k[i]), d);
    }
    return d;
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
// depends on its query and its cache alone. The cache holds KV elements
// (float32, or bf16 widened exactly as they are read); pstride and the
// slot offsets count elements.
template <typename T, typename KV>
__device__ void attention(T *out, const float *qkv, const int *pos, const int *ptoff, const int *pagetab,
                          const KV *kc, const KV *vc, int heads, int kvheads, int hd, int page, long pstride, float scale) {
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
            const KV *k = kc + (size_t)pt[t / page] * pstride + (size_t)(t % page) * kvdim + off;
            s = __fmul_rn(kdot(qs[w], k, hd), scale);
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
            const KV *v = vc + (size_t)pt[tp / page] * pstride + (size_t)(tp % page) * kvdim + off;
#pragma unroll
            for (int a = 0; a < ATT_MAX_HD / 32; a++)
                if (lane + 32 * a < hd) acc[a] = __fmaf_rn(p, to_f32(v[lane + 32 * a]), acc[a]);
        }
        m = mn;
    }
    T *o = out + (size_t)r * qdim + h * hd;
#pragma unroll
    for (int a = 0; a < ATT_MAX_HD / 32; a++)
        if (lane + 32 * a < hd) store(&o[lane + 32 * a], __fdiv_rn(acc[a], l));
}

// attention_bf16 writes bf16 and reads a bf16 cache (dtype bf16);
// attention_f32 is float32 throughout (dtype f32).
extern "C" __global__ void attention_bf16(bf16 *out, const float *qkv, const int *pos, const int *ptoff, const int *pagetab,
                                          const bf16 *kc, const bf16 *vc, int heads, int kvheads, int hd, int page, long pstride, float scale) {
    attention(out, qkv, pos, ptoff, pagetab, kc, vc, heads, kvheads, hd, page, pstride, scale);
}
extern "C" __global__ void attention_f32(float *out, const float *qkv, const int *pos, const int *ptoff, const int *pagetab,
                                         const float *kc, const float *vc, int heads, int kvheads, int hd, int page, long pstride, float scale) {
    attention(out, qkv, pos, ptoff, pagetab, kc, vc, heads, kvheads, hd, page, pstride, scale);
}
