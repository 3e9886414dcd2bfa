#!/usr/bin/env bash
# Session 16's first device call, within TIME_LEFT seconds (default 590):
#   1. issue 16: tools/gpu_masks_after_emit.sh (structured outputs with the next step's allowed sets started before and
#      after the tokens' hand-out, OSPREY_MASKS_AFTER_EMIT=0/1, both formats at 32 and 1 requests, NEW=256, 3 rounds);
#   2. issue 23: full fine-tuning of the 0.5B shape, 4x2048, no checkpointing, 25 steps: transformers
#      (tools/bench_sft_reference.py) and Osprey (kernels on), then one OSPREY_PROFILE=2 run (phases, steps 6-10,
#      one micro-batch a step).
# Needs .dist/osprey-gpu.tar.xz and .dist/tokenizers.tar.xz; carry .dist. The tables come last.
set -uo pipefail
FINAL=${OUT:-/tmp/osprey-out}; mkdir -p "$FINAL"
start=$SECONDS
left() { echo $(( ${TIME_LEFT:-590} - (SECONDS - start) )); }
OUT=$FINAL/masks timeout $(( $(left) - 200 )) bash tools/gpu_masks_after_emit.sh > "$FINAL/masks.log" 2>&1
OUT=$FINAL/full TYPES=full SKIP_D0=1 FUSED=1 timeout $(( $(left) - 50 )) bash tools/fused_train_bench.sh > "$FINAL/full.log" 2>&1
export DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1
rm -rf /tmp/bench
OSPREY_PROFILE=2 timeout $(( $(left) - 5 )) /tmp/osp/osprey-gpu/osprey pt --model /tmp/q05 --dataset /tmp/rand.jsonl --max_length 2048 \
  --truncation_strategy right --max_steps 10 --logging_steps 5 --save_strategy no --device cuda --torch_dtype bfloat16 \
  --output_dir /tmp/bench --add_version false --lr_scheduler_type constant --per_device_train_batch_size 4 \
  --gradient_accumulation_steps 1 --gradient_checkpointing false --train_type full > "$FINAL/profile-full.txt" 2>&1
echo "=== profile full (steps 6-10, ms/step)"; grep "osprey profile: steps 6-10" "$FINAL/profile-full.txt" | sed "s/.*steps 6-10: //"
echo "=== full"; tail -4 "$FINAL/full.log"
echo "=== masks"; tail -22 "$FINAL/masks.log"
echo "time used: $((SECONDS - start)) s"
