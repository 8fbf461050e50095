#!/bin/sh
# gen.sh regenerates ../kernels.ptx and ../kernels_sm90a.ptx from the CUDA
# C here. Run it after any change to a .cu or .cuh file (TestPTXFresh
# fails until you do). It needs nvcc (CUDA 11.8 or later).
#
# kernels.ptx (kernels.cu): compute_80 PTX, which runs on Ampere, Ada,
# Hopper and later GPUs, JIT-compiled by the driver.
#
# kernels_sm90a.ptx (kernels_sm90a.cu): the kernels that use Hopper's
# wgmma, for compute capability 9.0 alone. nvcc 11.8 has no sm_90a
# target, so they are written with the instructions as inline PTX,
# compiled for compute_90, and the module's header raised to what those
# instructions need (PTX ISA 8.0, target sm_90a: driver R525 or newer).
#
# The first line of each records the digest of all the sources.
set -eu
cd "$(dirname "$0")"
sum=$(cat $(ls *.cu *.cuh | LC_ALL=C sort) | sha256sum | cut -d' ' -f1)
nvcc -ptx -arch=compute_80 -O3 kernels.cu -o ../kernels.ptx.tmp
{ echo "// source-sha256: $sum"; cat ../kernels.ptx.tmp; } >../kernels.ptx
nvcc -ptx -arch=compute_90 -O3 kernels_sm90a.cu -o ../kernels.ptx.tmp
grep -q '^\.target sm_90$' ../kernels.ptx.tmp && grep -q '^\.version [78]\.[0-9]$' ../kernels.ptx.tmp
{ echo "// source-sha256: $sum"; sed -e 's/^\.version [78]\.[0-9]$/.version 8.0/' -e 's/^\.target sm_90$/.target sm_90a/' ../kernels.ptx.tmp; } >../kernels_sm90a.ptx
rm ../kernels.ptx.tmp
echo "kernels.ptx, kernels_sm90a.ptx: $(nvcc --version | tail -1), sources $sum"
