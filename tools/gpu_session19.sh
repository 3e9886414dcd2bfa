#!/usr/bin/env bash
# The call planned at the end of session 18 (its device time ran out before it could run), about 5 minutes. Issue 16:
# structured outputs after the fix of the masks' table rebuilt at every step (tools/structured_bench.sh, 1 and 32
# requests, five structured/free-text pairs per cell), step by step (default) and pipelined (OSPREY_ASYNC_DECODE=1).
# Issue 23: free-text decode (osprey benchmark --concurrency 1 32, 128-token prompts, 256 new) both ways, twice, with the
# token digests (a round's requests are now queued at once, so equal digests must hold at 32 too); OSPREY_PROFILE=3 of
# the pipelined person schema at 32; and OSPREY_PROFILE=3 of LoRA training (10 steps) with the forward's new marks, to
# find what in it waits for the GPU. Needs .dist/osprey-gpu.tar.xz and .dist/tokenizers.tar.xz; carry .dist. Each
# stage is packed as it ends, so what ran comes back if the call is cut; the tables come last.
set -uo pipefail
FINAL=${OUT:-/tmp/osprey-out}; mkdir -p "$FINAL"
start=$SECONDS
export DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1
W=/tmp/s19; mkdir -p $W
for mode in default async; do
  env $([[ $mode == async ]] && echo OSPREY_ASYNC_DECODE=1) OUT=$W/structured-$mode CONC="1 32" PAIRS=5 \
    timeout 150 bash tools/structured_bench.sh > "$W/structured-$mode.log" 2>&1
done
tar -czf "$FINAL/structured.tgz" -C $W .
M=/tmp/qwen2-0.5b
OSP=/tmp/osp/osprey-gpu/osprey
for r in 1 2; do for mode in default async; do
  env $([[ $mode == async ]] && echo OSPREY_ASYNC_DECODE=1) timeout 60 $OSP benchmark --model $M --device cuda \
    --torch_dtype bfloat16 --concurrency 1 32 --prompt_length 128 --max_new_tokens 256 > "$W/decode-$mode-$r.txt" 2>&1
done; done
OSPREY_ASYNC_DECODE=1 OSPREY_PROFILE=3 timeout 40 $OSP benchmark --model $M --device cuda --torch_dtype bfloat16 --concurrency 32 \
  --prompt_length 128 --max_new_tokens 256 --response_format /tmp/person.schema.json > "$W/profile3-async-person.txt" 2>&1
python3 - <<'PY'
import json, random
random.seed(0)
words = "the of and to in is was for on that with as by at from it an be this which or are have not had but were one".split()
with open("/tmp/rand.jsonl", "w") as f:
    for _ in range(60):
        f.write(json.dumps({"text": " ".join(random.choice(words) for _ in range(3000))}) + "\n")
PY
rm -rf /tmp/bench
OSPREY_PROFILE=3 timeout 60 $OSP pt --model $M --dataset /tmp/rand.jsonl --max_length 2048 --truncation_strategy right --max_steps 10 \
  --logging_steps 5 --save_strategy no --device cuda --torch_dtype bfloat16 --output_dir /tmp/bench --add_version false \
  --gradient_accumulation_steps 1 --lr_scheduler_type constant --per_device_train_batch_size 4 --gradient_checkpointing false \
  --train_type lora > "$W/lora-profile3.txt" 2>&1
tar -czf "$FINAL/all.tgz" -C $W . && rm -f "$FINAL/structured.tgz"
echo "=== LoRA training, OSPREY_PROFILE=3 (ms a step, host, device 300 ms behind after the first mark)"
grep "steps 6-10" "$W/lora-profile3.txt" | sed 's/.*steps 6-10: //'
echo "=== profile3 person 32, pipelined (ms per decode step, engine thread)"; grep -E "^ +[0-9.]+ +\(host" "$W/profile3-async-person.txt" | head -16
for r in 1 2; do for mode in default async; do
  echo "=== free-text decode, $mode, run $r"; grep -E "^ +(1|32) +128|digest" "$W/decode-$mode-$r.txt"
done; done
for mode in default async; do echo "=== structured, $mode"; tail -5 "$W/structured-$mode.log"; done
echo "time used: $((SECONDS - start)) s"
