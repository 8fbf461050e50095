#!/bin/sh
# gen.sh regenerates ../kernels.ptx and ../kernels.fatbin from the CUDA C
# here. Run it after any change to a .cu or .cuh file (TestPTXFresh fails
# until you do). It needs nvcc (CUDA 11.8 or later).
#  - kernels.ptx: compute_80 PTX, which runs on Ampere, Ada, Hopper and
#    later GPUs, compiled by the driver for the GPU at hand (the first time
#    on a machine: the driver caches the result). Its first line records
#    the sources' digest.
#  - kernels.fatbin: the same kernels as machine code (SASS) for sm_80
#    (which also runs on sm_86, sm_87 and sm_89) and sm_90, so that those
#    GPUs load them without compiling; kernels.fatbin.sum records the
#    sources' digest and the file's.
set -eu
cd "$(dirname "$0")"
sum=$(cat $(ls *.cu *.cuh | LC_ALL=C sort) | sha256sum | cut -d' ' -f1)
nvcc -ptx -arch=compute_80 -O3 kernels.cu -o ../kernels.ptx.tmp
{ echo "// source-sha256: $sum"; cat ../kernels.ptx.tmp; } >../kernels.ptx
rm ../kernels.ptx.tmp
nvcc -fatbin -O3 -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 kernels.cu -o ../kernels.fatbin
{ echo "source-sha256: $sum"; echo "fatbin-sha256: $(sha256sum ../kernels.fatbin | cut -d' ' -f1)"; } >../kernels.fatbin.sum
echo "kernels.ptx, kernels.fatbin: $(nvcc --version | tail -1), sources $sum"
