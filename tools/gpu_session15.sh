#!/usr/bin/env bash
# Session 15's device call, within TIME_LEFT seconds (default 590):
#   1. issue 16: tools/structured_bench.sh step by step (the default engine), CONC="32 1" NEW=256 ROUNDS=3, after the
#      closed-object change of session 14 (the person schema at 32 requests was 0.879 before it);
#   2. issue 23: LoRA r8 all-linear on the 0.5B shape, 4x2048, no checkpointing, 25 steps: transformers+PEFT
#      (tools/bench_sft_reference.py) and Osprey with the stacked projections on (default) and off
#      (OSPREY_STACKED_LORA=0), then one OSPREY_PROFILE=2 run of each (phases with their host time, steps 6-10);
#   3. with the time left: tools/decode_vs_compiled.sh SIZES=7b (the 7B shape has never fit a call).
# Needs .dist/osprey-gpu.tar.xz and .dist/tokenizers.tar.xz; carry .dist. The tables come last.
set -uo pipefail
FINAL=${OUT:-/tmp/osprey-out}; mkdir -p "$FINAL"
start=$SECONDS
left() { echo $(( ${TIME_LEFT:-590} - (SECONDS - start) )); }
OUT=$FINAL/structured CONC="32 1" NEW=256 ROUNDS=${ROUNDS:-3} timeout $(( $(left) - 330 )) bash tools/structured_bench.sh > "$FINAL/structured.log" 2>&1
OUT=$FINAL/lora TYPES=lora SKIP_D0=1 FUSED=1 STACKED0=1 timeout $(( $(left) - 120 )) bash tools/fused_train_bench.sh > "$FINAL/lora.log" 2>&1
export DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1
for s in 1 0; do
  (( $(left) > 60 )) || break
  rm -rf /tmp/bench
  OSPREY_STACKED_LORA=$s OSPREY_PROFILE=2 timeout 60 /tmp/osp/osprey-gpu/osprey pt --model /tmp/q05 --dataset /tmp/rand.jsonl --max_length 2048 \
    --truncation_strategy right --max_steps 10 --logging_steps 5 --save_strategy no --device cuda --torch_dtype bfloat16 \
    --output_dir /tmp/bench --add_version false --lr_scheduler_type constant --per_device_train_batch_size 4 \
    --gradient_checkpointing false --train_type lora > "$FINAL/profile-stacked$s.txt" 2>&1
done
if (( $(left) > 200 )); then
  OUT=$FINAL/decode7b SIZES=7b TIME_LEFT=$(( $(left) - 10 )) bash tools/decode_vs_compiled.sh > "$FINAL/decode7b.log" 2>&1
fi
echo "=== structured"; tail -8 "$FINAL/structured.log"
for s in 1 0; do echo "=== profile stacked=$s (steps 6-10, ms/step)"; grep "osprey profile: steps 6-10" "$FINAL/profile-stacked$s.txt" | sed 's/.*steps 6-10: //'; done
echo "=== LoRA"; tail -6 "$FINAL/lora.log"
echo "=== decode 7b"; tail -5 "$FINAL/decode7b.log" 2>/dev/null
echo "time used: $((SECONDS - start)) s"
