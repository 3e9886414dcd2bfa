#!/usr/bin/env bash
# Session 14's training call (issue 23), within TIME_LEFT seconds (default 590):
#   1. `tools/fused_train_bench.sh` TYPES=lora SKIP_D0=0: LoRA r8 0.5B 4x2048 at dropout 0.05 (kernels off/on) and at
#      dropout 0 (shared A-products off/on), transformers+PEFT at each dropout, same call: how much of LoRA's remaining
#      cost is the adapters' dropout;
#   2. `PART=dpo05 tools/gpu_sft.sh`: DPO LoRA on the 0.5B shape, Osprey and tools/bench_dpo_reference.py.
# Needs .dist/osprey-gpu.tar.xz and .dist/tokenizers.tar.xz; carry .dist. The tables come last.
set -uo pipefail
FINAL=${OUT:-/tmp/osprey-out}; mkdir -p "$FINAL"
start=$SECONDS
left() { echo $(( ${TIME_LEFT:-590} - (SECONDS - start) )); }
OUT=$FINAL/train TYPES=lora SKIP_D0=0 timeout $(( $(left) - 150 )) bash tools/fused_train_bench.sh > "$FINAL/train.log" 2>&1
if (( $(left) > 90 )); then
  OUT=$FINAL/dpo PART=dpo05 timeout $(( $(left) - 5 )) bash tools/gpu_sft.sh > "$FINAL/dpo.log" 2>&1
fi
echo "=== LoRA"; tail -12 "$FINAL/train.log"
echo "=== DPO"; tail -6 "$FINAL/dpo.log"
echo "time used: $((SECONDS - start)) s"
