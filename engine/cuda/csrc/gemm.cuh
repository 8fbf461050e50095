// gemm.cuh: Y[M][N] = A[M][K] . W[N][K]^T (or Y += that), the matrix
// products of the forward step, with float32 accumulation.
//
// Batch invariance: each output element is accumulated over k in one fixed
// order (tile after tile of K, and within a tile the same instructions),
// so its bits depend on its row of A and its row of W alone, never on M or
// on the tile that computes it. Rows past M, columns past N and k past K
// are zero-filled in shared memory; a zero product adds nothing.
//
// Split-K (the bf16 kernels): a launch of gridDim.z = S > 1 splits K into S
// equal ranges, block z covering k in [z*K/S, (z+1)*K/S) from a zero sum,
// and writes its partial to plane z of Y (Y + z*M*N, never accumulated);
// reduce.cuh adds the planes in order of z. The caller picks S from N and K
// alone, the same for every M, and only where K/S is a multiple of every
// kernel's K tile (so K/S is a multiple of 8, and each range starts 16-byte
// aligned): then every kernel walks the same k steps within a range, and
// an element's bits still depend on its rows of A and W alone. With S = 1
// the range is all of K and the kernels write Y as they always did.
//
// The last parameter, accumulate, picks the epilogue: 0 writes Y, 1 adds
// to it (one more rounding), and GEMM_SWIGLU (below) ends the gate|up
// product with SwiGLU where the kernel can.
#pragma once
#include "common.cuh"
#include "gemm_common.cuh"

#define GB_M 64
#define GB_N 64
#define GB_K 32
#define GB_LD (GB_K + 8) // padded row: 80 bytes, conflict-free fragment reads


// gemm_bf16_load stages the GB_M x GB_K tile of A at (m0, k0) and the GB_N x
// GB_K tile of W at (n0, k0) in shared memory, 16 bytes a copy when K is a
// multiple of 8, else element by element. A and W point at the split's
// first k (split_k); rows are K apart, and k runs up to the split's length
// Kz, past which the tile is zero.
__device__ __forceinline__ void gemm_bf16_load(bf16 (*As)[GB_LD], bf16 (*Ws)[GB_LD], const bf16 *A, const bf16 *W,
                                               int M, int N, int K, int Kz, int m0, int n0, int k0) {
    for (int c = threadIdx.x; c < GB_M * GB_K / 8; c += blockDim.x) {
        int r = c / (GB_K / 8), col = (c % (GB_K / 8)) * 8;
        int gk = k0 + col;
        if (K % 8 == 0) {
            int gm = m0 + r, gn = n0 + r;
            bool ina = gm < M && gk < Kz, inw = gn < N && gk < Kz;
            cp_async16(&As[r][col], ina ? A + (size_t)gm * K + gk : A, ina ? 16 : 0);
            cp_async16(&Ws[r][col], inw ? W + (size_t)gn * K + gk : W, inw ? 16 : 0);
        } else {
            for (int j = 0; j < 8; j++) {
                int gm = m0 + r, gn = n0 + r;
                As[r][col + j] = gm < M && gk + j < Kz ? A[(size_t)gm * K + gk + j] : __float2bfloat16_rn(0.f);
                Ws[r][col + j] = gn < N && gk + j < Kz ? W[(size_t)gn * K + gk + j] : __float2bfloat16_rn(0.f);
            }
        }
    }
}

// gemm_bf16 computes a GB_M x GB_N tile of Y per block of 4 warps (each a
// 32 x 32 quarter: 2 x 4 tensor-core tiles of 16 x 8), K in steps of GB_K
// with the next tile's copy in flight. Eight blocks a multiprocessor hold
// it to 64 registers, as before the SwiGLU epilogue (which alone would
// take it to 67).
extern "C" __global__ void __launch_bounds__(128, 8) gemm_bf16(float *Y, const bf16 *A, const bf16 *W, int M, int N, int K, int accumulate) {
    __shared__ __align__(16) bf16 As[2][GB_M][GB_LD];
    __shared__ __align__(16) bf16 Ws[2][GB_N][GB_LD];
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    int g = lane >> 2, tq = lane & 3;
    int m0 = blockIdx.y * GB_M, n0 = blockIdx.x * GB_N;
    int wm = (warp / 2) * 32, wn = (warp % 2) * 32;
    float acc[2][4][4];
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
        for (int j = 0; j < 4; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) acc[i][j][e] = 0.f;

    int Kz = split_k(A, W, K);
    int kt = (Kz + GB_K - 1) / GB_K;
    gemm_bf16_load(As[0], Ws[0], A, W, M, N, K, Kz, m0, n0, 0);
    cp_async_commit();
    for (int t = 0; t < kt; t++) {
        if (t + 1 < kt) gemm_bf16_load(As[(t + 1) & 1], Ws[(t + 1) & 1], A, W, M, N, K, Kz, m0, n0, (t + 1) * GB_K);
        cp_async_commit();
        cp_async_wait_n<1>();
        __syncthreads();
        bf16(*as)[GB_LD] = As[t & 1];
        bf16(*ws)[GB_LD] = Ws[t & 1];
#pragma unroll
        for (int kk = 0; kk < GB_K; kk += 16) {
            if (t * GB_K + kk >= Kz) break; // every kernel runs ceil(Kz/16) steps
            unsigned a[2][4], b[4][2];
#pragma unroll
            for (int i = 0; i < 2; i++) {
                int r = wm + i * 16 + g;
                a[i][0] = *(const unsigned *)&as[r][kk + tq * 2];
                a[i][1] = *(const unsigned *)&as[r + 8][kk + tq * 2];
                a[i][2] = *(const unsigned *)&as[r][kk + tq * 2 + 8];
                a[i][3] = *(const unsigned *)&as[r + 8][kk + tq * 2 + 8];
            }
#pragma unroll
            for (int j = 0; j < 4; j++) {
                int n = wn + j * 8 + g;
                b[j][0] = *(const unsigned *)&ws[n][kk + tq * 2];
                b[j][1] = *(const unsigned *)&ws[n][kk + tq * 2 + 8];
            }
#pragma unroll
            for (int i = 0; i < 2; i++)
#pragma unroll
                for (int j = 0; j < 4; j++) mma_bf16(acc[i][j], a[i][0], a[i][1], a[i][2], a[i][3], b[j][0], b[j][1]);
        }
        __syncthreads();
    }
    if (accumulate == GEMM_SWIGLU) {
        swiglu_epilogue<2, 4>(Y, acc, M, N, m0 + wm, n0 + wn, g, tq);
        return;
    }
    Y = split_out(Y, M, N, accumulate);
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
        for (int j = 0; j < 4; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int row = m0 + wm + i * 16 + g + (e >= 2 ? 8 : 0);
                int col = n0 + wn + j * 8 + tq * 2 + (e & 1);
                if (row < M && col < N) {
                    float *y = &Y[(size_t)row * N + col];
                    *y = accumulate ? __fadd_rn(*y, acc[i][j][e]) : acc[i][j][e];
                }
            }
}

#define GF_T 64
#define GF_K 16

// gemm_f32 is the float32 product on the CUDA cores: a 64 x 64 tile per
// block of 256 threads, each thread 4 x 4 outputs, every output one chain
// of fused multiply-adds in order of k.
extern "C" __global__ void __launch_bounds__(256) gemm_f32(float *Y, const float *A, const float *W, int M, int N, int K, int accumulate) {
    __shared__ float As[GF_K][GF_T + 4];
    __shared__ float Ws[GF_K][GF_T + 4];
    int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
    int m0 = blockIdx.y * GF_T, n0 = blockIdx.x * GF_T;
    float acc[4][4] = {};
    for (int k0 = 0; k0 < K; k0 += GF_K) {
        for (int e = threadIdx.x; e < GF_T * GF_K; e += blockDim.x) {
            int r = e / GF_K, c = e % GF_K;
            int gk = k0 + c, gm = m0 + r, gn = n0 + r;
            As[c][r] = gm < M && gk < K ? A[(size_t)gm * K + gk] : 0.f;
            Ws[c][r] = gn < N && gk < K ? W[(size_t)gn * K + gk] : 0.f;
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < GF_K; kk++) {
            float a[4], w[4];
#pragma unroll
            for (int i = 0; i < 4; i++) a[i] = As[kk][ty * 4 + i], w[i] = Ws[kk][tx * 4 + i];
#pragma unroll
            for (int i = 0; i < 4; i++)
#pragma unroll
                for (int j = 0; j < 4; j++) acc[i][j] = __fmaf_rn(a[i], w[j], acc[i][j]);
        }
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) {
            int row = m0 + ty * 4 + i, col = n0 + tx * 4 + j;
            if (row < M && col < N) {
                float *y = &Y[(size_t)row * N + col];
                *y = accumulate ? __fadd_rn(*y, acc[i][j]) : acc[i][j];
            }
        }
}

// The large-tile product for many rows: a 128 x 128 tile per block of 8
// warps (each a 64 x 32 eighth), fragments read with ldmatrix, three K
// tiles in flight, dynamic shared memory (GB2_SMEM bytes). It issues the
// same tensor-core instructions over the same K steps in the same order as
// gemm_bf16, so every output element has the same bits in either kernel.
#define GB2_M 128
#define GB2_N 128
#define GB2_STAGES 3
#define GB2_SMEM (GB2_STAGES * (GB2_M + GB2_N) * GB_LD * 2)


__device__ __forceinline__ void gemm_bf16_load2(bf16 (*As)[GB_LD], bf16 (*Ws)[GB_LD], const bf16 *A, const bf16 *W,
                                                int M, int N, int K, int Kz, int m0, int n0, int k0) {
    for (int c = threadIdx.x; c < GB2_M * GB_K / 8; c += blockDim.x) {
        int r = c / (GB_K / 8), col = (c % (GB_K / 8)) * 8;
        int gk = k0 + col, gm = m0 + r, gn = n0 + r;
        if (K % 8 == 0) {
            bool ina = gm < M && gk < Kz, inw = gn < N && gk < Kz;
            cp_async16(&As[r][col], ina ? A + (size_t)gm * K + gk : A, ina ? 16 : 0);
            cp_async16(&Ws[r][col], inw ? W + (size_t)gn * K + gk : W, inw ? 16 : 0);
        } else {
            for (int j = 0; j < 8; j++) {
                As[r][col + j] = gm < M && gk + j < Kz ? A[(size_t)gm * K + gk + j] : __float2bfloat16_rn(0.f);
                Ws[r][col + j] = gn < N && gk + j < Kz ? W[(size_t)gn * K + gk + j] : __float2bfloat16_rn(0.f);
            }
        }
    }
}

extern "C" __global__ void __launch_bounds__(256) gemm_bf16_128(float *Y, const bf16 *A, const bf16 *W, int M, int N, int K, int accumulate) {
    extern __shared__ __align__(16) unsigned char smem[];
    bf16(*As)[GB2_M][GB_LD] = (bf16(*)[GB2_M][GB_LD])smem;
    bf16(*Ws)[GB2_N][GB_LD] = (bf16(*)[GB2_N][GB_LD])(smem + GB2_STAGES * GB2_M * GB_LD * 2);
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    int g = lane >> 2, tq = lane & 3;
    int m0 = blockIdx.y * GB2_M, n0 = blockIdx.x * GB2_N;
    int wm = (warp / 4) * 64, wn = (warp % 4) * 32;
    float acc[4][4][4];
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) acc[i][j][e] = 0.f;
    int Kz = split_k(A, W, K);
    int kt = (Kz + GB_K - 1) / GB_K;
#pragma unroll
    for (int s = 0; s < GB2_STAGES - 1; s++) {
        if (s < kt) gemm_bf16_load2(As[s], Ws[s], A, W, M, N, K, Kz, m0, n0, s * GB_K);
        cp_async_commit();
    }
    for (int t = 0; t < kt; t++) {
        int nt = t + GB2_STAGES - 1;
        if (nt < kt) gemm_bf16_load2(As[nt % GB2_STAGES], Ws[nt % GB2_STAGES], A, W, M, N, K, Kz, m0, n0, nt * GB_K);
        cp_async_commit();
        cp_async_wait_n<GB2_STAGES - 2>();
        __syncthreads();
        bf16(*as)[GB_LD] = As[t % GB2_STAGES];
        bf16(*ws)[GB_LD] = Ws[t % GB2_STAGES];
#pragma unroll
        for (int kk = 0; kk < GB_K; kk += 16) {
            if (t * GB_K + kk >= Kz) break;
            unsigned a[4][4], b[4][2];
#pragma unroll
            for (int i = 0; i < 4; i++) ldmatrix_x4(a[i], &as[wm + i * 16 + (lane % 16)][kk + (lane / 16) * 8]);
#pragma unroll
            for (int j = 0; j < 4; j += 2) {
                unsigned q[4];
                ldmatrix_x4(q, &ws[wn + j * 8 + (lane / 16) * 8 + (lane % 8)][kk + ((lane / 8) % 2) * 8]);
                b[j][0] = q[0], b[j][1] = q[1], b[j + 1][0] = q[2], b[j + 1][1] = q[3];
            }
#pragma unroll
            for (int i = 0; i < 4; i++)
#pragma unroll
                for (int j = 0; j < 4; j++) mma_bf16(acc[i][j], a[i][0], a[i][1], a[i][2], a[i][3], b[j][0], b[j][1]);
        }
        __syncthreads();
    }
    if (accumulate == GEMM_SWIGLU) {
        swiglu_epilogue<4, 4>(Y, acc, M, N, m0 + wm, n0 + wn, g, tq);
        return;
    }
    Y = split_out(Y, M, N, accumulate);
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int row = m0 + wm + i * 16 + g + (e >= 2 ? 8 : 0);
                int col = n0 + wn + j * 8 + tq * 2 + (e & 1);
                if (row < M && col < N) {
                    float *y = &Y[(size_t)row * N + col];
                    *y = accumulate ? __fadd_rn(*y, acc[i][j][e]) : acc[i][j][e];
                }
            }
}

// The largest tile, for long prefills and wide products: 128 x 256 per
// block of 8 warps, each a 64 x 64 eighth (4 x 8 tensor-core tiles, 128
// accumulators a thread), in the manner of CUTLASS's sm80 multistage
// kernels. Two instantiations differ in the K tile and the depth of the
// pipeline alone: gemm_bf16_128x256 takes K tiles of 64 with 3 in flight
// (144 KiB of shared memory, more than Ampere's and Ada's consumer GPUs
// allow a block), gemm_bf16_128x256_k32 tiles of 32 with 4 in flight (96
// KiB, any GPU the PTX targets). Per output element they issue the same
// tensor-core instruction over the same k16 steps in the same order as
// the other kernels (the step count ceil(Kz/16) included): the same bits.
// They copy 16 bytes at a time and take K a multiple of 8 only (gemm.go
// never launches them otherwise).
//
// Shared memory holds each stage's tiles as unpadded rows of the K tile;
// the 16-byte chunks of a row are permuted by an XOR with the row (gw_off)
// so that both the copies and the ldmatrix reads of eight rows at one
// chunk touch every bank once. A stage's copies are spread over the k16
// steps of the tile before, and the fragments of the next k16 step load
// while the tensor cores work on this one.
#define GW_M 128
#define GW_N 256
#define GW_THREADS 256
// GW_GROUP is how many block rows of the output consecutive blocks walk
// down before moving right, so that the blocks running at once share rows
// of A and of W in L2 (the order of blocks alone: no element's sum
// changes).
#define GW_GROUP 8
#define GW_SMEM(bk, stages) ((stages) * (GW_M + GW_N) * (bk) * 2)



// gw_off is where 8-element chunk c of row r of a BK-wide tile starts, in
// bytes from the tile. A row is CH = BK/8 chunks (8 or 4: 128 bytes or
// 64); the chunk is XORed with the row's index among the rows that share
// its place in a 128-byte line of banks (r, or r/2 for 64-byte rows), so
// that any eight consecutive rows from a multiple of 8 at one logical
// chunk fall on eight different 16-byte groups of banks. Rows r and r + 8
// are permuted alike. Because a row's bytes start at a multiple of its
// length and the chunk's bit 0 is the only bit an odd c adds to 2*kk,
// gw_off(r, 2*kk + h) = gw_off(r, h) ^ (kk * 32): gw_frags steps k so.
template <int BK> __device__ __forceinline__ unsigned gw_off(int r, int c) {
    constexpr int CH = BK / 8, RPL = 8 / CH;
    return (unsigned)(r * BK + ((c ^ ((r / RPL) & (CH - 1))) << 3)) * 2;
}

// gw_rows is a thread's share of a stage's copies: 16 bytes at chunk c of
// rows r0 + p * ROWS (ROWS = GW_THREADS / CH) of the block's tiles of A
// (passes p < QA, copy q = p) and of W (copy q = QA + p), where r0 =
// threadIdx.x / CH and c = threadIdx.x % CH. a and w point at that chunk
// of row r0 of A's and W's tiles at the split's first k; dst is its offset
// in a stage's tile (rows r0 + p * ROWS at dst + p * ROWS * BK * 2, ROWS
// being a multiple of 8); bit q of in says whether copy q's row is inside
// M (or N). a0 and w0 are addresses inside A and W for the copies of zero
// bytes.
struct gw_rows {
    const bf16 *a, *w, *a0, *w0;
    unsigned in, dst, kc;
};

template <int BK>
__device__ __forceinline__ gw_rows gw_rows_of(const bf16 *A, const bf16 *W, const bf16 *A0, const bf16 *W0, int M, int N,
                                              int K, int m0, int n0) {
    constexpr int CH = BK / 8, ROWS = GW_THREADS / CH, QA = GW_M / ROWS, Q = (GW_M + GW_N) / ROWS;
    gw_rows s;
    int c = threadIdx.x % CH, r0 = threadIdx.x / CH;
    s.a = A + (size_t)(m0 + r0) * K + c * 8;
    s.w = W + (size_t)(n0 + r0) * K + c * 8;
    s.a0 = A0, s.w0 = W0;
    s.dst = gw_off<BK>(r0, c);
    s.kc = c * 8;
    s.in = 0;
#pragma unroll
    for (int q = 0; q < Q; q++) {
        bool isA = q < QA;
        int r = r0 + (isA ? q : q - QA) * ROWS;
        if ((isA ? m0 : n0) + r < (isA ? M : N)) s.in |= 1u << q;
    }
    return s;
}

// gw_load stages part of the K tile at k0 (from the split's first k) into
// the stage whose tiles of A and W start at shared addresses as and ws:
// copies q in [part*per, (part+1)*per), or all of them when part is -1.
// Past M, N or the split's Kz a copy is of zero bytes (zero-filled), and
// so is every copy of a tile past the split's last (live false): those
// fill a stage no step reads, and cost the loop no branch.
template <int BK>
__device__ __forceinline__ void gw_load(unsigned as, unsigned ws, const gw_rows &s, int K, int Kz, int k0, bool live,
                                        int part, int per) {
    constexpr int CH = BK / 8, ROWS = GW_THREADS / CH, QA = GW_M / ROWS, Q = (GW_M + GW_N) / ROWS;
    bool kin = live && k0 + (int)s.kc < Kz;
#pragma unroll
    for (int q = 0; q < Q; q++) {
        if (part >= 0 && q / per != part) continue;
        bool isA = q < QA;
        int p = isA ? q : q - QA;
        unsigned dst = (isA ? as : ws) + s.dst + p * ROWS * BK * 2;
        const bf16 *src = (isA ? s.a : s.w) + (p * ROWS * K + k0);
        bool in = ((s.in >> q) & 1) && kin;
        cp_async16_s(dst, in ? src : (isA ? s.a0 : s.w0), in ? 16 : 0);
    }
}

// gw_frags reads a warp's fragments for k16 step kk of a stage: a[i] the
// m16 x k16 tile i of A (rows wm + 16i...), b[j] the k16 x n8 tile j of W
// (rows wn + 8j...), in mma.m16n8k16's register layout. ldmatrix.x4 lanes
// 0-7, 8-15, 16-23 and 24-31 address the rows of its four 8 x 8 matrices:
// for A rows 0-7 then 8-15 of the tile at k 0-7, then both at k 8-15
// (a0..a3); for W tile j at k 0-7 and 8-15, then tile j+1 (b[j][0..1],
// b[j+1][0..1]). fa and fb are the lane's offsets at kk = 0, i = j = 0
// within a stage's tiles of A and W, which start at as and ws.
template <int BK>
__device__ __forceinline__ void gw_frags(unsigned (*a)[4], unsigned (*b)[2], unsigned as, unsigned ws, unsigned fa,
                                         unsigned fb, int kk) {
#pragma unroll
    for (int i = 0; i < 4; i++) ldmatrix_x4_s(a[i], as + ((fa ^ (kk * 32)) + i * 16 * BK * 2));
#pragma unroll
    for (int j = 0; j < 8; j += 2) {
        unsigned q[4];
        ldmatrix_x4_s(q, ws + ((fb ^ (kk * 32)) + j * 8 * BK * 2));
        b[j][0] = q[0], b[j][1] = q[1], b[j + 1][0] = q[2], b[j + 1][1] = q[3];
    }
}

template <int BK, int STAGES>
__device__ __forceinline__ void gemm_bf16_128x256_body(float *Y, const bf16 *A, const bf16 *W, int M, int N, int K,
                                                       int accumulate) {
    constexpr int KS = BK / 16;                               // k16 steps a tile: 4 or 2
    constexpr int Q = (GW_M + GW_N) * (BK / 8) / GW_THREADS; // copies a thread a tile: 12 or 6
    constexpr int PER = Q / (KS - 1);                         // spread over the first KS-1 steps
    constexpr unsigned SA = GW_M * BK * 2, SW = GW_N * BK * 2; // bytes of a stage's tiles
    static_assert(KS % 2 == 0 && Q % (KS - 1) == 0 && STAGES >= 3, "gemm_bf16_128x256: tile shape");
    extern __shared__ __align__(128) unsigned char gw_smem[];
    unsigned As = (unsigned)__cvta_generic_to_shared(gw_smem); // [STAGES][GW_M rows of BK]
    unsigned Ws = As + STAGES * SA;                          // [STAGES][GW_N rows of BK]
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    int g = lane >> 2, tq = lane & 3;

    // Blocks in launch order walk down GW_GROUP block rows, then right.
    int tn = gridDim.x, tm = gridDim.y;
    int id = blockIdx.y * tn + blockIdx.x, span = GW_GROUP * tn;
    int first = id / span * GW_GROUP, rows = min(tm - first, GW_GROUP), local = id % span;
    int m0 = (first + local % rows) * GW_M, n0 = local / rows * GW_N;
    int wm = (warp / 4) * 64, wn = (warp % 4) * 64;
    unsigned fa = gw_off<BK>(wm + lane % 16, lane / 16);
    unsigned fb = gw_off<BK>(wn + (lane / 16) * 8 + lane % 8, (lane / 8) % 2);

    float acc[4][8][4];
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 8; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) acc[i][j][e] = 0.f;

    const bf16 *A0 = A, *W0 = W;
    int Kz = split_k(A, W, K);
    int kt = (Kz + BK - 1) / BK;
    gw_rows src = gw_rows_of<BK>(A, W, A0, W0, M, N, K, m0, n0);
#pragma unroll
    for (int s = 0; s < STAGES - 1; s++) {
        gw_load<BK>(As + s * SA, Ws + s * SW, src, K, Kz, s * BK, s < kt, -1, PER);
        cp_async_commit();
    }
    cp_async_wait_n<STAGES - 2>();
    __syncthreads();

    unsigned a[2][4][4], b[2][8][2];
    gw_frags<BK>(a[0], b[0], As, Ws, fa, fb, 0);
    // Tile t is read from stage rd while tile t + STAGES - 1 is copied into
    // stage wr, the one tile t - 1 was read from: every warp finished its
    // reads of it before the barrier that ended tile t - 1. Only the last
    // tile may hold fewer than KS steps; it alone checks (last).
    int rd = 0, wr = STAGES - 1;
    auto tile = [&](int t, bool last) {
        unsigned as = As + rd * SA, ws = Ws + rd * SW;
        int nt = t + STAGES - 1;
#pragma unroll
        for (int kk = 0; kk < KS; kk++) {
            if (kk == KS - 1) {
                // Tile t + 1 must be in shared memory: all but the
                // STAGES - 2 newest groups (tiles t + 2...) have landed.
                cp_async_wait_n<STAGES - 2>();
                __syncthreads();
                rd = rd + 1 == STAGES ? 0 : rd + 1;
                wr = wr + 1 == STAGES ? 0 : wr + 1;
                gw_frags<BK>(a[(kk + 1) % 2], b[(kk + 1) % 2], As + rd * SA, Ws + rd * SW, fa, fb, 0);
            } else {
                gw_frags<BK>(a[(kk + 1) % 2], b[(kk + 1) % 2], as, ws, fa, fb, kk + 1);
                gw_load<BK>(As + wr * SA, Ws + wr * SW, src, K, Kz, nt * BK, nt < kt, kk, PER);
                if (kk == KS - 2) cp_async_commit();
            }
            if (!last || t * BK + kk * 16 < Kz) { // every kernel runs ceil(Kz/16) steps
#pragma unroll
                for (int i = 0; i < 4; i++)
#pragma unroll
                    for (int j = 0; j < 8; j++)
                        mma_bf16(acc[i][j], a[kk % 2][i][0], a[kk % 2][i][1], a[kk % 2][i][2], a[kk % 2][i][3], b[kk % 2][j][0],
                                 b[kk % 2][j][1]);
            }
        }
    };
    for (int t = 0; t + 1 < kt; t++) tile(t, false);
    if (kt > 0) tile(kt - 1, true);
    cp_async_wait_n<0>(); // no copy outlives the block (the last groups are empty)

    if (accumulate == GEMM_SWIGLU) {
        swiglu_epilogue<4, 8>(Y, acc, M, N, m0 + wm, n0 + wn, g, tq);
        return;
    }
    Y = split_out(Y, M, N, accumulate);
    store_epilogue<4, 8>(Y, acc, M, N, m0 + wm, n0 + wn, g, tq, accumulate);
}

extern "C" __global__ void __launch_bounds__(GW_THREADS, 1)
    gemm_bf16_128x256(float *Y, const bf16 *A, const bf16 *W, int M, int N, int K, int accumulate) {
    gemm_bf16_128x256_body<64, 3>(Y, A, W, M, N, K, accumulate);
}

extern "C" __global__ void __launch_bounds__(GW_THREADS, 1)
    gemm_bf16_128x256_k32(float *Y, const bf16 *A, const bf16 *W, int M, int N, int K, int accumulate) {
    gemm_bf16_128x256_body<32, 4>(Y, A, W, M, N, K, accumulate);
}

// The product for a few rows (decode): at most 16 rows (one m16 tile) by
// 32 columns per block of 4 warps, one n8 tile a warp, K in tiles of 128
// with GS_STAGES tiles in flight, so that even a matrix of few columns
// keeps enough weight bytes in flight to stream at full bandwidth. The
// same tensor-core instructions over the same K steps in the same order
// as the other kernels: the same bits.
#define GS_M 16
#define GS_N 32
#define GS_K 128
#define GS_LD (GS_K + 8)
#define GS_STAGES 5
#define GS_SMEM (GS_STAGES * (GS_M + GS_N) * GS_LD * 2)

extern "C" __global__ void __launch_bounds__(128) gemm_bf16_16(float *Y, const bf16 *A, const bf16 *W, int M, int N, int K, int accumulate) {
    extern __shared__ __align__(16) unsigned char smem[];
    bf16(*As)[GS_M][GS_LD] = (bf16(*)[GS_M][GS_LD])smem;
    bf16(*Ws)[GS_N][GS_LD] = (bf16(*)[GS_N][GS_LD])(smem + GS_STAGES * GS_M * GS_LD * 2);
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    int g = lane >> 2, tq = lane & 3;
    int m0 = blockIdx.y * GS_M, n0 = blockIdx.x * GS_N;
    float acc[4] = {0.f, 0.f, 0.f, 0.f};
    int Kz = split_k(A, W, K);
    int kt = (Kz + GS_K - 1) / GS_K;
    auto load = [&](int s, int k0) {
        for (int c = threadIdx.x; c < (GS_M + GS_N) * GS_K / 8; c += blockDim.x) {
            int r = c / (GS_K / 8), col = (c % (GS_K / 8)) * 8;
            bool isA = r < GS_M;
            int rr = isA ? r : r - GS_M;
            int gr = (isA ? m0 : n0) + rr, lim = isA ? M : N, gk = k0 + col;
            const bf16 *src = isA ? A : W;
            bf16 *dst = isA ? &As[s][rr][col] : &Ws[s][rr][col];
            if (K % 8 == 0) {
                bool in = gr < lim && gk < Kz;
                cp_async16(dst, in ? src + (size_t)gr * K + gk : src, in ? 16 : 0);
            } else {
                for (int j = 0; j < 8; j++)
                    dst[j] = gr < lim && gk + j < Kz ? src[(size_t)gr * K + gk + j] : __float2bfloat16_rn(0.f);
            }
        }
    };
#pragma unroll
    for (int s = 0; s < GS_STAGES - 1; s++) {
        if (s < kt) load(s, s * GS_K);
        cp_async_commit();
    }
    for (int t = 0; t < kt; t++) {
        int nt = t + GS_STAGES - 1;
        if (nt < kt) load(nt % GS_STAGES, nt * GS_K);
        cp_async_commit();
        cp_async_wait_n<GS_STAGES - 2>();
        __syncthreads();
        bf16(*as)[GS_LD] = As[t % GS_STAGES];
        bf16(*ws)[GS_LD] = Ws[t % GS_STAGES];
#pragma unroll
        for (int kk = 0; kk < GS_K; kk += 16) {
            if (t * GS_K + kk >= Kz) break;
            unsigned a[4], b[2];
            ldmatrix_x4(a, &as[lane % 16][kk + (lane / 16) * 8]);
            int n = warp * 8 + g;
            b[0] = *(const unsigned *)&ws[n][kk + tq * 2];
            b[1] = *(const unsigned *)&ws[n][kk + tq * 2 + 8];
            mma_bf16(acc, a[0], a[1], a[2], a[3], b[0], b[1]);
        }
        __syncthreads();
    }
    Y = split_out(Y, M, N, accumulate);
#pragma unroll
    for (int e = 0; e < 4; e++) {
        int row = m0 + g + (e >= 2 ? 8 : 0);
        int col = n0 + warp * 8 + tq * 2 + (e & 1);
        if (row < M && col < N) {
            float *y = &Y[(size_t)row * N + col];
            *y = accumulate ? __fadd_rn(*y, acc[e]) : acc[e];
        }
    }
}

// The streamed product for a few rows (decode), for K a multiple of 8: at
// most 16 rows by 8 columns a warp, and each warp streams its own columns'
// weights through its own ring of GT_DEPTH shared-memory stages of KT
// k's, so that no warp ever waits for another (there is no block-wide
// barrier) and each keeps GT_DEPTH - 1 stages of weights in flight. A
// stage holds min(16, M) rows of A (the launch sizes the shared memory so:
// one row's decode fits five times the warps of a 16-row step on a
// multiprocessor); a fragment's rows past M read as zero. The
// same tensor-core instruction over the same k16 steps, ceil(Kz/16) of
// them, in the same order as the other kernels: the same bits.
#define GT_WARPS 4
template <int KT, int DEPTH>
__device__ __forceinline__ void gemm_bf16_stream_body(float *Y, const bf16 *A, const bf16 *W, int M, int N, int K, int accumulate) {
    constexpr int LD = KT + 8; // padded rows: fragment reads of 8 rows meet every bank once
    int arows = min(16, M);    // A's rows a stage holds
    int STAGE = (arows + 8) * LD;
    extern __shared__ __align__(16) unsigned char gt_smem[];
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    int g = lane >> 2, tq = lane & 3;
    int m0 = blockIdx.y * 16, n0 = (blockIdx.x * GT_WARPS + warp) * 8;
    if (n0 >= N) return; // no barrier below waits for this warp
    bf16 *ring = (bf16 *)gt_smem + (size_t)warp * DEPTH * STAGE;
    int rows = min(16, M - m0);
    int Kz = split_k(A, W, K);
    int kt = (Kz + KT - 1) / KT;
    A += (size_t)m0 * K;
    W += (size_t)n0 * K;
    auto load = [&](int s, int k0) {
        bf16 *as = ring + s * STAGE, *ws = as + arows * LD;
#pragma unroll
        for (int c = lane; c < 8 * KT / 8; c += 32) {
            int r = c / (KT / 8), col = (c % (KT / 8)) * 8, gk = k0 + col;
            bool in = n0 + r < N && gk < Kz;
            cp_async16(ws + r * LD + col, in ? W + (size_t)r * K + gk : W, in ? 16 : 0);
        }
        for (int c = lane; c < rows * (KT / 8); c += 32) {
            int r = c / (KT / 8), col = (c % (KT / 8)) * 8, gk = k0 + col;
            bool in = gk < Kz;
            cp_async16(as + r * LD + col, in ? A + (size_t)r * K + gk : A, in ? 16 : 0);
        }
    };
#pragma unroll
    for (int s = 0; s < DEPTH - 1; s++) {
        if (s < kt) load(s, s * KT);
        cp_async_commit();
    }
    float acc[4] = {0.f, 0.f, 0.f, 0.f};
    bool lo = g < rows, hi = g + 8 < rows;
    for (int t = 0; t < kt; t++) {
        int nt = t + DEPTH - 1;
        if (nt < kt) load(nt % DEPTH, nt * KT);
        cp_async_commit();
        cp_async_wait_n<DEPTH - 1>();
        __syncwarp();
        const bf16 *as = ring + (t % DEPTH) * STAGE, *ws = as + arows * LD;
#pragma unroll
        for (int kk = 0; kk < KT; kk += 32) {
            if (t * KT + kk >= Kz) break;
            unsigned b[4];
            ldmatrix_x4(b, ws + (lane % 8) * LD + kk + (lane / 8) * 8);
#pragma unroll
            for (int h = 0; h < 2; h++) {
                int k = kk + 16 * h;
                if (h == 1 && t * KT + k >= Kz) break;
                const bf16 *ar = as + g * LD + k + tq * 2;
                unsigned a0 = lo ? *(const unsigned *)ar : 0u, a2 = lo ? *(const unsigned *)(ar + 8) : 0u;
                unsigned a1 = hi ? *(const unsigned *)(ar + 8 * LD) : 0u, a3 = hi ? *(const unsigned *)(ar + 8 * LD + 8) : 0u;
                mma_bf16(acc, a0, a1, a2, a3, b[2 * h], b[2 * h + 1]);
            }
        }
        __syncwarp(); // every lane is done with the stage the next copy refills
    }
    Y = split_out(Y, M, N, accumulate);
#pragma unroll
    for (int e = 0; e < 4; e++) {
        int row = m0 + g + (e >= 2 ? 8 : 0);
        int col = n0 + tq * 2 + (e & 1);
        if (row < M && col < N) {
            float *y = &Y[(size_t)row * N + col];
            *y = accumulate ? __fadd_rn(*y, acc[e]) : acc[e];
        }
    }
}

// gemm_bf16_16s streams K tiles of 64, eight deep (GT_WARPS * DEPTH *
// (min(16, M) + 8) * (KT + 8) * 2 bytes of shared memory a block,
// engine/cuda's streamSmem). Tiles of 128 four deep were faster with the
// weights in L2 but slower streaming them from memory (docs/gpu.md).
extern "C" __global__ void __launch_bounds__(GT_WARPS * 32)
    gemm_bf16_16s(float *Y, const bf16 *A, const bf16 *W, int M, int N, int K, int accumulate) {
    gemm_bf16_stream_body<64, 8>(Y, A, W, M, N, K, accumulate);
}
