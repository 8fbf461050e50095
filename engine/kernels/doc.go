// Package kernels owns the numeric hot loops of the engine: weight matrices in
// their in-memory formats (f32, bf16, q8) and the matrix products over them.
// Every matmul of the forward pass goes through MatMul, so this is the one
// place where speed work happens. Matrices are immutable after construction
// and safe to read from many goroutines at once.
//
// Each fast routine is a triad: a plain-Go version (kernels_generic.go, used
// with -tags purego and on architectures without assembly), an assembly
// version per architecture (kernels_amd64.s: AVX2+FMA; kernels_q8_amd64.s:
// the AVX2 integer Q8 products; kernels_arm64.s: NEON;
// kernels_avx512_amd64.s: 12-row gemm tiles in zmm registers;
// kernels_q8_avx512_amd64.s: VNNI Q8 products; kernels_q8_amx_amd64.s: AMX
// Q8 products of sixteen rows; exp_amd64.s: SiLU and softmax
// exponentials; quantize_amd64.s: the Q8 activation quantizer) and a stub
// file declaring it. The variant is chosen once at start-up
// from CPU features (golang.org/x/sys/cpu); Impl names it.
//
// Layout. Weights are packed in panels of PanelRows (16) rows interleaved
// column by column, so the decode kernel (n = 1) streams four panels, 64 rows,
// with contiguous reads, and the batched kernel (n > 1) holds a 16 x 6 tile
// of outputs in registers (16 x 4 for the last rows of a batch). The gemm
// cuts the activation rows into chunks of at most 192 and, per chunk, walks
// the panels in blocks (their accumulators, at most 48 KB, stay in cache)
// k-slice by k-slice (256 columns): a slice of the activations is reused by
// every panel of the block while it is in L2, whatever K is, and each weight
// is read from memory once per chunk. bf16 panels hold column pairs
// (bf16.go); with AVX512_BF16 the tiles multiply them as they are
// (VDPBF16PS, tiles of 16 rows or of two panels x 8 rows), elsewhere each
// 16 x 256 segment is widened once into an L1 buffer shared by all the
// tiles. While a tile works, its kernel prefetches the weights of the
// segment that comes next.
// Q8 panels group four columns per row (q8.go), and their products run on
// quantized activations in 16 x 4 tiles over whole panels (16 x 16 tiles on
// AMX).
//
// Numerics. Every output element of MatMul is accumulated in order of k,
// from zero, one product at a time, each added with one rounding (fused
// multiply-add in assembly, fma32 in Go), so every implementation gives the
// same bits for f32 as well. Neither the batch size n, nor the
// position of a row in a tile, nor the thread count changes that order, so a
// row's output bits never depend on what else shares its batch (batch
// invariance); the tests hold every path to it bitwise. Against an exact sum
// the error is the usual one of a sequential float32 sum (a few ulps of
// sum|w*x| per hundred terms). A BF16 product rounds its activations to
// bf16, so each product is exact, and adds each column pair's two products
// in VDPBF16PS's order, bit for bit on every implementation (bf16.go,
// docs/numerics.md). Q8 is
// integer arithmetic: each activation row is quantized like the weights
// (int8 per block of 32 with a float32 scale), each block's sum of int8
// products is exact, and the blocks are scaled and summed in float32 in
// order, with the same single roundings everywhere, so all implementations
// agree bit for bit (q8.go). The quantization error is at most half a step,
// max|v|/254, per value on each side.
// Dot and Axpy (helpers for attention) use eight lanes and a fixed tree.
//
// MatMul runs on a persistent pool of worker goroutines (SetThreads): the
// output rows are cut into about four chunks per thread (whole 4-panel
// gemv calls) and every thread, the caller included, claims chunks until
// none are left, so a slow core costs one chunk, not a share. Idle workers
// poll for new work for 200 us before they park, since a decode step hands
// out a product every few tens of microseconds. Parallel runs element-wise
// work on the same threads. Neither allocates in the steady state.
//
// This package imports nothing of the engine.
package kernels
