// attention.cuh: causal attention of each row's query heads over its own
// sequence's paged KV cache: one kernel for rows alone (decode) and one for
// tiles of a sequence's consecutive rows (prefill) that gives the same bits.
#pragma once
#include "common.cuh"
#include "mma.cuh"

#define ATT_MAX_HD 128
#define ATT_MAX_GROUP 16
// A tile block's warps and the (row, query head) pairs each takes; a tile
// holds at most ATT_TILE_PAIRS pairs (engine/cuda's attTilePairs).
#define ATT_TILE_WARPS 8
#define ATT_TILE_PER_WARP 8
#define ATT_TILE_PAIRS (ATT_TILE_WARPS * ATT_TILE_PER_WARP)

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

// Pack<B>::T is the built-in type of B bytes (4, 8 or 16) that one load
// or store moves.
template <int B> struct Pack;
template <> struct Pack<4> { typedef unsigned T; };
template <> struct Pack<8> { typedef uint2 T; };
template <> struct Pack<16> { typedef uint4 T; };

// Elems holds N consecutive cached elements as one load reads them
// (aligned to their size); at(i) widens element i to float32, exactly.
template <typename KV, int N> struct Elems {
    typedef typename Pack<N * sizeof(KV)>::T P;
    P raw;
    __device__ __forceinline__ void load(const KV *p) { raw = *(const P *)p; }
    __device__ __forceinline__ float at(int i) const { return to_f32(((const KV *)&raw)[i]); }
};

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

// Head<HD> is how the kernels lay a head of HD dimensions over a warp's
// lanes for the weighted sum of values and the output. Compiled for
// head_dim 64 and 128, a lane holds the N = HD/32 consecutive dimensions
// from lane * N, so a position's values are one load of 4 to 16 bytes and
// every loop over dimensions unrolls; Head<0> takes any head_dim up to
// ATT_MAX_HD at run time, lane holding dimensions lane, lane + 32, ...
// Which lane holds a dimension changes nothing in how it is computed.
template <int HD> struct Head {
    static constexpr int N = HD / 32; // dimensions a lane
    __device__ static bool has(int, int, int) { return true; }
    // lds reads a lane's dimensions of a float32 row in shared memory.
    __device__ static void lds(float *v, const float *row, int lane, int) {
        typedef typename Pack<N * 4>::T P;
        *(P *)v = *(const P *)(row + lane * N);
    }
    // put writes a lane's dimensions of an output row, each rounded as
    // store() rounds it, with one store.
    template <typename T> __device__ static void put(T *row, const float *v, int lane, int) {
        Elems<T, N> e;
#pragma unroll
        for (int a = 0; a < N; a++) store((T *)&e.raw + a, v[a]);
        *(typename Elems<T, N>::P *)(row + lane * N) = e.raw;
    }
};

template <> struct Head<0> {
    static constexpr int N = ATT_MAX_HD / 32;
    __device__ static bool has(int lane, int a, int hd) { return lane + 32 * a < hd; }
    __device__ static void lds(float *v, const float *row, int lane, int hd) {
#pragma unroll
        for (int a = 0; a < N; a++) v[a] = has(lane, a, hd) ? row[lane + 32 * a] : 0.f;
    }
    template <typename T> __device__ static void put(T *row, const float *v, int lane, int hd) {
#pragma unroll
        for (int a = 0; a < N; a++)
            if (has(lane, a, hd)) store(&row[lane + 32 * a], v[a]);
    }
};

// attention computes softmax(q . K^T * scale) . V for row rows[blockIdx.x] and
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
// slot offsets count elements. (A form compiled per head_dim with its
// loads issued a chunk ahead was measured slower on an H200, at one row
// and at 512: its registers halved the resident blocks; docs/gpu.md.)
template <typename T, typename KV>
__device__ void attention(T *out, const float *qkv, const int *rows, const int *pos, const int *ptoff, const int *pagetab,
                          const KV *kc, const KV *vc, int heads, int kvheads, int hd, int page, long pstride, float scale) {
    __shared__ __align__(16) float qs[ATT_MAX_GROUP][ATT_MAX_HD];
    int r = rows[blockIdx.x], kvh = blockIdx.y, w = threadIdx.x / 32, lane = threadIdx.x % 32;
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
    // With pages of a multiple of 32 positions (the engine's), a chunk of
    // 32 lies in one page: its rows are found from the chunk's first.
    bool onepage = page % 32 == 0;
    for (int c0 = 0; c0 < npos; c0 += 32) {
        int t = c0 + lane, n = min(32, npos - c0);
        size_t first = (size_t)pt[c0 / page] * pstride + (size_t)(c0 % page) * kvdim + off;
        float s = -INFINITY;
        if (t < npos) {
            const KV *k = kc + (onepage ? first + (size_t)lane * kvdim : (size_t)pt[t / page] * pstride + (size_t)(t % page) * kvdim + off);
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
            const KV *v = vc + (onepage ? first + (size_t)j * kvdim : (size_t)pt[tp / page] * pstride + (size_t)(tp % page) * kvdim + off);
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

// load4 reads four consecutive cached elements, widened exactly to
// float32 (16 bytes of float32 or 8 of bf16, aligned to that).
__device__ __forceinline__ float4 load4(const float *p) { return *(const float4 *)p; }
__device__ __forceinline__ float4 load4(const bf16 *p) {
    uint2 raw = *(const uint2 *)p;
    float2 a = __bfloat1622float2(*(const __nv_bfloat162 *)&raw.x);
    float2 b = __bfloat1622float2(*(const __nv_bfloat162 *)&raw.y);
    return make_float4(a.x, a.y, b.x, b.y);
}

// attention_tile is attention for a tile of consecutive rows of one
// sequence (prefill): block blockIdx.x takes the tiles[2*blockIdx.x+1]
// rows from row tiles[2*blockIdx.x] (rows times query heads a KV head at
// most ATT_TILE_PAIRS; one sequence, so one page table), and KV head
// blockIdx.y. Each chunk of 32 positions of the KV head's keys and values
// is staged in shared memory once, as float32 (exact), for every (row,
// query head) pair of the tile; warp w takes pairs w, w + ATT_TILE_WARPS,
// ..., its pairs' running sums in registers. Each pair computes exactly
// what attention computes for it, operation for operation: the same chunks
// of 32 positions from 0 up to its own pos+1 (a pair skips the chunks past
// its row; lanes past it are masked as there), the same dot product order,
// butterflies, online-softmax updates and order of the values; only where
// the operands come from, and which lane holds which dimension, differ.
// So its bits are attention's whatever the tiling, and the step's split
// into tiles changes speed, not results. Dynamic shared memory: 4 * (32 *
// (hd + 4) + 32 * hd + ATT_TILE_PAIRS * hd) bytes (engine/cuda's
// attTileSmem).
template <int HD, typename T, typename KV>
__device__ __noinline__ void attention_tile(T *out, const float *qkv, const int *tiles, const int *pos, const int *ptoff,
                                            const int *pagetab, const KV *kc, const KV *vc, int heads, int kvheads, int hd,
                                            int page, long pstride, float scale) {
    typedef Head<HD> H;
    extern __shared__ __align__(16) float sm[];
    if (HD) hd = HD;
    const int kstride = hd + 4; // a key a row, padded: lanes reading 16 bytes each of their own row meet no bank twice
    float *ks = sm, *vs = sm + 32 * kstride, *qs = vs + 32 * hd;
    int r0 = tiles[2 * blockIdx.x], nr = tiles[2 * blockIdx.x + 1], kvh = blockIdx.y;
    int w = threadIdx.x / 32, lane = threadIdx.x % 32;
    int group = heads / kvheads, npairs = nr * group;
    int qdim = heads * hd, kvdim = kvheads * hd, off = kvh * hd, width = qdim + 2 * kvdim;
    const int *pt = pagetab + ptoff[r0];
    // Pair p is row r0 + p / group, query head kvh * group + p % group.
    for (int i = threadIdx.x; i < npairs * hd; i += blockDim.x) {
        int p = i / hd;
        qs[i] = qkv[(size_t)(r0 + p / group) * width + (kvh * group + p % group) * hd + i % hd];
    }
    int npos[ATT_TILE_PER_WARP], end = 0;
#pragma unroll
    for (int k = 0; k < ATT_TILE_PER_WARP; k++) {
        int p = w + ATT_TILE_WARPS * k;
        npos[k] = p < npairs ? pos[r0 + p / group] + 1 : 0; // 0: no pair
    }
    for (int i = 0; i < nr; i++) end = max(end, pos[r0 + i] + 1);
    float m[ATT_TILE_PER_WARP], l[ATT_TILE_PER_WARP], acc[ATT_TILE_PER_WARP][H::N];
#pragma unroll
    for (int k = 0; k < ATT_TILE_PER_WARP; k++) {
        m[k] = -INFINITY, l[k] = 0;
#pragma unroll
        for (int a = 0; a < H::N; a++) acc[k][a] = 0;
    }
    for (int c0 = 0; c0 < end; c0 += 32) {
        int nc = min(32, end - c0);
        __syncthreads(); // the last chunk's readers are done (and the queries are in, the first time)
        if (hd % 4 == 0) {
            int h4 = hd / 4;
            size_t first = (size_t)pt[c0 / page] * pstride + (size_t)(c0 % page) * kvdim + off;
            bool onepage = page % 32 == 0; // the chunk lies in one page
            for (int i = threadIdx.x; i < nc * h4; i += blockDim.x) {
                int t = i / h4, d = (i % h4) * 4, tp = c0 + t;
                size_t at = (onepage ? first + (size_t)t * kvdim : (size_t)pt[tp / page] * pstride + (size_t)(tp % page) * kvdim + off) + d;
                *(float4 *)(ks + t * kstride + d) = load4(kc + at);
                *(float4 *)(vs + t * hd + d) = load4(vc + at);
            }
        } else {
            for (int i = threadIdx.x; i < nc * hd; i += blockDim.x) {
                int t = i / hd, d = i % hd, tp = c0 + t;
                size_t at = (size_t)pt[tp / page] * pstride + (size_t)(tp % page) * kvdim + off + d;
                ks[t * kstride + d] = to_f32(kc[at]);
                vs[t * hd + d] = to_f32(vc[at]);
            }
        }
        __syncthreads();
        // Scores: lane's position c0 + lane against each pair's query, the
        // key read once for all of them. Lanes past the staged positions
        // compute on stale values that the mask below throws away.
        float dot[ATT_TILE_PER_WARP];
#pragma unroll
        for (int k = 0; k < ATT_TILE_PER_WARP; k++) dot[k] = 0;
        const float *kr = ks + lane * kstride;
        if (hd % 4 == 0) {
            // The pairs give each step enough independent sums; unrolled
            // further the loop runs out of registers.
#pragma unroll 1
            for (int i = 0; i < hd; i += 4) {
                float4 kv = *(const float4 *)(kr + i);
#pragma unroll
                for (int k = 0; k < ATT_TILE_PER_WARP; k++) {
                    if (c0 < npos[k]) {
                        float4 q = *(const float4 *)(qs + (w + ATT_TILE_WARPS * k) * hd + i);
                        dot[k] = __fmaf_rn(q.x, kv.x, dot[k]);
                        dot[k] = __fmaf_rn(q.y, kv.y, dot[k]);
                        dot[k] = __fmaf_rn(q.z, kv.z, dot[k]);
                        dot[k] = __fmaf_rn(q.w, kv.w, dot[k]);
                    }
                }
            }
        } else {
            for (int i = 0; i < hd; i++) {
                float kv = kr[i];
#pragma unroll
                for (int k = 0; k < ATT_TILE_PER_WARP; k++)
                    if (c0 < npos[k]) dot[k] = __fmaf_rn(qs[(w + ATT_TILE_WARPS * k) * hd + i], kv, dot[k]);
            }
        }
        // Online softmax, pair by pair, as attention does it.
        float e[ATT_TILE_PER_WARP];
#pragma unroll
        for (int k = 0; k < ATT_TILE_PER_WARP; k++) {
            e[k] = 0;
            if (c0 < npos[k]) { // the same for the whole warp
                int t = c0 + lane;
                float s = t < npos[k] ? __fmul_rn(dot[k], scale) : -INFINITY;
                float mn = fmaxf(m[k], warp_max(s));
                e[k] = t < npos[k] ? expf(__fsub_rn(s, mn)) : 0.f;
                float corr = expf(__fsub_rn(m[k], mn)); // 0 on the first chunk
                l[k] = __fadd_rn(__fmul_rn(l[k], corr), warp_sum(e[k]));
#pragma unroll
                for (int a = 0; a < H::N; a++) acc[k][a] = __fmul_rn(acc[k][a], corr);
                m[k] = mn;
            }
        }
        // Values in order of position, each read once for every pair that
        // reaches it.
#pragma unroll 4
        for (int j = 0; j < nc; j++) {
            float v[H::N];
            H::lds(v, vs + j * hd, lane, hd);
#pragma unroll
            for (int k = 0; k < ATT_TILE_PER_WARP; k++) {
                if (j < npos[k] - c0) { // the same for the whole warp
                    float p = __shfl_sync(0xffffffffu, e[k], j);
#pragma unroll
                    for (int a = 0; a < H::N; a++)
                        if (H::has(lane, a, hd)) acc[k][a] = __fmaf_rn(p, v[a], acc[k][a]);
                }
            }
        }
    }
#pragma unroll
    for (int k = 0; k < ATT_TILE_PER_WARP; k++) {
        int p = w + ATT_TILE_WARPS * k;
        if (p >= npairs) continue;
        float o[H::N];
#pragma unroll
        for (int a = 0; a < H::N; a++) o[a] = __fdiv_rn(acc[k][a], l[k]);
        H::put(out + (size_t)(r0 + p / group) * qdim + (kvh * group + p % group) * hd, o, lane, hd);
    }
}

// attention_bf16 and attention_tile_bf16 write bf16 and read a bf16 cache
// (dtype bf16); attention_f32 and attention_tile_f32 are float32
// throughout (dtype f32). The tile kernels run the form compiled for
// their head_dim where there is one (64, 128) and the run-time form
// otherwise. The forms
// are functions of their own (__noinline__), so that ptxas allocates each
// its registers: inlined into one kernel together, they spilled.
#define ATT_BY_HD(f, ...)                                                                                              \
    do {                                                                                                               \
        if (hd == 64) f<64>(__VA_ARGS__);                                                                              \
        else if (hd == 128) f<128>(__VA_ARGS__);                                                                       \
        else f<0>(__VA_ARGS__);                                                                                        \
    } while (0)

extern "C" __global__ void attention_bf16(bf16 *out, const float *qkv, const int *rows, const int *pos, const int *ptoff, const int *pagetab,
                   const bf16 *kc, const bf16 *vc, int heads, int kvheads, int hd, int page, long pstride, float scale) {
    attention(out, qkv, rows, pos, ptoff, pagetab, kc, vc, heads, kvheads, hd, page, pstride, scale);
}
extern "C" __global__ void attention_f32(float *out, const float *qkv, const int *rows, const int *pos, const int *ptoff, const int *pagetab,
                  const float *kc, const float *vc, int heads, int kvheads, int hd, int page, long pstride, float scale) {
    attention(out, qkv, rows, pos, ptoff, pagetab, kc, vc, heads, kvheads, hd, page, pstride, scale);
}
extern "C" __global__ void __launch_bounds__(ATT_TILE_WARPS * 32, 2)
    attention_tile_bf16(bf16 *out, const float *qkv, const int *tiles, const int *pos, const int *ptoff, const int *pagetab,
                        const bf16 *kc, const bf16 *vc, int heads, int kvheads, int hd, int page, long pstride, float scale) {
    ATT_BY_HD(attention_tile, out, qkv, tiles, pos, ptoff, pagetab, kc, vc, heads, kvheads, hd, page, pstride, scale);
}
extern "C" __global__ void __launch_bounds__(ATT_TILE_WARPS * 32, 2)
    attention_tile_f32(float *out, const float *qkv, const int *tiles, const int *pos, const int *ptoff, const int *pagetab,
                       const float *kc, const float *vc, int heads, int kvheads, int hd, int page, long pstride, float scale) {
    ATT_BY_HD(attention_tile, out, qkv, tiles, pos, ptoff, pagetab, kc, vc, heads, kvheads, hd, page, pstride, scale);
}

// ---------------------------------------------------------------------------
// attention_mma: bf16 attention on the tensor cores, for head_dim 32, 64 and 128
// (dtype bf16; other head_dims and f32 keep the kernels above).
//
// A warp takes a unit's (sequence, KV head) and up to 16 of its query rows,
// rows being (token, query head) pairs: 16 / group tokens (1 a decode) times
// the KV head's group of query heads, one m16 tile. Each query is rounded
// to bf16. Positions go 32 at a time (chunks), each chunk's keys and values
// copied to the warp's own ring of shared memory: S = Q.K^T with
// mma.m16n8k16 in order of head_dim (16 at a time, from zero), scaled into
// the base-2 exponent; an online softmax per row (the row's maximum, then
// each exp2 against it; the row sum in a fixed order of the thread's eight
// and a butterfly of the four threads that hold the row); the running sums
// rescaled, then O += P.V with P rounded to bf16, two steps of 16
// positions in order. A row takes the chunks up to its own position: in a
// chunk past it, its scores are all masked, so its maximum, sum and output
// stay as they were (its P is zero, and so is what the mma adds).
//
// Every row's operations are the same whichever other rows share its m16
// tile, warp or launch (a tensor-core output element depends on its row of
// A, its column of B and its accumulator alone: the same property the
// products' batch invariance rests on), so a decode alone, a tile of
// prompt rows and every split of a prompt into steps give the same bits.
// Keys past a unit's last position are zero-filled, never read; a masked
// key's value, zero or not, is multiplied by a zero weight. The output
// adds +0 before rounding, so a sum of zero products is +0 wherever it ran.
//
// Launch: blockDim.x / 32 warps a block, warp w of the grid taking m-tile
// w % mts of KV head (w / mts) % kvheads of unit w / (mts * kvheads). A
// unit is a row alone (pairs 0: units[u] is the row) or a tile of
// consecutive rows of one sequence (pairs 1: units[2u], units[2u+1] are
// its first row and its rows). Dynamic shared memory: ATT_MMA_STAGES * 2 *
// 32 * head_dim bf16 a warp (engine/cuda's attMMASmem).
#define ATT_MMA_STAGES 2

// att_piece is where the 16-byte piece p of key t's row of HD bf16 lies in
// its row of shared memory: p ^ (t % 8) for rows of 8 pieces or more, p ^
// (t / 2 % 4) for head_dim 32's rows of 4 (two rows a 128 bytes), so that
// the eight rows an ldmatrix reads meet eight different banks.
template <int HD> __device__ __forceinline__ int att_piece(int t, int p) { return HD >= 64 ? p ^ (t % 8) : p ^ (t / 2 % 4); }

template <int HD>
__device__ __forceinline__ void attention_mma(bf16 *out, const float *qkv, const int *units, int pairs, int nunits, int mts,
                                              const int *pos, const int *ptoff, const int *pagetab, const bf16 *kc,
                                              const bf16 *vc, int heads, int kvheads, int page, long pstride, float scale2) {
    constexpr int CH = HD / 8;  // 16-byte pieces of a key's row
    constexpr int KS = HD / 16; // k steps of Q.K^T
    constexpr int NT = HD / 8;  // n tiles of the output
    extern __shared__ __align__(16) unsigned char att_sm[];
    // Launched early (the Hopper module, a one-row step): wait for q|k|v,
    // then let the o product start streaming its weights at once.
    early_wait();
    early_release();
    const int lane = threadIdx.x % 32, g = lane / 4, c = lane % 4;
    long w = (long)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    int mt = (int)(w % mts), kvh = (int)(w / mts % kvheads);
    long u = w / ((long)mts * kvheads);
    if (u >= nunits) return;
    int r0 = pairs ? units[2 * u] : units[u], n = pairs ? units[2 * u + 1] : 1;
    const int group = heads / kvheads, tpm = max(1, 16 / group);
    const int t0 = mt * tpm;
    if (t0 >= n) return;
    const int nt = min(tpm, n - t0), valid = nt * group;
    const int qdim = heads * HD, kvdim = kvheads * HD, width = qdim + 2 * kvdim, off = kvh * HD;
    bf16 *ks = (bf16 *)att_sm + (size_t)(threadIdx.x / 32) * ATT_MMA_STAGES * 2 * 32 * HD;
    bf16 *vs = ks + ATT_MMA_STAGES * 32 * HD;
    const int *pt = pagetab + ptoff[r0];

    // The thread's two rows (g and g + 8 of the tile): token, head, and how
    // many positions each sees (padding rows: one, with a zero query).
    int rt[2], rh[2], np[2];
#pragma unroll
    for (int h = 0; h < 2; h++) {
        int m = g + 8 * h;
        bool ok = m < valid;
        rt[h] = ok ? r0 + t0 + m / group : -1;
        rh[h] = kvh * group + m % group;
        np[h] = ok ? pos[rt[h]] + 1 : 1;
    }
    int end = 0;
    for (int i = 0; i < nt; i++) end = max(end, pos[r0 + t0 + i] + 1);

    // Queries as A fragments: a0 row g, a1 row g + 8 (dims 16s + 2c, +1),
    // a2 and a3 the same rows 8 dims on.
    unsigned qa[KS][4];
#pragma unroll
    for (int s = 0; s < KS; s++) {
#pragma unroll
        for (int i = 0; i < 4; i++) {
            int h = i % 2, d = 16 * s + 2 * c + 8 * (i / 2);
            float2 q = make_float2(0.f, 0.f);
            if (rt[h] >= 0) q = *(const float2 *)(qkv + (size_t)rt[h] * width + rh[h] * HD + d);
            __nv_bfloat162 b = __floats2bfloat162_rn(q.x, q.y);
            qa[s][i] = *(unsigned *)&b;
        }
    }

    // A chunk's keys and values into stage st (pieces placed by att_piece).
    auto load = [&](int c0, int st) {
        bf16 *kd = ks + st * 32 * HD, *vd = vs + st * 32 * HD;
        // With pages of a multiple of 32 positions (the engine's), the
        // chunk lies in one page.
        size_t first = page % 32 == 0 ? (size_t)pt[c0 / page] * pstride + (size_t)(c0 % page) * kvdim + off : 0;
#pragma unroll
        for (int i = 0; i < CH; i++) {
            int idx = lane + 32 * i, t = idx / CH, p = idx % CH, tp = c0 + t;
            size_t at = 0;
            bool in = tp < end;
            if (in)
                at = (page % 32 == 0 ? first + (size_t)t * kvdim : (size_t)pt[tp / page] * pstride + (size_t)(tp % page) * kvdim + off) + p * 8;
            int sw = t * HD + att_piece<HD>(t, p) * 8;
            cp_async16(kd + sw, kc + at, in ? 16 : 0);
            cp_async16(vd + sw, vc + at, in ? 16 : 0);
        }
        cp_async_commit();
    };

    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
    float o[NT][4];
#pragma unroll
    for (int j = 0; j < NT; j++) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.f;

    const int nch = (end + 31) / 32;
    load(0, 0);
    if (nch > 1) load(32, 1);
    else cp_async_commit();
    for (int ci = 0; ci < nch; ci++) {
        const int c0 = 32 * ci, st = ci % ATT_MMA_STAGES;
        cp_async_wait_n<1>();
        __syncwarp();
        const bf16 *kb = ks + st * 32 * HD, *vb = vs + st * 32 * HD;
        // S: n tile j holds keys 8j .. 8j + 7.
        float sc[4][4];
#pragma unroll
        for (int j = 0; j < 4; j++) {
            sc[j][0] = sc[j][1] = sc[j][2] = sc[j][3] = 0.f;
            int t = 8 * j + lane % 8;
#pragma unroll
            for (int q = 0; q < KS / 2; q++) {
                unsigned b[4];
                ldmatrix_x4(b, kb + t * HD + att_piece<HD>(t, 4 * q + lane / 8) * 8);
                mma_bf16(sc[j], qa[2 * q][0], qa[2 * q][1], qa[2 * q][2], qa[2 * q][3], b[0], b[1]);
                mma_bf16(sc[j], qa[2 * q + 1][0], qa[2 * q + 1][1], qa[2 * q + 1][2], qa[2 * q + 1][3], b[2], b[3]);
            }
        }
        // Online softmax, row by row (h: row g, then g + 8).
        float corr[2];
#pragma unroll
        for (int h = 0; h < 2; h++) {
            float mx = -INFINITY;
#pragma unroll
            for (int j = 0; j < 4; j++)
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    int key = c0 + 8 * j + 2 * c + e;
                    float s = key < np[h] ? __fmul_rn(sc[j][2 * h + e], scale2) : -INFINITY;
                    sc[j][2 * h + e] = s;
                    mx = fmaxf(mx, s);
                }
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
            float mn = fmaxf(m[h], mx);
            float sum = 0.f;
#pragma unroll
            for (int j = 0; j < 4; j++)
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    float s = sc[j][2 * h + e];
                    float p = s == -INFINITY ? 0.f : exp2f(__fsub_rn(s, mn));
                    sc[j][2 * h + e] = p;
                    sum = __fadd_rn(sum, p);
                }
            sum = __fadd_rn(sum, __shfl_xor_sync(0xffffffffu, sum, 1));
            sum = __fadd_rn(sum, __shfl_xor_sync(0xffffffffu, sum, 2));
            corr[h] = exp2f(__fsub_rn(m[h], mn)); // 0 on the first chunk, 1 in a chunk past the row
            l[h] = __fadd_rn(__fmul_rn(l[h], corr[h]), sum);
            m[h] = mn;
        }
#pragma unroll
        for (int j = 0; j < NT; j++) {
            o[j][0] = __fmul_rn(o[j][0], corr[0]), o[j][1] = __fmul_rn(o[j][1], corr[0]);
            o[j][2] = __fmul_rn(o[j][2], corr[1]), o[j][3] = __fmul_rn(o[j][3], corr[1]);
        }
        // O += P.V: k step kk takes positions 16kk .. 16kk + 15, whose
        // weights are S's n tiles 2kk and 2kk + 1.
#pragma unroll
        for (int kk = 0; kk < 2; kk++) {
            unsigned pa[4];
#pragma unroll
            for (int i = 0; i < 4; i++) {
                const float *sj = sc[2 * kk + i / 2];
                __nv_bfloat162 b = __floats2bfloat162_rn(sj[2 * (i % 2)], sj[2 * (i % 2) + 1]);
                pa[i] = *(unsigned *)&b;
            }
            int t = 16 * kk + 8 * ((lane / 8) % 2) + lane % 8;
#pragma unroll
            for (int jp = 0; jp < NT / 2; jp++) {
                unsigned b[4];
                ldmatrix_x4_trans(b, vb + t * HD + att_piece<HD>(t, 2 * jp + lane / 16) * 8);
                mma_bf16(o[2 * jp], pa[0], pa[1], pa[2], pa[3], b[0], b[1]);
                mma_bf16(o[2 * jp + 1], pa[0], pa[1], pa[2], pa[3], b[2], b[3]);
            }
        }
        __syncwarp(); // every lane is done with the stage before it refills
        if (ci + ATT_MMA_STAGES < nch) load(c0 + 32 * ATT_MMA_STAGES, st);
        else cp_async_commit();
    }
    cp_async_wait_n<0>();
#pragma unroll
    for (int h = 0; h < 2; h++) {
        if (rt[h] < 0) continue;
        bf16 *dst = out + (size_t)rt[h] * qdim + rh[h] * HD + 2 * c;
#pragma unroll
        for (int j = 0; j < NT; j++) {
            float x = __fadd_rn(__fdiv_rn(o[j][2 * h], l[h]), 0.f), y = __fadd_rn(__fdiv_rn(o[j][2 * h + 1], l[h]), 0.f);
            *(__nv_bfloat162 *)(dst + 8 * j) = __floats2bfloat162_rn(x, y);
        }
    }
}

#define ATT_MMA_ARGS                                                                                                   \
    bf16 *out, const float *qkv, const int *units, int pairs, int nunits, int mts, const int *pos, const int *ptoff,    \
        const int *pagetab, const bf16 *kc, const bf16 *vc, int heads, int kvheads, int page, long pstride, float scale2
extern "C" __global__ void __launch_bounds__(128) attention_mma32_bf16(ATT_MMA_ARGS) {
    attention_mma<32>(out, qkv, units, pairs, nunits, mts, pos, ptoff, pagetab, kc, vc, heads, kvheads, page, pstride, scale2);
}
extern "C" __global__ void __launch_bounds__(128) attention_mma64_bf16(ATT_MMA_ARGS) {
    attention_mma<64>(out, qkv, units, pairs, nunits, mts, pos, ptoff, pagetab, kc, vc, heads, kvheads, page, pstride, scale2);
}
extern "C" __global__ void __launch_bounds__(128) attention_mma128_bf16(ATT_MMA_ARGS) {
    attention_mma<128>(out, qkv, units, pairs, nunits, mts, pos, ptoff, pagetab, kc, vc, heads, kvheads, page, pstride, scale2);
}
