#!/usr/bin/env bash
# Session 10's first device call (issues 16, 18, 20): the packed-weight kernels after the sum(0L) fix (GPTQ's fused
# product re-probed, GPTQ decode on the dequantization-kernel path), structured outputs' throughput ratio after the
# mask-staging memcpy fix, and GRPO rollouts against the engine (plus one short OSPREY_PROFILE=1 run that prints the
# rollouts' engine phases). Each part writes under /tmp/o10/<part>; everything is packed into $OUT/session10.tar.gz
# (the device returns few files) and the tables are printed last. Needs .dist/osprey-gpu.tar.xz and .dist/tokenizers.tar.xz.
set -uo pipefail
FINAL=${OUT:-/tmp/osprey-out}; mkdir -p "$FINAL" /tmp/o10
export DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1
start=$SECONDS
pack() { tar -czf "$FINAL/session10.tar.gz" -C /tmp o10; }
OUT=/tmp/o10/packed PREWARM=1 timeout 260 bash tools/packed_gpu_check.sh > /tmp/o10/packed.log 2>&1
echo "packed done at $((SECONDS - start)) s"; pack
# Pipelined decode (issue 23, OSPREY_ASYNC_DECODE=1) against the step-by-step engine: 0.5B-shaped bf16, 128-token
# prompts, 256 new, 1 and 32 requests; equal token digests mean equal greedy outputs.
M=/tmp/qwen2-0.5b; [[ -d $M ]] || python3 tools/make_bench_model.py --size 0.5b --out $M > /dev/null 2>&1
cp /tmp/t/tokenizers/qwen3/tokenizer.json /tmp/t/tokenizers/qwen3/tokenizer_config.json $M/
for a in 0 1 0 1; do
  OSPREY_ASYNC_DECODE=$a timeout 60 /tmp/osp/osprey-gpu/osprey benchmark --model $M --device cuda --torch_dtype bfloat16 --concurrency 1 32 \
    --prompt_length 128 --max_new_tokens 256 2>&1 | grep -E "^tokens|^ +[0-9]" | sed "s/^/async=$a /" | tee -a /tmp/o10/async.txt
done
echo "async done at $((SECONDS - start)) s"; pack
OUT=/tmp/o10/structured CONC="1 32" NEW=64 timeout 150 bash tools/structured_bench.sh > /tmp/o10/structured.log 2>&1
echo "structured done at $((SECONDS - start)) s"; pack
OUT=/tmp/o10/grpo SIZES=0.5b timeout $(( 540 - (SECONDS - start) )) bash tools/grpo_bench.sh > /tmp/o10/grpo.log 2>&1
echo "grpo done at $((SECONDS - start)) s"; pack
[[ $((SECONDS - start)) -lt 480 ]] || { echo "no time left for the profiled GRPO run"; tail -40 /tmp/o10/packed.log; cat /tmp/o10/async.txt; tail -6 /tmp/o10/structured.log; tail -4 /tmp/o10/grpo.log; exit 0; }
# The same GRPO run, 2 steps, with the engine's phases per generation batch (each phase mark synchronises).
M=/tmp/qwen2-0.5b; [[ -d $M ]] || python3 tools/make_bench_model.py --size 0.5b --out $M > /dev/null 2>&1
cp /tmp/t/tokenizers/qwen3/tokenizer.json /tmp/t/tokenizers/qwen3/tokenizer_config.json $M/
OSPREY_PROFILE=1 timeout $(( 570 - (SECONDS - start) )) /tmp/osp/osprey-gpu/osprey rlhf --rlhf_type grpo --model $M --device cuda --torch_dtype bfloat16 \
  --dataset /tmp/grpo-prompts.jsonl --reward_funcs accuracy format repetition --num_generations 8 --max_completion_length 512 \
  --per_device_train_batch_size 8 --gradient_accumulation_steps 4 --max_steps 2 --logging_steps 1 --save_strategy no \
  --output_dir /tmp/o10/grpo-profile --add_version false > /tmp/o10/grpo-profile.log 2>&1
echo "grpo profile done at $((SECONDS - start)) s"
pack
echo "=== packed"; tail -40 /tmp/o10/packed.log
echo "=== async"; cat /tmp/o10/async.txt
echo "=== structured"; tail -6 /tmp/o10/structured.log
echo "=== grpo"; tail -4 /tmp/o10/grpo.log
echo "=== grpo profile"; grep -A14 "profile, rollouts" /tmp/o10/grpo-profile.log | tail -32
