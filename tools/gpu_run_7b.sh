#!/usr/bin/env bash
# One device call: decode benchmark on a Qwen2.5-7B-shaped model (random bf16 weights), Osprey against
# transformers, same workload as gpu_run.sh. Writes to $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/osprey-out}
mkdir -p "$OUT" /tmp/osp
export DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1 PYTHONUNBUFFERED=1
tar -xJf .dist/osprey-gpu.tar.xz -C /tmp/osp
OSP=/tmp/osp/osprey-gpu/osprey
python3 tools/make_bench_model.py --size 7b --out /tmp/qwen2-7b 2>&1 | grep wrote
ls /tmp/qwen2-7b
B="${BENCH_ARGS:---batch_size 1 32 --prompt_length 2048 --max_new_tokens 256}"
echo "== HF transformers, qwen2-7b: $B"
python3 tools/bench_hf_generate.py --model /tmp/qwen2-7b $B --result_path "$OUT/bench-7b.jsonl" 2>&1 | grep -v -i "warn\|Loading weights"
echo "== osprey, qwen2-7b: $B"
/usr/bin/time -f "osprey wall %e s, max RSS %M KB" $OSP benchmark --model /tmp/qwen2-7b --device cuda --torch_dtype bfloat16 $B --result_path "$OUT/bench-7b.jsonl" 2>&1
