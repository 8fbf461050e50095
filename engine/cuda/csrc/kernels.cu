// kernels.cu: the CUDA backend's kernels, one header per operation, built
// into one PTX module (see gen.sh). Each kernel has a CPU reference in
// engine/llama that the GPU tests hold it to.
#include "embed.cuh"
#include "rmsnorm.cuh"
#include "rope.cuh"
#include "attention.cuh"
#include "swiglu.cuh"
#include "gemm.cuh"
#include "row.cuh"
#include "reduce.cuh"
#include "argmax.cuh"
