#!/usr/bin/env bash
# Session 18, one device call (about 3 minutes), after the fix of the masks' table rebuilt at every step (it waited for
# the forward pass; gpu_session18a.sh found it). Issue 16: tools/structured_bench.sh at 1 and 32 requests, five
# structured/free-text pairs per cell, step by step (default) and pipelined (OSPREY_ASYNC_DECODE=1);
# then OSPREY_PROFILE=3 (marks do
# not wait) for the person schema at 32, pipelined. Needs .dist/osprey-gpu.tar.xz and .dist/tokenizers.tar.xz; carry
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
for mode in async; do
  env $([[ $mode == async ]] && echo OSPREY_ASYNC_DECODE=1) OSPREY_PROFILE=3 timeout 40 /tmp/osp/osprey-gpu/osprey benchmark --model $M \
    --device cuda --torch_dtype bfloat16 --concurrency 32 --prompt_length 128 --max_new_tokens 256 --response_format /tmp/person.schema.json \
    > "$FINAL/profile3-$mode.txt" 2>&1
done
for mode in async; do
  echo "=== profile3 person 32, $mode (ms per decode step, engine thread)"; grep -E "^ +[0-9.]+ +\(host" "$FINAL/profile3-$mode.txt" | head -24
done
for mode in default async; do echo "=== structured, $mode"; tail -5 "$FINAL/structured-$mode.log"; done
(cd "$FINAL" && tar -czf /tmp/s18b.tgz . && rm -rf ./* && mv /tmp/s18b.tgz .)
echo "time used: $((SECONDS - start)) s"
