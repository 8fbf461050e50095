// gemm_wg.cuh: the bf16 product for many rows on Hopper's warpgroup tensor
// cores (wgmma, sm_90a), in a module of its own (kernels_sm90a.cu) that
// loads on compute capability 9.0 alone.
//
// Same bits as every kernel of gemm.cuh: each output element is one chain
// of k16 steps in order of k from a zero sum over its split's range,
// ceil(Kz/16) steps, and a wgmma.m64nNk16 step gives the bits of the
// mma.m16n8k16 step on the same operands (scripts/gpu/wgmma_bits.cu; the
// GPU tests compare this kernel with the others bit for bit). The same
// epilogues: plain, accumulate, split planes, SwiGLU.
//
// Experimental, off by default (engine/cuda's EnvWGMMA): on an H200 its
// bits matched every other kernel's in all GPU tests, but it ran at 187
// TFLOP/s against the mma.sync kernel's 524, for reasons not yet
// measured (docs/gpu.md).
//
// A block of two warpgroups computes a WG_M x WG_N tile, each warpgroup
// 64 rows by 256 columns with wgmma.m64n256k16 (128 float32 sums a
// thread, laid out per warp as mma.m16n8k16's accumulators of 32 n8
// tiles). K goes in tiles of WG_K, WG_STAGES deep, copied with cp.async
// into shared memory as wgmma reads it without swizzling: per k16 step,
// 8-row x 16-byte core matrices, the two of a row group side by side (128
// bytes apart: the descriptor's leading offset) and row groups 256 bytes
// apart (its stride offset).
#pragma once
#include "common.cuh"
#include "gemm_common.cuh"

#define WG_M 128
#define WG_N 256
#define WG_K 64
#define WG_STAGES 4
#define WG_THREADS 256
#define WG_SA (WG_M * WG_K * 2)                    // bytes of a stage's tile of A
#define WG_SW (WG_N * WG_K * 2)                    // and of W
#define WG_SMEM (WG_STAGES * (WG_SA + WG_SW))      // 192 KiB
#define WG_GROUP 8                                 // block rows walked down before moving right (L2 reuse)

// wg_core is where 16-byte chunk q (k = 8q .. 8q + 7) of row r of a stage's
// tile of R rows lies, in bytes: the k16 step q / 2's block of R x 16, core
// matrix (r / 8, q % 2), row r % 8.
__device__ __forceinline__ unsigned wg_core(int R, int r, int q) {
    return (unsigned)((q / 2) * R * 32 + ((r / 8) * 2 + q % 2) * 128 + (r % 8) * 16);
}

// wg_desc is the shared-memory matrix descriptor of a k16 step's block
// at shared address a: no swizzle, leading offset 128 bytes, stride 256.
__device__ __forceinline__ unsigned long long wg_desc(unsigned a) {
    return (unsigned long long)((a & 0x3FFFF) >> 4) | (8ull << 16) | (16ull << 32);
}

__device__ __forceinline__ void wgmma_256(float *d, unsigned long long da, unsigned long long db) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, 1, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63,%64,%65,%66,%67,%68,%69,%70,%71,%72,%73,%74,%75,%76,%77,%78,%79,%80,%81,%82,%83,%84,%85,%86,%87,%88,%89,%90,%91,%92,%93,%94,%95,%96,%97,%98,%99,%100,%101,%102,%103,%104,%105,%106,%107,%108,%109,%110,%111,%112,%113,%114,%115,%116,%117,%118,%119,%120,%121,%122,%123,%124,%125,%126,%127}, %128, %129, p, 1, 1, 0, 0;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]), "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]), "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]), "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]), "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]), "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]), "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]), "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]), "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127])
                 : "l"(da), "l"(db));
}

// wg_fence_operands keeps the compiler from moving any access to the
// sums across the point where it stands (wgmma writes them asynchronously).
__device__ __forceinline__ void wg_fence_operands(float *d) {
#pragma unroll
    for (int i = 0; i < 128; i++) asm volatile("" : "+f"(d[i])::"memory");
}

// wg_load copies tile kt (k from kt * WG_K within the split) into the
// stage at shared addresses as (A) and ws (W). A warp's 32 copies take 8
// consecutive rows at 4 consecutive chunks: 64 contiguous bytes of each
// global row, and 512 bytes of shared memory that meet every bank 4 times.
// Past M, N or Kz a copy is of zero bytes (zero-filled).
__device__ __forceinline__ void wg_load(unsigned as, unsigned ws, const bf16 *A, const bf16 *W, int M, int N, int K,
                                        int Kz, int m0, int n0, int kt) {
    int k0 = kt * WG_K;
#pragma unroll
    for (int i = 0; i < (WG_M + WG_N) * (WG_K / 8) / WG_THREADS; i++) {
        int idx = threadIdx.x + i * WG_THREADS, w = idx / 32, lane = idx % 32;
        bool isA = w < WG_M / 8 * 2;
        int wl = isA ? w : w - WG_M / 8 * 2, R = isA ? WG_M : WG_N;
        int r = (wl % (R / 8)) * 8 + lane % 8, q = (wl / (R / 8)) * 4 + lane / 8;
        int grow = (isA ? m0 : n0) + r, k = k0 + 8 * q;
        bool in = grow < (isA ? M : N) && k < Kz;
        const bf16 *src = isA ? A : W;
        if (in) src += (size_t)grow * K + k;
        cp_async16_s((isA ? as : ws) + wg_core(R, r, q), src, in ? 16 : 0);
    }
}

extern "C" __global__ void __launch_bounds__(WG_THREADS, 1)
    gemm_bf16_wg(float *Y, const bf16 *A, const bf16 *W, int M, int N, int K, int accumulate) {
    extern __shared__ __align__(128) unsigned char wg_smem[];
    unsigned As = (unsigned)__cvta_generic_to_shared(wg_smem), Ws = As + WG_STAGES * WG_SA;
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32, wg = warp / 4;
    int g = lane >> 2, tq = lane & 3;
    int tn = gridDim.x, tm = gridDim.y;
    int id = blockIdx.y * tn + blockIdx.x, span = WG_GROUP * tn;
    int first = id / span * WG_GROUP, rows = min(tm - first, WG_GROUP), local = id % span;
    int m0 = (first + local % rows) * WG_M, n0 = local / rows * WG_N;

    float d[128];
#pragma unroll
    for (int i = 0; i < 128; i++) d[i] = 0.f;
    int Kz = split_k(A, W, K);
    int kt = (Kz + WG_K - 1) / WG_K;
#pragma unroll
    for (int s = 0; s < WG_STAGES - 1; s++) {
        if (s < kt) wg_load(As + s * WG_SA, Ws + s * WG_SW, A, W, M, N, K, Kz, m0, n0, s);
        cp_async_commit();
    }
    for (int t = 0; t < kt; t++) {
        int st = t % WG_STAGES;
        cp_async_wait_n<WG_STAGES - 2>(); // tile t has landed
        asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
        __syncthreads();
        int steps = min(WG_K / 16, (Kz - t * WG_K + 15) / 16); // ceil(Kz/16) steps in all
        unsigned a = As + st * WG_SA + wg * 64 / 8 * 2 * 128, w = Ws + st * WG_SW;
        wg_fence_operands(d);
        asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
        if (steps == WG_K / 16) { // every tile but perhaps the last: no branch between the steps
#pragma unroll
            for (int kk = 0; kk < WG_K / 16; kk++) wgmma_256(d, wg_desc(a + kk * WG_M * 32), wg_desc(w + kk * WG_N * 32));
        } else {
            for (int kk = 0; kk < steps; kk++) wgmma_256(d, wg_desc(a + kk * WG_M * 32), wg_desc(w + kk * WG_N * 32));
        }
        asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
        asm volatile("wgmma.wait_group.sync.aligned 1;\n" ::: "memory"); // tile t - 1's steps are done
        wg_fence_operands(d);
        __syncthreads(); // in both warpgroups: its stage is free
        int nt = t + WG_STAGES - 1, ns = nt % WG_STAGES;
        if (nt < kt) wg_load(As + ns * WG_SA, Ws + ns * WG_SW, A, W, M, N, K, Kz, m0, n0, nt);
        cp_async_commit();
    }
    asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");
    wg_fence_operands(d);
    cp_async_wait_n<0>();

    // Warp warp % 4 of warpgroup wg holds rows 16 (warp % 4) .. + 15 of the
    // warpgroup's 64, as one m16 row of 32 n8 tiles.
    const float(*acc)[32][4] = (const float(*)[32][4])d;
    int r0 = m0 + wg * 64 + (warp % 4) * 16;
    if (accumulate == GEMM_SWIGLU) {
        swiglu_epilogue<1, 32>(Y, acc, M, N, r0, n0, g, tq);
        return;
    }
    Y = split_out(Y, M, N, accumulate);
    store_epilogue<1, 32>(Y, acc, M, N, r0, n0, g, tq, accumulate);
}
