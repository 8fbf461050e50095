#!/bin/sh
# gen.sh regenerates ../kernels.ptx from the CUDA C here. Run it after any
# change to a .cu or .cuh file (TestPTXFresh fails until you do). It needs
# nvcc (CUDA 11.8 or later); compute_80 PTX runs on Ampere, Ada, Hopper and
# later GPUs, JIT-compiled by the driver. The first line records the
# sources' digest.
set -eu
cd "$(dirname "$0")"
sum=$(cat $(ls *.cu *.cuh | LC_ALL=C sort) | sha256sum | cut -d' ' -f1)
nvcc -ptx -arch=compute_80 -O3 kernels.cu -o ../kernels.ptx.tmp
{ echo "// source-sha256: $sum"; cat ../kernels.ptx.tmp; } >../kernels.ptx
rm ../kernels.ptx.tmp
echo "kernels.ptx: $(nvcc --version | tail -1), sources $sum"
