#!/usr/bin/env bash
# Session 18, one device call (about 4 minutes), after the fix of the masks' table rebuilt at every step (it waited for
# the forward pass; gpu_session18a.sh found it). Issue 16: tools/structured_bench.sh at 1 and 32 requests, five
# structured/free-text pairs per cell, step by step (default) and pipelined (OSPREY_ASYNC_DECODE=1); issue 23: free-text
# decode (osprey benchmark --concurrency 1 32, 128-token prompts, 256 new) both ways; then OSPREY_PROFILE=3 (marks do
# not wait) for the person schema at 32 both ways, and for LoRA training (10 steps, pinned batches off and on). Needs .dist/osprey-gpu.tar.xz and .dist/tokenizers.tar.xz; carry
# .dist. The tables come last.
set -uo pipefail
FINAL=${OUT:-/tmp/osprey-out}; mkdir -p "$FINAL"
start=$SECONDS
export DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1
for mode in default async; do
  env $([[ $mode == async ]] && echo OSPREY_ASYNC_DECODE=1) OUT=$FINAL/structured-$mode CONC="1 32" PAIRS=5 \
    timeout 150 bash tools/structured_bench.sh > "$FINAL/structured-$mode.log" 2>&1
done
M=/tmp/qwen2-0.5b
for r in 1; do for mode in default async; do
  env $([[ $mode == async ]] && echo OSPREY_ASYNC_DECODE=1) timeout 60 /tmp/osp/osprey-gpu/osprey benchmark --model $M --device cuda \
    --torch_dtype bfloat16 --concurrency 1 32 --prompt_length 128 --max_new_tokens 256 > "$FINAL/decode-$mode-$r.txt" 2>&1
done; done
for mode in default async; do
  env $([[ $mode == async ]] && echo OSPREY_ASYNC_DECODE=1) OSPREY_PROFILE=3 timeout 40 /tmp/osp/osprey-gpu/osprey benchmark --model $M \
    --device cuda --torch_dtype bfloat16 --concurrency 32 --prompt_length 128 --max_new_tokens 256 --response_format /tmp/person.schema.json \
    > "$FINAL/profile3-$mode.txt" 2>&1
done
# Issue 23: where LoRA training's forward waits for the device (session 18a: the profile's 300 ms lead was taken in
# "layers forward" for LoRA, with and without OSPREY_PINNED_BATCHES; the forward now has finer marks).
python3 - <<'PY'
import json, random
random.seed(0)
words = "the of and to in is was for on that with as by at from it an be this which or are have not had but were one".split()
with open("/tmp/rand.jsonl", "w") as f:
    for _ in range(60):
        f.write(json.dumps({"text": " ".join(random.choice(words) for _ in range(3000))}) + "\n")
PY
for p in 0 1; do
  rm -rf /tmp/bench
  OSPREY_PINNED_BATCHES=$p OSPREY_PROFILE=3 timeout 60 /tmp/osp/osprey-gpu/osprey pt --model $M --dataset /tmp/rand.jsonl --max_length 2048 \
    --truncation_strategy right --max_steps 10 --logging_steps 5 --save_strategy no --device cuda --torch_dtype bfloat16 \
    --output_dir /tmp/bench --add_version false --gradient_accumulation_steps 1 --lr_scheduler_type constant \
    --per_device_train_batch_size 4 --gradient_checkpointing false --train_type lora > "$FINAL/lora-profile3-pinned$p.txt" 2>&1
done
for p in 0 1; do echo "=== LoRA profile3, pinned batches $p"; grep "steps 6-10" "$FINAL/lora-profile3-pinned$p.txt" | sed 's/.*steps 6-10: //'; done
for mode in default async; do
  echo "=== profile3 person 32, $mode (ms per decode step, engine thread)"; grep -E "^ +[0-9.]+ +\(host" "$FINAL/profile3-$mode.txt" | head -24
done
for r in 1; do for mode in default async; do
  echo "=== free-text decode, $mode, run $r"; grep -E "^ +(1|32) +128|digest" "$FINAL/decode-$mode-$r.txt"
done; done
for mode in default async; do echo "=== structured, $mode"; tail -5 "$FINAL/structured-$mode.log"; done
(cd "$FINAL" && tar -czf /tmp/s18b.tgz . && rm -rf ./* && mv /tmp/s18b.tgz .)
echo "time used: $((SECONDS - start)) s"
