// rowbench: one-row products (one sequence's decode) on Llama 3.2 1B's
// shapes, streaming their weights through shared memory in K tiles of 64,
// 128 or 256 at several depths, through registers (a 4 x 4 transpose in
// each quad makes the mma fragments), with W's rows padded off the 4 KiB
// stride, and a plain read of 1 GiB for the ceiling. The weights cycle
// through 768 MiB so that they come from memory; each variant is replayed
// as a graph of launches; every unpadded variant is checked bit for bit
// against the first (the same mma steps in the same order). docs/gpu.md's
// sixth round quotes its output. On a GPU machine:
//   nvcc -arch=sm_90a -O3 -std=c++17 scripts/gpu/rowbench.cu -o rowbench && ./rowbench
#include "../../engine/cuda/csrc/mma.cuh"
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>
#define CK(x) do { cudaError_t e = (x); if (e != cudaSuccess) { printf("%s:%d %s\n", __FILE__, __LINE__, cudaGetErrorString(e)); exit(1);} } while (0)

// The copies, fragment loads and tensor-core step the backend's kernels use.
__device__ __forceinline__ void cp16(unsigned s, const void *g) { cp_async16_s(s, g, 16); }
__device__ __forceinline__ void cp16h(unsigned s, const void *g) { asm volatile("cp.async.cg.shared.global.L2::256B [%0], [%1], 16;\n" ::"r"(s), "l"(g)); }
template <int H> __device__ __forceinline__ uint4 ldw(const void *p) {
    uint4 v;
    if (H == 1)
        asm volatile("ld.global.nc.L1::no_allocate.L2::256B.v4.u32 {%0,%1,%2,%3}, [%4];\n" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
    else if (H == 2)
        asm volatile("ld.global.nc.L1::no_allocate.L2::128B.v4.u32 {%0,%1,%2,%3}, [%4];\n" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
    else
        asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];\n" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
    return v;
}

// The current streamed kernel, for one row: 4 warps x 8 columns, K tiles of KT, DEPTH deep.
template <int KT, int DEPTH, int HINT, int PAD = 0>
__global__ void __launch_bounds__(128) row_stream(float *Y, const bf16 *A, const bf16 *W, int N, int K) {
    const int P = K + PAD; // the row pitch of W
    constexpr int LD = KT + 8, STAGE = 9 * LD;
    extern __shared__ __align__(16) unsigned char sm[];
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane >> 2, tq = lane & 3;
    int n0 = (blockIdx.x * 4 + warp) * 8;
    if (n0 >= N) return;
    bf16 *ring = (bf16 *)sm + warp * DEPTH * STAGE;
    int Kz = K / gridDim.z;
    A += blockIdx.z * Kz;
    W += blockIdx.z * Kz + (size_t)n0 * P;
    int kt = Kz / KT;
    auto load = [&](int s, int k0) {
        bf16 *as = ring + s * STAGE, *ws = as + LD;
#pragma unroll
        for (int c = lane; c < KT; c += 32) {
            int r = c / (KT / 8), col = (c % (KT / 8)) * 8;
            unsigned d = (unsigned)__cvta_generic_to_shared(ws + r * LD + col);
            if (HINT) cp16h(d, W + (size_t)r * P + k0 + col); else cp16(d, W + (size_t)r * P + k0 + col);
        }
        if (lane < KT / 8) cp16((unsigned)__cvta_generic_to_shared(as + lane * 8), A + k0 + lane * 8);
    };
#pragma unroll
    for (int s = 0; s < DEPTH - 1; s++) { if (s < kt) load(s, s * KT); cp_async_commit(); }
    float acc[4] = {0, 0, 0, 0};
    for (int t = 0; t < kt; t++) {
        int nt = t + DEPTH - 1;
        if (nt < kt) load(nt % DEPTH, nt * KT);
        cp_async_commit();
        cp_async_wait_n<DEPTH - 1>();
        __syncwarp();
        const bf16 *as = ring + (t % DEPTH) * STAGE, *ws = as + LD;
#pragma unroll
        for (int kk = 0; kk < KT; kk += 32) {
            unsigned b[4];
            ldmatrix_x4_s(b, (unsigned)__cvta_generic_to_shared(ws + (lane % 8) * LD + kk + (lane / 8) * 8));
#pragma unroll
            for (int h = 0; h < 2; h++) {
                const bf16 *ar = as + kk + 16 * h + tq * 2;
                unsigned a0 = g == 0 ? *(const unsigned *)ar : 0u, a2 = g == 0 ? *(const unsigned *)(ar + 8) : 0u;
                mma_bf16(acc, a0, 0u, a2, 0u, b[2 * h], b[2 * h + 1]);
            }
        }
        __syncwarp();
    }
    if (g == 0) {
        Y[blockIdx.z * N + n0 + tq * 2] = acc[0];
        Y[blockIdx.z * N + n0 + tq * 2 + 1] = acc[1];
    }
}

// Register-streamed: lane (g, tq) loads 16 bytes of row n0+g at k = 32c + 8tq, U loads in flight,
// then a 4 x 4 transpose within the quad gives the mma's B fragments.
__device__ __forceinline__ unsigned sel4(unsigned a, unsigned b, unsigned c, unsigned d, int i) {
    return i == 0 ? a : i == 1 ? b : i == 2 ? c : d;
}
template <int U, int HINT, int WARPS>
__global__ void __launch_bounds__(WARPS * 32) row_reg(float *Y, const bf16 *A, const bf16 *W, int N, int K) {
    extern __shared__ __align__(16) unsigned char sm[];
    bf16 *arow = (bf16 *)sm;
    int Kz = K / gridDim.z;
    A += blockIdx.z * Kz;
    for (int i = threadIdx.x * 8; i < Kz; i += blockDim.x * 8) *(uint4 *)&arow[i] = *(const uint4 *)&A[i];
    __syncthreads();
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane >> 2, tq = lane & 3;
    int n0 = (blockIdx.x * WARPS + warp) * 8;
    if (n0 >= N) return;
    const bf16 *wr = W + blockIdx.z * Kz + (size_t)(n0 + g) * K + 8 * tq;
    int nc = Kz / 32;
    uint4 buf[U];
#pragma unroll
    for (int u = 0; u < U; u++) if (u < nc) buf[u] = ldw<HINT>(wr + u * 32);
    float acc[4] = {0, 0, 0, 0};
    int base = lane & ~3;
    for (int c = 0; c < nc; c += U) {
#pragma unroll
        for (int u = 0; u < U; u++) {
            int cc = c + u;
            uint4 x = buf[u];
            if (cc + U < nc) buf[u] = ldw<HINT>(wr + (cc + U) * 32);
            unsigned y0 = 0, y1 = 0, y2 = 0, y3 = 0;
#pragma unroll
            for (int r = 0; r < 4; r++) {
                unsigned s = sel4(x.x, x.y, x.z, x.w, (tq + r) & 3);
                int j = (tq - r) & 3;
                unsigned v = __shfl_sync(0xffffffffu, s, base | j);
                y0 = j == 0 ? v : y0; y1 = j == 1 ? v : y1; y2 = j == 2 ? v : y2; y3 = j == 3 ? v : y3;
            }
            const bf16 *ar = arow + cc * 32 + tq * 2;
            unsigned a0 = g == 0 ? *(const unsigned *)ar : 0u, a2 = g == 0 ? *(const unsigned *)(ar + 8) : 0u;
            mma_bf16(acc, a0, 0u, a2, 0u, y0, y1);
            unsigned a0b = g == 0 ? *(const unsigned *)(ar + 16) : 0u, a2b = g == 0 ? *(const unsigned *)(ar + 24) : 0u;
            mma_bf16(acc, a0b, 0u, a2b, 0u, y2, y3);
        }
    }
    if (g == 0) {
        Y[blockIdx.z * N + n0 + tq * 2] = acc[0];
        Y[blockIdx.z * N + n0 + tq * 2 + 1] = acc[1];
    }
}

__global__ void readbw(unsigned *out, const uint4 *p, size_t n) {
    unsigned x = 0;
    size_t stride = (size_t)gridDim.x * blockDim.x;
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    for (; i + 7 * stride < n; i += 8 * stride) {
        uint4 v[8];
#pragma unroll
        for (int u = 0; u < 8; u++) v[u] = ldw<0>(p + i + u * stride);
#pragma unroll
        for (int u = 0; u < 8; u++) x ^= v[u].x ^ v[u].y ^ v[u].z ^ v[u].w;
    }
    if (x == 0x12345678u) out[0] = x;
}

__global__ void fill(bf16 *p, size_t n, unsigned seed, float scale) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        unsigned h = (unsigned)i * 2654435761u ^ seed;
        h ^= h >> 15; h *= 2246822519u; h ^= h >> 13;
        p[i] = __float2bfloat16(((h & 0xffff) / 65536.f - 0.5f) * scale);
    }
}

typedef void (*kfn)(float *, const bf16 *, const bf16 *, int, int);
struct Var { const char *name; kfn f; int smem; int threads; int colsPerBlock; };

int main() {
    struct Shape { const char *name; int N, K, S; } shapes[] = {
        {"qkv", 3072, 2048, 2}, {"o", 2048, 2048, 2}, {"gate|up", 16384, 2048, 1}, {"down", 2048, 8192, 4}, {"lm_head", 128256, 2048, 1}};
    float *Y, *Y0; bf16 *A; unsigned *dout;
    CK(cudaMalloc(&Y, 4 << 20)); CK(cudaMalloc(&Y0, 4 << 20)); CK(cudaMalloc(&A, 1 << 16)); CK(cudaMalloc(&dout, 64));
    fill<<<64, 256>>>(A, 8192, 7, 2.f);
    cudaStream_t st; CK(cudaStreamCreate(&st));
    cudaEvent_t e0, e1; CK(cudaEventCreate(&e0)); CK(cudaEventCreate(&e1));
    // read ceiling
    {
        size_t bytes = 1ull << 30; uint4 *p; CK(cudaMalloc(&p, bytes)); CK(cudaMemset(p, 1, bytes));
        for (int grid : {132 * 4, 132 * 8, 132 * 16}) {
            readbw<<<grid, 256, 0, st>>>(dout, p, bytes / 16);
            CK(cudaEventRecord(e0, st));
            for (int i = 0; i < 5; i++) readbw<<<grid, 256, 0, st>>>(dout, p, bytes / 16);
            CK(cudaEventRecord(e1, st)); CK(cudaEventSynchronize(e1));
            float ms; CK(cudaEventElapsedTime(&ms, e0, e1));
            printf("readbw grid %d: %.0f GB/s\n", grid, 5.0 * bytes / (ms * 1e6));
        }
        CK(cudaFree(p));
    }
    for (auto &sh : shapes) {
        int Kz = sh.K / sh.S;
        Var vars[] = {
            {"stream64x8", row_stream<64, 8, 0>, 4 * 8 * 9 * 72 * 2, 128, 32},
            {"stream256x4", row_stream<256, 4, 0>, 4 * 4 * 9 * 264 * 2, 128, 32},
            {"stream256x3", row_stream<256, 3, 0>, 4 * 3 * 9 * 264 * 2, 128, 32},
            {"stream64x16", row_stream<64, 16, 0>, 4 * 16 * 9 * 72 * 2, 128, 32},
            {"stream128x8", row_stream<128, 8, 0>, 4 * 8 * 9 * 136 * 2, 128, 32},
            {"stream64x8h", row_stream<64, 8, 1>, 4 * 8 * 9 * 72 * 2, 128, 32},
            {"reg4", row_reg<4, 0, 4>, Kz * 2, 128, 32},
            {"reg8", row_reg<8, 0, 4>, Kz * 2, 128, 32},
            {"reg8h", row_reg<8, 1, 4>, Kz * 2, 128, 32},
            {"s256x4pad64", row_stream<256, 4, 0, 64>, 4 * 4 * 9 * 264 * 2, 128, 32},
            {"s256x4pad128", row_stream<256, 4, 0, 128>, 4 * 4 * 9 * 264 * 2, 128, 32},
            {"s256x4pad256", row_stream<256, 4, 0, 256>, 4 * 4 * 9 * 264 * 2, 128, 32},
            {"s256x3pad128", row_stream<256, 3, 0, 128>, 4 * 3 * 9 * 264 * 2, 128, 32},
        };
        size_t wb = (size_t)sh.N * (sh.K + 256) * 2; // room for the padded pitches
        int copies = (int)((768ull << 20) / wb) + 1;
        if (copies < 3) copies = 3;
        bf16 *W; CK(cudaMalloc(&W, wb * copies));
        fill<<<1024, 256>>>(W, wb / 2 * copies, 11, 0.1f);
        CK(cudaDeviceSynchronize());
        for (int vi = 0; vi < (int)(sizeof vars / sizeof vars[0]); vi++) {
            Var &v = vars[vi];
            CK(cudaFuncSetAttribute(v.f, cudaFuncAttributeMaxDynamicSharedMemorySize, v.smem));
            dim3 grid((sh.N + v.colsPerBlock - 1) / v.colsPerBlock, 1, sh.S);
            float *out = vi == 0 ? Y0 : Y;
            CK(cudaMemset(out, 0, 4 << 20));
            v.f<<<grid, v.threads, v.smem, st>>>(out, A, W, sh.N, sh.K);
            CK(cudaStreamSynchronize(st));
            CK(cudaGetLastError());
            bool same = true;
            if (vi > 0) {
                std::vector<float> a(sh.N * sh.S), b(sh.N * sh.S);
                CK(cudaMemcpy(a.data(), Y0, a.size() * 4, cudaMemcpyDeviceToHost));
                CK(cudaMemcpy(b.data(), Y, b.size() * 4, cudaMemcpyDeviceToHost));
                same = memcmp(a.data(), b.data(), a.size() * 4) == 0;
            }
            int L = copies < 24 ? 24 : copies;
            cudaGraph_t gr; cudaGraphExec_t ge;
            CK(cudaStreamBeginCapture(st, cudaStreamCaptureModeGlobal));
            for (int i = 0; i < L; i++) v.f<<<grid, v.threads, v.smem, st>>>(Y, A, W + (size_t)(i % copies) * (wb / 2), sh.N, sh.K);
            CK(cudaStreamEndCapture(st, &gr));
            CK(cudaGraphInstantiateWithFlags(&ge, gr, 0));
            CK(cudaGraphLaunch(ge, st));
            CK(cudaEventRecord(e0, st));
            for (int i = 0; i < 3; i++) CK(cudaGraphLaunch(ge, st));
            CK(cudaEventRecord(e1, st)); CK(cudaEventSynchronize(e1));
            float ms; CK(cudaEventElapsedTime(&ms, e0, e1));
            double us = ms * 1e3 / (3.0 * L);
            printf("%-8s %-12s %7.2f us  %6.0f GB/s  bits %s\n", sh.name, v.name, us, (double)sh.N * sh.K * 2 / (us * 1e3), same ? "same" : "differ (padded: other data)");
            CK(cudaGraphExecDestroy(ge)); CK(cudaGraphDestroy(gr));
        }
        CK(cudaFree(W));
    }
    return 0;
}
