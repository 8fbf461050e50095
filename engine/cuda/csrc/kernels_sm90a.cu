// kernels_sm90a.cu: the kernels that need Hopper's sm_90a, built into a PTX
// module of their own (see gen.sh) that the backend loads on GPUs of
// compute capability 9.0 alone: the products on wgmma, and a one-row
// step's products and attention again, built to be launched early
// (BT_EARLY: common.cuh's early_wait), so that each starts, and streams
// its first weights, while the kernel before it finishes.
#define BT_EARLY 1
#include "gemm_wg.cuh"
#include "row.cuh"
#include "attention.cuh"
