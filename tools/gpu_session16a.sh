#!/usr/bin/env bash
# Session 16's first device call, within TIME_LEFT seconds (default 590):
#   1. issue 16: tools/gpu_masks_after_emit.sh (structured outputs with the next step's allowed sets started before and
#      after the tokens' hand-out, OSPREY_MASKS_AFTER_EMIT=0/1, both formats at 32 and 1 requests, NEW=256, 3 rounds);
#   2. issue 23: full fine-tuning of the 0.5B shape, 4x2048, no checkpointing, 25 steps: transformers
#      (tools/bench_sft_reference.py) and Osprey (kernels on) with the fused loss's wide chunks (OSPREY_WIDE_LOSS_CHUNKS=1) and
#      without (the default), then one OSPREY_PROFILE=2 run each way (phases, steps 6-10, one
#      micro-batch a step).
# Needs .dist/osprey-gpu.tar.xz and .dist/tokenizers.tar.xz; carry .dist. The tables come last.
set -uo pipefail
FINAL=${OUT:-/tmp/osprey-out}; mkdir -p "$FINAL"
start=$SECONDS
left() { echo $(( ${TIME_LEFT:-590} - (SECONDS - start) )); }
OUT=$FINAL/masks timeout $(( $(left) - 230 )) bash tools/gpu_masks_after_emit.sh > "$FINAL/masks.log" 2>&1
OSPREY_WIDE_LOSS_CHUNKS=1 OUT=$FINAL/full TYPES=full SKIP_D0=1 FUSED=1 timeout $(( $(left) - 130 )) bash tools/fused_train_bench.sh > "$FINAL/full.log" 2>&1
export DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1
rm -rf /tmp/bench
(( $(left) > 70 )) && OSPREY_WIDE_LOSS_CHUNKS=0 timeout 60 /tmp/osp/osprey-gpu/osprey pt --model /tmp/q05 --dataset /tmp/rand.jsonl --max_length 2048 \
  --truncation_strategy right --max_steps 25 --logging_steps 5 --save_strategy no --device cuda --torch_dtype bfloat16 \
  --output_dir /tmp/bench --add_version false --gradient_accumulation_steps 1 --lr_scheduler_type constant \
  --per_device_train_batch_size 4 --gradient_checkpointing false --train_type full > "$FINAL/full-narrow.txt" 2>&1
cp /tmp/bench/logging.jsonl "$FINAL/full-narrow.jsonl" 2>/dev/null
for w in 1 0; do
(( $(left) > 50 )) || break
rm -rf /tmp/bench
OSPREY_WIDE_LOSS_CHUNKS=$w OSPREY_PROFILE=2 timeout 45 /tmp/osp/osprey-gpu/osprey pt --model /tmp/q05 --dataset /tmp/rand.jsonl --max_length 2048 \
  --truncation_strategy right --max_steps 10 --logging_steps 5 --save_strategy no --device cuda --torch_dtype bfloat16 \
  --output_dir /tmp/bench --add_version false --lr_scheduler_type constant --per_device_train_batch_size 4 \
  --gradient_accumulation_steps 1 --gradient_checkpointing false --train_type full > "$FINAL/profile-full-wide$w.txt" 2>&1
done
# OSPREY_PROFILE=3: each step starts with the device kept busy 300 ms; the phases' host times then say whether they
# wait for the device inside (full and LoRA, one micro-batch a step).
for type in full lora; do
(( $(left) > 50 )) || break
rm -rf /tmp/bench
OSPREY_PROFILE=3 timeout 45 /tmp/osp/osprey-gpu/osprey pt --model /tmp/q05 --dataset /tmp/rand.jsonl --max_length 2048 \
  --truncation_strategy right --max_steps 10 --logging_steps 5 --save_strategy no --device cuda --torch_dtype bfloat16 \
  --output_dir /tmp/bench --add_version false --lr_scheduler_type constant --per_device_train_batch_size 4 \
  --gradient_accumulation_steps 1 --gradient_checkpointing false --train_type $type > "$FINAL/profile3-$type.txt" 2>&1
done
for type in full lora; do echo "=== $type, OSPREY_PROFILE=3 (steps 6-10, ms/step)"; grep "osprey profile: steps 6-10" "$FINAL/profile3-$type.txt" | sed "s/.*steps 6-10: //"; done
for w in 1 0; do echo "=== profile full, wide loss chunks $w (steps 6-10, ms/step)"; grep "osprey profile: steps 6-10" "$FINAL/profile-full-wide$w.txt" | sed "s/.*steps 6-10: //"; done
echo "=== full (wide loss chunks)"; tail -4 "$FINAL/full.log"
echo "=== full, OSPREY_WIDE_LOSS_CHUNKS=0: tokens/s per window"; grep -o '"tokens_per_second":[0-9.]*' "$FINAL/full-narrow.jsonl" | tail -4
echo "=== masks"; tail -22 "$FINAL/masks.log"
(cd "$FINAL" && tar -czf /tmp/session16a.tgz . && rm -rf ./* && mv /tmp/session16a.tgz .)
echo "time used: $((SECONDS - start)) s"
