#!/usr/bin/env bash
# Builds the self-contained osprey for GPU machines (no CPU libtorch inside: it loads PyTorch's CUDA
# libtorch at run time) into .dist/osprey-gpu.tar.xz, for the device tool's `carry`.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .dist/osprey-gpu; mkdir -p .dist
dotnet publish src/Osprey.Cli -c Release -r linux-x64 --self-contained -p:OspreyCpuLibTorch=false -o .dist/osprey-gpu -nologo -v:quiet
# Debugger libraries, symbols and XML docs are not needed to run and would push the device tool's 64 MiB carry over.
rm -f .dist/osprey-gpu/*.pdb .dist/osprey-gpu/*.xml .dist/osprey-gpu/libmscordaccore.so .dist/osprey-gpu/libmscordbi.so .dist/osprey-gpu/createdump
# SLIM=1 also leaves out the image libraries (SkiaSharp, HarfBuzz: ~11 MB, 3.7 MB packed) so the archive fits the carry
# beside a larger tree; image decoding (VL models, --images) and training plots then do not work on the GPU machine.
[[ ${SLIM:-0} == 1 ]] && rm -f .dist/osprey-gpu/libSkiaSharp.so .dist/osprey-gpu/libHarfBuzzSharp.so
XZ_OPT='-9e -T0' tar -cJf .dist/osprey-gpu.tar.xz -C .dist osprey-gpu
rm -rf .dist/osprey-gpu  # only the archive travels (the device tool carries at most 64 MiB)
ls -la .dist/osprey-gpu.tar.xz
# The publish restored src/Osprey without the CPU libtorch (obj/project.assets.json is shared by all configurations);
# restore the normal way again so a later `dotnet pack --no-build` (Packaging/OutsideTheRepoTests) lists it.
dotnet restore Osprey.slnx -v:quiet
