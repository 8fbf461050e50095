// row.cuh: the decode step of one sequence, whose every matrix product has
// one row, with the kernels around the products folded into them:
// gemm_bf16_row computes a product's ranges of K in one block and adds
// them as reduce.cuh does, adds onto the residual stream, normalises its
// input row itself, ends gate|up with SwiGLU and q|k|v with RoPE and the
// KV store. Every value has the bits of the kernels it stands in for (the
// split product, reduce, rmsnorm, swiglu, rope_store), so a sequence's
// outputs do not depend on whether it decodes alone or among others.
#pragma once
#include "common.cuh"
#include "mma.cuh"
#include "rmsnorm.cuh"
#include "swiglu.cuh"

// row_sum is column j of column group c of a block: its S ranges'
// partials (warps c*S .. c*S + S-1) added in order of the range, as
// reduce adds the planes.
__device__ __forceinline__ float row_sum(const float (*part)[8], int c, int S, int j) {
    float v = part[c * S][j];
    for (int r = 1; r < S; r++) v = __fadd_rn(v, part[c * S + r][j]);
    return v;
}

// rmsnorm_row_128 writes dst = RMSNorm(src) * w (hidden values, bf16) with
// the bits of rmsnorm.cuh's one block of 256 threads, computed by a block
// of 128: thread t keeps the shares of rmsnorm's threads t and t + 128 (the
// elements t + 256j and t + 128 + 256j, each in order of j), adds them as
// block_sum_d's first level does, then runs its later levels (the same
// pairs in the same tree: two in shared memory, five by shuffles within a
// warp). The first ROW_NORM_HELD elements of each share, and their weights,
// are read once, all at the start, and held in registers for the second
// pass (a hidden size up to 2,048 whole). scratch holds 128 doubles; dst
// may be shared memory.
#define ROW_NORM_HELD 8
__device__ __forceinline__ void rmsnorm_row_128(bf16 *dst, const float *src, const float *w, int hidden, float eps,
                                                double *scratch) {
    int t = threadIdx.x;
    float xa[ROW_NORM_HELD], xb[ROW_NORM_HELD], wa[ROW_NORM_HELD], wb[ROW_NORM_HELD];
#pragma unroll
    for (int j = 0; j < ROW_NORM_HELD; j++) {
        int i = t + 256 * j;
        xa[j] = i < hidden ? src[i] : 0.f, wa[j] = i < hidden ? w[i] : 0.f;
        xb[j] = i + 128 < hidden ? src[i + 128] : 0.f, wb[j] = i + 128 < hidden ? w[i + 128] : 0.f;
    }
    double sa = 0, sb = 0;
#pragma unroll
    for (int j = 0; j < ROW_NORM_HELD; j++) {
        int i = t + 256 * j;
        if (i < hidden) sa = sum_sq(sa, xa[j]);
        if (i + 128 < hidden) sb = sum_sq(sb, xb[j]);
    }
    for (int i = t + 256 * ROW_NORM_HELD; i < hidden; i += 256) {
        sa = sum_sq(sa, src[i]);
        if (i + 128 < hidden) sb = sum_sq(sb, src[i + 128]);
    }
    double v = sa + sb;
    scratch[t] = v;
    __syncthreads();
    if (t < 64) scratch[t] = v = v + scratch[t + 64];
    __syncthreads();
    if (t < 32) {
        v = v + scratch[t + 32];
#pragma unroll
        for (int s = 16; s > 0; s >>= 1) v = v + __shfl_down_sync(0xffffffffu, v, s);
    }
    __syncthreads(); // every read of scratch above is done
    if (t == 0) scratch[0] = v;
    __syncthreads();
    double ss = scratch[0];
    float ms = (float)(ss / (double)hidden);
    float inv = (float)(1.0 / sqrt((double)__fadd_rn(ms, eps)));
#pragma unroll
    for (int j = 0; j < ROW_NORM_HELD; j++) {
        int i = t + 256 * j;
        if (i < hidden) dst[i] = __float2bfloat16_rn(__fmul_rn(wa[j], __fmul_rn(xa[j], inv)));
        if (i + 128 < hidden) dst[i + 128] = __float2bfloat16_rn(__fmul_rn(wb[j], __fmul_rn(xb[j], inv)));
    }
    for (int i = t + 256 * ROW_NORM_HELD; i < hidden; i += 128) dst[i] = __float2bfloat16_rn(__fmul_rn(w[i], __fmul_rn(src[i], inv)));
}

#define ROW_WARPS 4
#define ROW_KT 256
#define ROW_DEPTH 3
#define ROW_LD (ROW_KT + 8) // padded rows: ldmatrix's 8 rows meet every bank once
#define ROW_STAGE (8 * ROW_LD)
// A block's shared memory for a product over K is the warps' rings of
// weights (ROW_WARPS x ROW_DEPTH x ROW_STAGE bf16), the input row and the
// norm's scratch (engine/cuda's rowSmem). K tiles of 256 (512 bytes of a
// row of W a copy) beat tiles of 64 eight deep by 5-10% on the H200, and
// three deep leaves room for four blocks of K = 2,048 a multiprocessor
// (docs/gpu.md).

// gemm_bf16_row's flags.
#define ROW_ACC 1    // add onto Y (the residual stream)
#define ROW_NORM 2   // the input row is RMSNorm(X) * norm, not A
#define ROW_SWIGLU 4 // gate|up (interleaved, S = 1): write act = SwiGLU, not Y
#define ROW_ROPE 8   // q|k|v (S = 2): RoPE and the KV store of rope.cuh follow

// row_rope is what ROW_ROPE needs of rope_store's parameters, for the one
// row: its position, page table and the layer's caches.
struct row_rope {
    const int *pos, *ptoff, *pagetab;
    const float *cosT, *sinT;
    bf16 *kc, *vc;
    int heads, kvheads, hd, page;
    long pstride;
};

// gemm_bf16_row: y = a . W^T for one row a of K (N columns), K split into S
// ranges (1, 2 or 4; K / S a multiple of ROW_KT). A block is four warps of 8
// columns by one range each (32 / S columns a block); each warp streams its
// columns' weights over its range through its own ring of cp.async stages
// (ROW_DEPTH deep, issued before the input row is ready) and runs the
// tensor-core steps of every other product kernel over its range from zero
// (ceil(Kz/16) mma.m16n8k16 steps in order of k, the row in the first
// fragment row, zeros below). Then the block adds each column's S partials
// in order of the range and, with ROW_ACC, onto Y, as reduce does; with
// ROW_SWIGLU (S = 1, the rows of W interleaved in groups of 8: a block's
// warps hold gate, up, gate, up) it writes act = silu(gate) * up in bf16 as
// the products' SwiGLU epilogue does. The input row is A (bf16), or with
// ROW_NORM RMSNorm(X) * norm (rmsnorm_row_128: the rmsnorm kernel's bits),
// held whole in shared memory. With ROW_ROPE (q|k|v, S = 2) the block's
// two column groups are a head's two halves' same 8 (so that RoPE's pairs
// meet), and it ends as rope_store does: queries and keys rotated into
// Y, keys and values stored in the cache in bf16.
extern "C" __global__ void __launch_bounds__(ROW_WARPS * 32)
    gemm_bf16_row(float *Y, bf16 *act, const bf16 *A, const float *X, const float *norm, const bf16 *W, int N, int K, int S,
                  int flags, float eps, row_rope rope) {
    extern __shared__ __align__(16) unsigned char row_smem[];
    // Launched early (the Hopper module): the next kernel may start now,
    // and stream its first weights where this one leaves room (it waits
    // for this one before it reads what this one writes). Releasing it
    // only once the block had all its weights measured slower.
    early_release();
    bf16 *ring0 = (bf16 *)row_smem;
    bf16 *arow = ring0 + ROW_WARPS * ROW_DEPTH * ROW_STAGE;
    double *scratch = (double *)(arow + K);
    __shared__ float part[ROW_WARPS][8];
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane >> 2, tq = lane & 3;
    int cols = 32 / S;                           // the block's columns
    int z = warp % S;                            // the warp's range
    int n0 = blockIdx.x * cols + (warp / S) * 8; // its first column
    // ROW_ROPE: a block's two groups of 8 are the same 8 of a head's two
    // halves, the pairs RoPE rotates together.
    int gh = rope.hd / 16, half = rope.hd / 2;
    if (flags & ROW_ROPE) n0 = (blockIdx.x / gh) * rope.hd + (warp / S) * half + (blockIdx.x % gh) * 8;
    int Kz = K / S, kt = Kz / ROW_KT;
    bool live = n0 < N;
    bf16 *ring = ring0 + warp * ROW_DEPTH * ROW_STAGE;
    const bf16 *w = W + (size_t)n0 * K + (size_t)z * Kz;
    auto load = [&](int s, int k0) {
        bf16 *ws = ring + s * ROW_STAGE;
#pragma unroll
        for (int c = lane; c < 8 * ROW_KT / 8; c += 32) {
            int r = c / (ROW_KT / 8), col = (c % (ROW_KT / 8)) * 8;
            bool in = n0 + r < N;
            cp_async16(ws + r * ROW_LD + col, in ? w + (size_t)r * K + k0 + col : W, in ? 16 : 0);
        }
    };
#pragma unroll
    for (int s = 0; s < ROW_DEPTH - 1; s++) {
        if (live && s < kt) load(s, s * ROW_KT);
        cp_async_commit();
    }
    // ROW_ROPE: the epilogue's position, cache slot, cos and sin, read now
    // so that their trips to memory overlap the product.
    size_t rslot = 0;
    float rc = 0.f, rs = 0.f;
    if ((flags & ROW_ROPE) && threadIdx.x < 8) {
        int j = (blockIdx.x % gh) * 8 + threadIdx.x, rp = rope.pos[0];
        rslot = (size_t)rope.pagetab[rope.ptoff[0] + rp / rope.page] * rope.pstride + (size_t)(rp % rope.page) * (rope.kvheads * rope.hd);
        rc = rope.cosT[(size_t)rp * half + j], rs = rope.sinT[(size_t)rp * half + j];
    }
    // Launched early (the Hopper module), the block has its first weights
    // on the way; what the kernels before it write it reads only now.
    early_wait();
    if (flags & ROW_NORM) {
        rmsnorm_row_128(arow, X, norm, K, eps, scratch);
    } else {
        for (int i = threadIdx.x * 8; i < K; i += ROW_WARPS * 32 * 8) *(uint4 *)&arow[i] = *(const uint4 *)&A[i];
    }
    __syncthreads();
    float acc[4] = {0.f, 0.f, 0.f, 0.f};
    const bf16 *ar0 = arow + (size_t)z * Kz + tq * 2;
    for (int t = 0; live && t < kt; t++) {
        int nt = t + ROW_DEPTH - 1;
        if (nt < kt) load(nt % ROW_DEPTH, nt * ROW_KT);
        cp_async_commit();
        cp_async_wait_n<ROW_DEPTH - 1>();
        __syncwarp();
        const bf16 *ws = ring + (t % ROW_DEPTH) * ROW_STAGE;
#pragma unroll
        for (int kk = 0; kk < ROW_KT; kk += 32) {
            unsigned b[4];
            ldmatrix_x4(b, ws + (lane % 8) * ROW_LD + kk + (lane / 8) * 8);
#pragma unroll
            for (int h = 0; h < 2; h++) {
                const bf16 *ar = ar0 + t * ROW_KT + kk + 16 * h;
                unsigned a0 = g == 0 ? *(const unsigned *)ar : 0u, a2 = g == 0 ? *(const unsigned *)(ar + 8) : 0u;
                mma_bf16(acc, a0, 0u, a2, 0u, b[2 * h], b[2 * h + 1]);
            }
        }
        __syncwarp(); // every lane is done with the stage the next copy refills
    }
    if (g == 0) {
        part[warp][tq * 2] = acc[0];
        part[warp][tq * 2 + 1] = acc[1];
    }
    __syncthreads();
    int t = threadIdx.x;
    if (flags & ROW_SWIGLU) {
        // Gate group p (8 columns at blockIdx.x * 32 + 16p) is warp 2p's,
        // its ups warp 2p + 1's.
        int p = t / 8, j = t % 8, col = blockIdx.x * 32 + 16 * p;
        if (t < 16 && col < N) act[(col / 16) * GU_GROUP + j] = __float2bfloat16_rn(silu_mul(part[2 * p][j], part[2 * p + 1][j]));
        return;
    }
    if (flags & ROW_ROPE) {
        // rope_store's operations on the pair (j, j + half) of head h, for
        // the row at position p: queries and keys rotated, keys and values
        // stored in the cache, rounded to bf16.
        if (t >= 8) return;
        float a = row_sum(part, 0, S, t), b = row_sum(part, 1, S, t);
        int h = blockIdx.x / gh, j = (blockIdx.x % gh) * 8 + t;
        if (h < rope.heads + rope.kvheads) {
            float a2 = __fsub_rn(__fmul_rn(a, rc), __fmul_rn(b, rs));
            b = __fadd_rn(__fmul_rn(b, rc), __fmul_rn(a, rs));
            a = a2;
        }
        if (h >= rope.heads) {
            bool key = h < rope.heads + rope.kvheads;
            bf16 *cache = (key ? rope.kc : rope.vc) + rslot + (size_t)(h - rope.heads - (key ? 0 : rope.kvheads)) * rope.hd + j;
            cache[0] = __float2bfloat16_rn(a);
            cache[half] = __float2bfloat16_rn(b);
        }
        Y[h * rope.hd + j] = a;
        Y[h * rope.hd + j + half] = b;
        return;
    }
    int col = blockIdx.x * cols + t;
    if (t < cols && col < N) {
        float v = row_sum(part, t / 8, S, t % 8);
        if (flags & ROW_ACC) v = __fadd_rn(Y[col], v);
        Y[col] = v;
    }
}

