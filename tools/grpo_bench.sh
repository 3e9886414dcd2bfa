#!/usr/bin/env bash
# One device call for issue 20's GRPO benchmark (the lead runs it; helpers do not): GRPO LoRA on the Qwen2.5-0.5B- and
# 7B-shaped models with random weights (tools/make_bench_model.py) and the Qwen3 tokenizer from .dist/tokenizers.tar.xz,
# 8 generations x 512 tokens (--max_completion_length 512; a random model rarely stops early, so completions run
# to the limit), 4 prompts per step (a generation batch of 32 completions), bf16, 5 steps. Per model:
#   - step time split into rollout (sampling), scoring (rewards + reference/rollout log-probs) and update
#     (logging.jsonl's time/rollout_seconds, time/scoring_seconds, time/update_seconds, mean of steps 2-5);
#   - rollout tokens/s (rollout_tokens_per_second) against the serving engine's own throughput at the same
#     concurrency, lengths and sampling (`osprey benchmark --concurrency 32 --prompt_length 64 --max_new_tokens 512
#     --temperature 0.9 --top_p 0.9 --top_k 50`, GRPO's defaults; the greedy figure is printed beside it);
#     the issue's target is >= 0.8x. Rollouts run on that same engine over the live policy (LoRA adapters on, CUDA
#     graphs on; docs/grpo.md), so the ratio is the cost of the adapters and of sharing the process with training;
#   - which sampler ran (the run's "osprey: rollouts run on ..." line: slots, KV cache, CUDA graphs);
#   - peak memory (nvidia-smi sampled every 0.5 s while the run lasts).
# Needs .dist/osprey-gpu.tar.xz (tools/pack_gpu.sh) and .dist/tokenizers.tar.xz; carry .dist. SIZES="0.5b" runs one model. Table comes last.
set -uo pipefail
OUT=${OUT:-/tmp/osprey-out}; mkdir -p "$OUT" /tmp/osp /tmp/t
export DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1 PYTHONUNBUFFERED=1
tar -xJf .dist/osprey-gpu.tar.xz -C /tmp/osp; tar -xJf .dist/tokenizers.tar.xz -C /tmp/t
OSP=/tmp/osp/osprey-gpu/osprey
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
P=/tmp/grpo-prompts.jsonl
python3 - "$P" <<'PY'
import json, sys
with open(sys.argv[1], "w") as f:
    for i in range(64):
        f.write(json.dumps({"messages": [{"role": "user", "content": f"Compute {i} * {i + 3}. Put the answer in \\boxed{{}}."}],
                            "solution": str(i * (i + 3))}) + "\n")
PY
mean() { python3 -c "import json,sys; r=[json.loads(l) for l in open(sys.argv[1]) if '\"loss\"' in l][1:]; print('%.2f' % (sum(x[sys.argv[2]] for x in r)/max(1,len(r))))" "$@"; }
: > "$OUT/table.txt"
for size in ${SIZES:-0.5b 7b}; do
  M=/tmp/qwen2-$size
  python3 tools/make_bench_model.py --size $size --out $M 2>&1 | grep wrote
  cp /tmp/t/tokenizers/qwen3/tokenizer.json /tmp/t/tokenizers/qwen3/tokenizer_config.json $M/
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 500 > "$OUT/$size-mem.txt" &
  SMI=$!
  $OSP rlhf --rlhf_type grpo --model $M --device cuda --torch_dtype bfloat16 --dataset $P \
    --reward_funcs accuracy format repetition --num_generations 8 --max_completion_length 512 \
    --per_device_train_batch_size 8 --gradient_accumulation_steps 4 --max_steps 5 --logging_steps 1 --save_strategy no \
    --output_dir "$OUT/$size-grpo" --add_version false > "$OUT/$size-grpo.log" 2>&1
  kill $SMI
  L="$OUT/$size-grpo/logging.jsonl"
  peak=$(sort -n "$OUT/$size-mem.txt" | tail -1)
  # The engine with the rollouts' own sampling (GRPO's defaults: temperature 0.9, top_p 0.9, top_k 50), and greedy as before.
  $OSP benchmark --model $M --device cuda --torch_dtype bfloat16 --concurrency 32 --prompt_length 64 --max_new_tokens 512 \
    --result_path "$OUT/$size-engine-greedy.jsonl" > "$OUT/$size-engine-greedy.txt" 2>&1
  $OSP benchmark --model $M --device cuda --torch_dtype bfloat16 --concurrency 32 --prompt_length 64 --max_new_tokens 512 \
    --temperature 0.9 --top_p 0.9 --top_k 50 --result_path "$OUT/$size-engine.jsonl" > "$OUT/$size-engine.txt" 2>&1
  greedy=$(python3 -c "import json,sys; print('%.1f' % json.loads(open(sys.argv[1]).readlines()[-1])['result']['ThroughputTokensPerSecond'])" "$OUT/$size-engine-greedy.jsonl" 2>/dev/null || echo nan)
  rollout=$(mean $L rollout_tokens_per_second)
  engine=$(python3 -c "import json,sys; print('%.1f' % json.loads(open(sys.argv[1]).readlines()[-1])['result']['ThroughputTokensPerSecond'])" "$OUT/$size-engine.jsonl" 2>/dev/null || echo nan)
  ratio=$(python3 -c "import sys; print('%.2f' % (float(sys.argv[1]) / float(sys.argv[2])))" "$rollout" "$engine" 2>/dev/null || echo nan)
  echo "$size | step s: rollout $(mean $L time/rollout_seconds) scoring $(mean $L time/scoring_seconds) update $(mean $L time/update_seconds)" \
    "| rollout tok/s $rollout vs engine serving $engine (same sampling; greedy $greedy) = ${ratio}x (target >= 0.8) | peak GPU MiB $peak" | tee -a "$OUT/table.txt"
  grep -h "osprey: rollouts run on" "$OUT/$size-grpo.log" | tee -a "$OUT/table.txt"
  rm -rf $M
done
echo; cat "$OUT/table.txt"
