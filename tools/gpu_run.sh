#!/usr/bin/env bash
# One device call: unpack the self-contained GPU build of osprey (made here by tools/pack_gpu.sh), check
# that it finds PyTorch's CUDA libtorch, regenerate the parity fixtures with transformers, check greedy
# parity on CUDA, and run the decode benchmark side by side with the HF reference. Writes to $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/osprey-out}
mkdir -p "$OUT" /tmp/osp
export DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1 PYTHONUNBUFFERED=1
tar -xJf .dist/osprey-gpu.tar.xz -C /tmp/osp
OSP=/tmp/osp/osprey-gpu/osprey
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
echo "== osprey env --device cuda (PyTorch's libtorch found through python3, no LD_LIBRARY_PATH)"
$OSP env --device cuda 2>&1 | tee "$OUT/env.txt"
if [[ "${SKIP_FIXTURES:-0}" != 1 ]]; then
  echo "== parity fixtures (transformers)"
  python3 tools/make_parity_fixtures.py --out /tmp/fx 2>&1 | grep -v -i warn | tee "$OUT/fixtures.log"
  tar -cf "$OUT/parity.tar" -C /tmp/fx .
  echo "== greedy parity on CUDA"
  python3 tools/gpu_parity_check.py --osprey $OSP --fixtures /tmp/fx 2>&1 | tee "$OUT/gpu-parity.txt"
fi
echo "== benchmark models"
python3 tools/make_bench_model.py --out /tmp/qwen2-0.5b 2>&1 | grep wrote
python3 tools/make_bench_model.py --out /tmp/qwen2-0.5b-1layer --layers 1 2>&1 | grep wrote
B="${BENCH_ARGS:---batch_size 1 32 --prompt_length 2048 --max_new_tokens 256}"
for m in qwen2-0.5b qwen2-0.5b-1layer; do
  echo "== HF transformers, $m: $B"
  python3 tools/bench_hf_generate.py --model /tmp/$m $B --result_path "$OUT/bench.jsonl" 2>&1 | grep -v -i warn
  echo "== osprey, $m: $B"
  $OSP benchmark --model /tmp/$m --device cuda --torch_dtype bfloat16 $B --result_path "$OUT/bench.jsonl" 2>&1
done
