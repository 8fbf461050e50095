// kernels_sm90a.cu: the kernels that need Hopper's sm_90a (wgmma), built
// into a PTX module of their own (see gen.sh) that the backend loads on
// GPUs of compute capability 9.0 alone.
#include "gemm_wg.cuh"
