#!/usr/bin/env bash
# usage: bash tools/gpu_run_graph.sh small|7b|both   (device tool, carry .dist from tools/pack_gpu.sh)
set -u
mkdir -p /tmp/osp && tar -xJf ${PKG:-.dist/osprey-gpu.tar.xz} -C /tmp/osp
export DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1
O=/tmp/osp/osprey-gpu/osprey
TL=$(python3 -c "import importlib.util,os;s=importlib.util.find_spec('torch');print(os.path.join(os.path.dirname(s.origin),'lib'))")
if [ "$1" = small ] || [ "$1" = both ]; then
  { nm -DC --defined-only $TL/libtorch_cuda.so | grep -E "at::cuda::CUDAGraph::(CUDAGraph|~CUDAGraph|capture_begin|capture_end|replay\(|reset)";
    nm -DC --defined-only $TL/libc10_cuda.so | grep -E "getStreamFromPool|etCurrentCUDAStream";
    nm -D --defined-only $TL/libtorch_cuda.so | grep -E "9CUDAGraph(C1|D1|13capture_begin|11capture_end|6replay)"; } > $OUT/syms.txt 2>&1
  cat $OUT/syms.txt
  nvidia-smi --query-gpu=name,memory.used --format=csv | tee $OUT/smi.txt
  timeout 60 $O graph-probe --device cuda --skip_model 2>&1 | tee $OUT/toy.txt; echo "toy rc=${PIPESTATUS[0]}"
  python3 tools/make_bench_model.py --out /tmp/qwen2-0.5b > $OUT/mk05.txt 2>&1; echo "mk rc=$?"
  timeout 200 $O graph-probe --device cuda --model /tmp/qwen2-0.5b --batch_size 1 32 --result_path $OUT/r05.jsonl 2>&1 | tee $OUT/p05.txt; echo "probe rc=${PIPESTATUS[0]}"
fi
if [ "$1" = 7b ] || { [ "$1" = both ] && grep -q "graph_ms" $OUT/p05.txt && [ $(grep -c "^ *[0-9]" $OUT/p05.txt) -ge 2 ]; }; then
  ( time python3 tools/make_bench_model.py --out /tmp/qwen2-7b --size 7b ) > $OUT/mk7.txt 2>&1; echo "mk rc=$?"; tail -3 $OUT/mk7.txt
  timeout 240 $O graph-probe --device cuda --model /tmp/qwen2-7b --batch_size 1 32 --result_path $OUT/r7.jsonl 2>&1 | tee $OUT/p7.txt; echo "probe rc=${PIPESTATUS[0]}"
fi
