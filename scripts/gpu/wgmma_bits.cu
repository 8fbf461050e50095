// wgmma_bits.cu: does Hopper's wgmma give the bits of the mma.sync chains
// that every bf16 product kernel of engine/cuda runs? For random bf16
// inputs (exponents spread up to 2^18) it computes a 64 x 64 product over
// K = 128 as chains of mma.sync.m16n8k16 and as chains of
// wgmma.mma_async.m64n64k16 from shared memory (no swizzle, in two readings
// of the descriptor's offsets: only one of them is the right layout), and
// counts the outputs whose bits differ. On a GPU of compute capability 9.0:
//
//   nvcc -gencode arch=compute_90a,code=sm_90a -O2 scripts/gpu/wgmma_bits.cu -o /tmp/wgmma_bits && /tmp/wgmma_bits
//
// (docs/gpu.md has what it printed on an H200.)
#include <cuda_bf16.h>
#include <cstdio>
#include <cstdlib>
#include <cmath>
#include <vector>
#include <cstring>
typedef __nv_bfloat16 bf16;
#define M 64
#define N 64
#define K 128

__device__ __forceinline__ void mma16816(float *c, unsigned a0, unsigned a1, unsigned a2, unsigned a3, unsigned b0, unsigned b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3]) : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}
__global__ void k_mma(float *D, const bf16 *A, const bf16 *W) {
    int w = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, c = lane % 4;
    float acc[8][4] = {};
    for (int k0 = 0; k0 < K; k0 += 16) {
        const bf16 *ar = A + (16 * w + g) * K + k0, *ar8 = ar + 8 * K;
        unsigned a0 = *(const unsigned *)(ar + 2 * c), a1 = *(const unsigned *)(ar8 + 2 * c);
        unsigned a2 = *(const unsigned *)(ar + 8 + 2 * c), a3 = *(const unsigned *)(ar8 + 8 + 2 * c);
        for (int j = 0; j < 8; j++) {
            const bf16 *wr = W + (8 * j + g) * K + k0;
            mma16816(acc[j], a0, a1, a2, a3, *(const unsigned *)(wr + 2 * c), *(const unsigned *)(wr + 8 + 2 * c));
        }
    }
    for (int j = 0; j < 8; j++) {
        int r = 16 * w + g, col = 8 * j + 2 * c;
        D[r * N + col] = acc[j][0]; D[r * N + col + 1] = acc[j][1];
        D[(r + 8) * N + col] = acc[j][2]; D[(r + 8) * N + col + 1] = acc[j][3];
    }
}

__device__ __forceinline__ unsigned long long desc(const void *p, int lbo, int sbo) {
    unsigned a = (unsigned)__cvta_generic_to_shared(p);
    return (unsigned long long)((a & 0x3FFFF) >> 4) | ((unsigned long long)(lbo >> 4) << 16) | ((unsigned long long)(sbo >> 4) << 32);
}
#define D8(i) "+f"(d[i]), "+f"(d[i+1]), "+f"(d[i+2]), "+f"(d[i+3]), "+f"(d[i+4]), "+f"(d[i+5]), "+f"(d[i+6]), "+f"(d[i+7])
__device__ __forceinline__ void wgmma64(float *d, unsigned long long da, unsigned long long db) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, 1, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 "
                 "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, "
                 "%32, %33, p, 1, 1, 0, 0;\n}\n"
                 : D8(0), D8(8), D8(16), D8(24) : "l"(da), "l"(db));
}
// smem: per k step s, a 64x16 tile in core matrices of 8 rows x 16 bytes: core (i = row/8, j = k/8) at (i*2 + j)*128.
__global__ void k_wgmma(float *D, const bf16 *A, const bf16 *W, int swapLS) {
    __shared__ __align__(128) bf16 sa[K / 16][M * 16], sw[K / 16][N * 16];
    for (int i = threadIdx.x; i < M * K; i += blockDim.x) {
        int r = i / K, k = i % K, s = k / 16, kk = k % 16;
        int off = ((r / 8) * 2 + kk / 8) * 64 + (r % 8) * 8 + kk % 8;
        sa[s][off] = A[i]; sw[s][off] = W[i];
    }
    __syncthreads();
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
    __syncthreads();
    float d[32];
    for (int i = 0; i < 32; i++) d[i] = 0.f;
    int lbo = swapLS ? 256 : 128, sbo = swapLS ? 128 : 256;
    asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
    for (int s = 0; s < K / 16; s++) wgmma64(d, desc(sa[s], lbo, sbo), desc(sw[s], lbo, sbo));
    asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
    asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");
    int w = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, c = lane % 4;
    for (int j = 0; j < 8; j++) {
        int r = 16 * w + g, col = 8 * j + 2 * c;
        D[r * N + col] = d[4 * j]; D[r * N + col + 1] = d[4 * j + 1];
        D[(r + 8) * N + col] = d[4 * j + 2]; D[(r + 8) * N + col + 1] = d[4 * j + 3];
    }
}

int main() {
    bf16 *dA, *dW; float *dD;
    cudaMalloc(&dA, M * K * 2); cudaMalloc(&dW, N * K * 2); cudaMalloc(&dD, M * N * 4);
    std::vector<bf16> A(M * K), W(N * K);
    std::vector<float> af(M * K), wf(N * K), d1(M * N), d2(M * N);
    srand(7);
    long diff[2] = {0, 0}, total = 0; double err[3] = {0, 0, 0};
    for (int trial = 0; trial < 20; trial++) {
        int spread = trial % 4 * 6; // exponent spread 0, 6, 12, 18
        for (int i = 0; i < M * K; i++) {
            float u = (rand() / (float)RAND_MAX - 0.5f) * 4;
            float v = ldexpf(u, spread ? rand() % (spread + 1) - spread / 2 : 0);
            A[i] = __float2bfloat16(v); af[i] = __bfloat162float(A[i]);
        }
        for (int i = 0; i < N * K; i++) {
            float u = (rand() / (float)RAND_MAX - 0.5f) * 4;
            float v = ldexpf(u, spread ? rand() % (spread + 1) - spread / 2 : 0);
            W[i] = __float2bfloat16(v); wf[i] = __bfloat162float(W[i]);
        }
        cudaMemcpy(dA, A.data(), M * K * 2, cudaMemcpyHostToDevice);
        cudaMemcpy(dW, W.data(), N * K * 2, cudaMemcpyHostToDevice);
        k_mma<<<1, 128>>>(dD, dA, dW);
        cudaMemcpy(d1.data(), dD, M * N * 4, cudaMemcpyDeviceToHost);
        for (int v = 0; v < 2; v++) {
            cudaMemset(dD, 0, M * N * 4);
            k_wgmma<<<1, 128>>>(dD, dA, dW, v);
            cudaError_t e = cudaDeviceSynchronize();
            if (e) { printf("wgmma variant %d: %s\n", v, cudaGetErrorString(e)); return 1; }
            cudaMemcpy(d2.data(), dD, M * N * 4, cudaMemcpyDeviceToHost);
            for (int i = 0; i < M * N; i++) {
                if (memcmp(&d1[i], &d2[i], 4)) diff[v]++;
                double ref = 0;
                int r = i / N, n = i % N;
                for (int k = 0; k < K; k++) ref += (double)af[r * K + k] * wf[n * K + k];
                double e2 = fabs(d2[i] - ref) / (1 + fabs(ref));
                if (e2 > err[1 + v]) err[1 + v] = e2;
                if (v == 0) { double e1 = fabs(d1[i] - ref) / (1 + fabs(ref)); if (e1 > err[0]) err[0] = e1; }
            }
        }
        total += M * N;
    }
    printf("elements %ld; mma.sync max rel err %.3g; wgmma(lbo128,sbo256) differs in %ld, err %.3g; wgmma(lbo256,sbo128) differs in %ld, err %.3g\n",
           total, err[0], diff[0], err[1], diff[1], err[2]);
    return 0;
}
