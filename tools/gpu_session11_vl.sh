#!/usr/bin/env bash
# Session 11's VL device call (issue 22): a 12-step OSPREY_PROFILE=1 LoRA SFT on the QUICK model (2 language layers,
# 2 vision blocks: the image path's phases after the pixel-staging change), then tools/vl_bench.sh STAGES=sft on the
# 7B-shaped model (transformers + PEFT and osprey in the same call) in the time left (TIME_LEFT seconds from the call's
# start, default 585), then the serving stage if time remains. Everything goes into $OUT/session11-vl.tar.gz; the
# summaries are printed last. Needs the full pack (with SkiaSharp) and .dist/tokenizers.tar.xz.
set -uo pipefail
FINAL=${OUT:-/tmp/osprey-out}; mkdir -p "$FINAL" /tmp/o11v/quick
start=$SECONDS
left() { echo $(( ${TIME_LEFT:-585} - (SECONDS - start) )); }
export DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1
if [[ ${SKIP_PROFILE:-0} != 1 ]]; then
  OUT=/tmp/o11v/quick QUICK=1 STAGES=none timeout 150 bash tools/vl_bench.sh > /tmp/o11v/quick-build.log 2>&1
  rm -rf /tmp/vlb-prof
  OSPREY_PROFILE=1 timeout 120 /tmp/osp/osprey-gpu/osprey sft --model /tmp/qwen2-vl-quick --dataset /tmp/vlb-data/train.jsonl \
    --train_type lora --lora_rank 8 --lora_alpha 32 --target_modules all-linear --per_device_train_batch_size 4 \
    --max_steps 12 --logging_steps 1 --learning_rate 1e-4 --lr_scheduler_type constant --gradient_checkpointing true \
    --max_length 4096 --save_strategy no --output_dir /tmp/vlb-prof --add_version false --device cuda --torch_dtype bfloat16 \
    > /tmp/o11v/quick-profile.txt 2>&1
  cp /tmp/vlb-prof/logging.jsonl /tmp/o11v/quick-profile-logging.jsonl 2>/dev/null
  echo "quick profile done at $((SECONDS - start)) s"
fi
OUT=/tmp/o11v/full STAGES=sft timeout $(( $(left) - 10 )) bash tools/vl_bench.sh > /tmp/o11v/full.log 2>&1
echo "7B sft done at $((SECONDS - start)) s"
if (( $(left) > 120 )); then
  OUT=/tmp/o11v/serve STAGES=serve CONC="1 32" NEW=64 timeout $(( $(left) - 10 )) bash tools/vl_bench.sh > /tmp/o11v/serve.log 2>&1
  echo "serve done at $((SECONDS - start)) s"
fi
tar -czf "$FINAL/session11-vl.tar.gz" -C /tmp o11v
echo "=== quick profile"; grep "osprey profile\|vision tower:" /tmp/o11v/quick-profile.txt | tail -30
echo "=== 7B sft"; tail -12 /tmp/o11v/full.log
echo "=== serve"; tail -8 /tmp/o11v/serve.log 2>/dev/null
