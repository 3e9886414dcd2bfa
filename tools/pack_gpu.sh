#!/usr/bin/env bash
# Builds the self-contained osprey for GPU machines (no CPU libtorch inside: it loads PyTorch's CUDA
# libtorch at run time) into .dist/osprey-gpu.tar.xz, for the device tool's `carry`.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .dist/osprey-gpu; mkdir -p .dist
dotnet publish src/Osprey.Cli -c Release -r linux-x64 --self-contained -p:OspreyCpuLibTorch=false -o .dist/osprey-gpu -nologo -v:quiet
tar -cJf .dist/osprey-gpu.tar.xz -C .dist osprey-gpu
rm -rf .dist/osprey-gpu  # only the archive travels (the device tool carries at most 64 MiB)
ls -la .dist/osprey-gpu.tar.xz
