#!/usr/bin/env bash
# Session 10's second device call: issue 20's GRPO benchmark on the 7B-shaped model (tools/grpo_bench.sh SIZES=7b), a short
# PPO run on the GPU, then,
# with the time left, issue 22's pipeline check (tools/vl_bench.sh QUICK=1: a 2-layer Qwen2-VL, SFT against
# transformers+PEFT and image-chat serving; its figures mean nothing, it shows the pipeline runs on the GPU).
# Everything is archived into $OUT/session10-b.tar.gz; the tables are printed last.
set -uo pipefail
FINAL=${OUT:-/tmp/osprey-out}; mkdir -p "$FINAL" /tmp/o10b
export DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1
start=$SECONDS
pack() { tar -czf "$FINAL/session10-b.tar.gz" -C /tmp o10b; }
OUT=/tmp/o10b/grpo SIZES=7b timeout 330 bash tools/grpo_bench.sh > /tmp/o10b/grpo.log 2>&1
echo "grpo 7b done at $((SECONDS - start)) s"; pack
# PPO end to end on the GPU (issue 20 asks for it on CPU and GPU): 0.5B-shaped, LoRA, built-in rewards, 3 steps.
M=/tmp/qwen2-0.5b; [[ -d $M ]] || python3 tools/make_bench_model.py --size 0.5b --out $M > /dev/null 2>&1
cp /tmp/t/tokenizers/qwen3/tokenizer.json /tmp/t/tokenizers/qwen3/tokenizer_config.json $M/
(( SECONDS - start < 380 )) && timeout 100 /tmp/osp/osprey-gpu/osprey rlhf --rlhf_type ppo --model $M --device cuda --torch_dtype bfloat16 --dataset /tmp/grpo-prompts.jsonl \
  --reward_funcs format repetition --max_completion_length 64 --per_device_train_batch_size 8 --gradient_accumulation_steps 1 \
  --max_steps 3 --logging_steps 1 --save_strategy no --output_dir /tmp/o10b/ppo --add_version false > /tmp/o10b/ppo.log 2>&1
echo "ppo done at $((SECONDS - start)) s (rc $?)"; pack
left=$(( 420 - (SECONDS - start) ))
if (( left > 90 )); then
  OUT=/tmp/o10b/vl QUICK=1 WARM=1 STEPS=2 CONC="1 4" NEW=32 timeout $left bash tools/vl_bench.sh > /tmp/o10b/vl.log 2>&1
  echo "vl quick done at $((SECONDS - start)) s"; pack
fi
echo "=== grpo"; tail -4 /tmp/o10b/grpo.log
echo "=== ppo"; grep -v "^Train" /tmp/o10b/ppo.log | tail -6; tail -2 /tmp/o10b/ppo/logging.jsonl 2>/dev/null | cut -c1-600
echo "=== vl"; tail -25 /tmp/o10b/vl.log 2>/dev/null
