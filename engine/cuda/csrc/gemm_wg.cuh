// gemm_wg.cuh: the bf16 product for many rows on Hopper's warpgroup tensor
// cores (wgmma, sm_90a), in a module of its own (kernels_sm90a.cu) that
// loads on compute capability 9.0 alone.
//
// Same bits as every kernel of gemm.cuh: each output element is one chain
// of k16 steps in order of k from a zero sum over its split's range,
// Kz/16 steps, and a wgmma.m64nNk16 step gives the bits of the
// mma.m16n8k16 step on the same operands (scripts/gpu/wgmma_bits.cu; the
// GPU tests compare this kernel with the others bit for bit). The same
// epilogues: plain, accumulate, split planes, SwiGLU.
//
// A block computes a WG_M x WG_N tile with three warpgroups. The first is
// the producer: one thread copies each K tile of WG_K of A and W with the
// tensor memory accelerator (cp.async.bulk.tensor, from tensor maps the
// host encodes with 128-byte swizzling) into a ring of WG_STAGES stages,
// each guarded by two mbarriers: full (the copies' bytes have landed) and
// empty (both consumers are done reading it). The other two are the
// consumers: each takes 64 rows by 256 columns with wgmma.m64n256k16 (128
// float32 sums a thread, laid out per warp as mma.m16n8k16's accumulators
// of 32 n8 tiles), keeps one tile's steps in flight while it waits for the
// next, and releases a stage once the steps that read it are done.
// gemm_bf16_wgs (below) is the same pipeline on 128 x 128 tiles for a
// product split in S ranges of K, all of them in one block.
// Zeros past M and N come from the copies (out of the tensor's bounds).
// A split's range of K must be a whole number of K tiles (the host runs
// gemm.cuh's 128 x 256 kernel otherwise), so every tile runs the same
// four steps with no branch among them: ptxas serialises wgmma steps
// that a divergent path separates.
#pragma once
#include "common.cuh"
#include "gemm_common.cuh"

#define WG_M 128
#define WG_N 256
#define WG_K 64
#define WG_STAGES 4
#define WG_THREADS 384
#define WG_SA (WG_M * WG_K * 2)                         // bytes of a stage's tile of A
#define WG_SW (WG_N * WG_K * 2)                         // and of W
#define WG_SMEM (WG_STAGES * (WG_SA + WG_SW) + 2048)    // 192 KiB, the barriers and alignment
#define WG_GROUP 8                                      // block rows walked down before moving right (L2 reuse)
#define WGS_N 128                                       // gemm_bf16_wgs's tiles: 128 x 128
#define WGS_STAGES 6
#define WGS_SW (WGS_N * WG_K * 2)
#define WGS_SMEM (WGS_STAGES * (WG_SA + WGS_SW) + 2048) // 192 KiB, the barriers and alignment

// tmap is a CUDA tensor map (CUtensorMap: 128 bytes, 64-byte aligned),
// passed by value as a kernel parameter.
struct __align__(64) tmap {
    unsigned long long v[16];
};

__device__ __forceinline__ void mbar_init(unsigned bar, unsigned count) {
    asm volatile("mbarrier.init.shared.b64 [%0], %1;\n" ::"r"(bar), "r"(count));
}

// mbar_expect makes the barrier's current phase wait for bytes more bytes
// of copies, and arrives on it.
__device__ __forceinline__ void mbar_expect(unsigned bar, unsigned bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
}

// mbar_arrive_if arrives on the barrier where on holds, as a predicated
// instruction: a branch between wgmma steps would make ptxas serialise
// them.
__device__ __forceinline__ void mbar_arrive_if(unsigned bar, bool on) {
    asm volatile("{\n.reg .b64 st;\n.reg .pred p;\nsetp.ne.b32 p, %1, 0;\n@p mbarrier.arrive.shared.b64 st, [%0];\n}\n" ::"r"(bar),
                 "r"((int)on)
                 : "memory");
}

// mbar_wait waits until the barrier's phase of the given parity completes.
__device__ __forceinline__ void mbar_wait(unsigned bar, unsigned parity) {
    asm volatile("{\n.reg .pred done;\nwait_%=:\n"
                 "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
                 "@!done bra wait_%=;\n}\n" ::"r"(bar),
                 "r"(parity)
                 : "memory");
}

// tma_load copies the box at (c0, c1) (c0 along the contiguous dimension)
// of the tensor that map describes to shared address dst, counting its
// bytes on barrier bar.
__device__ __forceinline__ void tma_load(unsigned dst, const tmap *map, int c0, int c1, unsigned bar) {
    asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n" ::"r"(dst),
                 "l"(map), "r"(c0), "r"(c1), "r"(bar)
                 : "memory");
}

// wg_desc is the shared-memory matrix descriptor of a k16 step's block of
// rows at shared address a, as the tensor maps' 128-byte swizzle lays
// them out: rows of 128 bytes (64 k), 8-row atoms 1024 bytes apart (the
// stride offset), each atom 1024-byte aligned; a step's start moves 32
// bytes along the row.
__device__ __forceinline__ unsigned long long wg_desc(unsigned a) {
    return (unsigned long long)((a & 0x3FFFF) >> 4) | (1ull << 16) | (64ull << 32) | (1ull << 62);
}

__device__ __forceinline__ void wgmma_256(float *d, unsigned long long da, unsigned long long db) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, 1, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63,%64,%65,%66,%67,%68,%69,%70,%71,%72,%73,%74,%75,%76,%77,%78,%79,%80,%81,%82,%83,%84,%85,%86,%87,%88,%89,%90,%91,%92,%93,%94,%95,%96,%97,%98,%99,%100,%101,%102,%103,%104,%105,%106,%107,%108,%109,%110,%111,%112,%113,%114,%115,%116,%117,%118,%119,%120,%121,%122,%123,%124,%125,%126,%127}, %128, %129, p, 1, 1, 0, 0;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]), "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]), "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]), "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]), "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]), "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]), "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]), "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]), "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127])
                 : "l"(da), "l"(db));
}

__device__ __forceinline__ void wgmma_128(float *d, unsigned long long da, unsigned long long db) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, 1, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63}, %64, %65, p, 1, 1, 0, 0;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
                 : "l"(da), "l"(db));
}

// wg_ring is a block's ring of stages in shared memory: stage s holds its
// K tile of A (WG_M x WG_K) at A + s * WG_SA and of W (BN x WG_K) at W + s
// * BN * WG_K * 2, each 1024-byte aligned (the swizzle's atoms); full[s]
// is the mbarrier at bars + 8s, empty[s] at bars + 8 (STAGES + s).
struct wg_ring {
    unsigned A, W, bars;
};

// wg_start places the block's tile (m0, n0) in a grid of WG_M x BN tiles,
// walking WG_GROUP block rows down before moving right (L2 reuse), and
// sets up the ring: the barriers initialised and visible to the copies.
template <int BN, int STAGES> __device__ __forceinline__ wg_ring wg_start(unsigned char *smem, int &m0, int &n0) {
    unsigned base = ((unsigned)__cvta_generic_to_shared(smem) + 1023) & ~1023u;
    wg_ring r = {base, base + STAGES * WG_SA, base + STAGES * (WG_SA + BN * WG_K * 2)};
    int tn = gridDim.x, tm = gridDim.y;
    int id = blockIdx.y * tn + blockIdx.x, span = WG_GROUP * tn;
    int first = id / span * WG_GROUP, rows = min(tm - first, WG_GROUP), local = id % span;
    m0 = (first + local % rows) * WG_M, n0 = local / rows * BN;
    if (threadIdx.x == 0) {
        for (int s = 0; s < STAGES; s++) {
            mbar_init(r.bars + 8 * s, 1);               // the producer's arrival, with the copies' bytes
            mbar_init(r.bars + 8 * (STAGES + s), 8);    // each consumer warp's
        }
        asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    }
    __syncthreads();
    return r;
}

// wg_produce is the producer's loop (one thread): K tiles k0 / WG_K ..
// + kt - 1 of A's rows m0 .. and W's rows n0 .. into the ring, each stage
// reused once both consumers have released it.
template <int BN, int STAGES>
__device__ __forceinline__ void wg_produce(wg_ring r, const tmap *mapA, const tmap *mapW, int k0, int kt, int m0, int n0) {
    asm volatile("prefetch.tensormap [%0];\n" ::"l"(mapA) : "memory");
    asm volatile("prefetch.tensormap [%0];\n" ::"l"(mapW) : "memory");
    for (int t = 0; t < kt; t++) {
        int s = t % STAGES;
        if (t >= STAGES) mbar_wait(r.bars + 8 * (STAGES + s), (t / STAGES - 1) & 1);
        unsigned full = r.bars + 8 * s;
        mbar_expect(full, WG_SA + BN * WG_K * 2);
        tma_load(r.A + s * WG_SA, mapA, k0 + t * WG_K, m0, full);
        tma_load(r.W + s * BN * WG_K * 2, mapW, k0 + t * WG_K, n0, full);
    }
}

// wg_tile is a consumer's K tile t: it waits for the tile's stage, adds its
// four k16 steps (wgmma.m64n<BN>k16, 64 rows from c * 64) onto the sums d
// and leaves them in flight; once tile t - 1's steps are done, its lane 0
// releases that stage. No branch stands between the steps (see above).
template <int BN, int STAGES>
__device__ __forceinline__ void wg_tile(wg_ring ring, int t, int c, int lane, float *d) {
    int s = t % STAGES;
    mbar_wait(ring.bars + 8 * s, (t / STAGES) & 1);
    unsigned a = ring.A + s * WG_SA + c * 64 * 128, w = ring.W + s * BN * WG_K * 2;
    asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#pragma unroll
    for (int kk = 0; kk < WG_K / 16; kk++) {
        if (BN == 256)
            wgmma_256(d, wg_desc(a + kk * 32), wg_desc(w + kk * 32));
        else
            wgmma_128(d, wg_desc(a + kk * 32), wg_desc(w + kk * 32));
    }
    asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
    asm volatile("wgmma.wait_group.sync.aligned 1;\n" ::: "memory"); // tile t - 1's steps are done
    mbar_arrive_if(ring.bars + 8 * (STAGES + (t + STAGES - 1) % STAGES), t > 0 && lane == 0);
}

extern "C" __global__ void __launch_bounds__(WG_THREADS, 1)
    gemm_bf16_wg(float *Y, const __grid_constant__ tmap mapA, const __grid_constant__ tmap mapW, int M, int N, int K,
                 int accumulate) {
    extern __shared__ __align__(1024) unsigned char wg_smem[];
    int m0, n0;
    wg_ring ring = wg_start<WG_N, WG_STAGES>(wg_smem, m0, n0);
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32, wg = warp / 4;
    int Kz = K / (int)gridDim.z, k0 = (int)blockIdx.z * Kz; // the split's range, a multiple of WG_K (gemm.go)
    int kt = Kz / WG_K;
    if (wg == 0) { // producer
        if (threadIdx.x == 0) wg_produce<WG_N, WG_STAGES>(ring, &mapA, &mapW, k0, kt, m0, n0);
        return;
    }

    int c = wg - 1, g = lane >> 2, tq = lane & 3;
    float d[128];
#pragma unroll
    for (int i = 0; i < 128; i++) d[i] = 0.f;
    for (int t = 0; t < kt; t++) wg_tile<WG_N, WG_STAGES>(ring, t, c, lane, d);
    asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");

    // Warp warp % 4 of consumer c holds rows 16 (warp % 4) .. + 15 of the
    // consumer's 64, as one m16 row of 32 n8 tiles.
    const float(*acc)[32][4] = (const float(*)[32][4])d;
    int r0 = m0 + c * 64 + (warp % 4) * 16;
    if (accumulate == GEMM_SWIGLU) {
        swiglu_epilogue<1, 32>(Y, acc, M, N, r0, n0, g, tq);
        return;
    }
    Y = split_out(Y, M, N, accumulate);
    store_epilogue<1, 32>(Y, acc, M, N, r0, n0, g, tq, accumulate);
}

// gemm_bf16_wgs is a split product whole in one block: the S ranges of K
// of a WG_M x WGS_N tile in turn, each range's chain of steps from zero
// (as gemm_bf16_wg's block z runs it) added onto a running sum that starts
// at -0 (so that the first add is exact: -0 + x is x), in order of the
// range: the bits of the split product and its reduce (reduce.cuh), with
// no partial planes written. Y is stored, or added onto (accumulate, one
// more rounding, as the reduce adds). Two sets of sums a thread, so the
// tiles are 128 columns wide (wgmma.m64n128k16), K tiles six deep.
extern "C" __global__ void __launch_bounds__(WG_THREADS, 1)
    gemm_bf16_wgs(float *Y, const __grid_constant__ tmap mapA, const __grid_constant__ tmap mapW, int M, int N, int K, int S,
                  int accumulate) {
    extern __shared__ __align__(1024) unsigned char wg_smem[];
    int m0, n0;
    wg_ring ring = wg_start<WGS_N, WGS_STAGES>(wg_smem, m0, n0);
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32, wg = warp / 4;
    int kz = K / S / WG_K; // K tiles a range
    if (wg == 0) {
        if (threadIdx.x == 0) wg_produce<WGS_N, WGS_STAGES>(ring, &mapA, &mapW, 0, kz * S, m0, n0);
        return;
    }

    int c = wg - 1, g = lane >> 2, tq = lane & 3;
    float sum[64], d[64];
#pragma unroll
    for (int i = 0; i < 64; i++) sum[i] = -0.f;
    for (int z = 0, t = 0; z < S; z++) {
#pragma unroll
        for (int i = 0; i < 64; i++) d[i] = 0.f;
        for (int e = t + kz; t < e; t++) wg_tile<WGS_N, WGS_STAGES>(ring, t, c, lane, d);
        asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory"); // the range's chain is done
#pragma unroll
        for (int i = 0; i < 64; i++) sum[i] = __fadd_rn(sum[i], d[i]);
    }

    const float(*acc)[16][4] = (const float(*)[16][4])sum;
    store_epilogue<1, 16>(Y, acc, M, N, m0 + c * 64 + (warp % 4) * 16, n0, g, tq, accumulate);
}
