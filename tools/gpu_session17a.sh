#!/usr/bin/env bash
# The serving call planned in session 17 (no device was lent then), within TIME_LEFT seconds (default 560). Issue 16's
# structured outputs at 32 requests (and at 1 under the default setting: those cells have been above 0.9 every call since
# session 14) and issue 23's
# decode inputs, on the 0.5B shape (tools/structured_bench.sh's model and Qwen3 tokenizer), NEW=256:
#   for each engine setting below, tools/structured_bench.sh with PAIRS=5 (five structured/free-text pairs one after
#   another in one process per format; the median of the five is the cell), each round also printing its .NET side:
#     default | OSPREY_PINNED_DECODE=1 | OSPREY_ASYNC_DECODE=1 | both;
#   then free-text decode (osprey benchmark --concurrency 1 32) under the same four settings, with the token digests
#   (equal digests = equal greedy outputs, the pinned/pipelined paths' correctness check on the GPU);
#   then OSPREY_PROFILE=3 (no mark waits: each phase is the engine thread's real time) for both formats at 32.
# Needs .dist/osprey-gpu.tar.xz and .dist/tokenizers.tar.xz; carry .dist. The tables come last.
set -uo pipefail
FINAL=${OUT:-/tmp/osprey-out}; mkdir -p "$FINAL"
start=$SECONDS
left() { echo $(( ${TIME_LEFT:-560} - (SECONDS - start) )); }
settings=("default:" "pinned:OSPREY_PINNED_DECODE=1" "async:OSPREY_ASYNC_DECODE=1" "async+pinned:OSPREY_ASYNC_DECODE=1 OSPREY_PINNED_DECODE=1")
for s in "${settings[@]}"; do
  name=${s%%:*}; envs=${s#*:}
  (( $(left) > 200 )) || break
  # The default setting's constrained rows are kept (OSPREY_BENCH_TOKENS) to decode and replay off the GPU.
  env $envs $([[ $name == default ]] && echo OSPREY_BENCH_TOKENS=$FINAL/rows-default.jsonl) OUT=$FINAL/structured-$name CONC="$([[ $name == default ]] && echo 1 32 || echo 32)" PAIRS=5 \
    timeout $([[ $name == default ]] && echo 140 || echo 100) bash tools/structured_bench.sh > "$FINAL/structured-$name.log" 2>&1
done
M=/tmp/qwen2-0.5b
for s in "${settings[@]}"; do
  name=${s%%:*}; envs=${s#*:}
  (( $(left) > 80 )) || break
  env $envs timeout 60 /tmp/osp/osprey-gpu/osprey benchmark --model $M --device cuda --torch_dtype bfloat16 --concurrency 1 32 \
    --prompt_length 128 --max_new_tokens 256 > "$FINAL/decode-$name.txt" 2>&1
done
for f in json_object /tmp/person.schema.json; do
  (( $(left) > 40 )) || break
  OSPREY_PROFILE=3 timeout 40 /tmp/osp/osprey-gpu/osprey benchmark --model $M --device cuda --torch_dtype bfloat16 --concurrency 32 \
    --prompt_length 128 --max_new_tokens 256 --response_format "$f" > "$FINAL/profile3-$(basename $f .schema.json).txt" 2>&1
done
for f in "$FINAL"/profile3-*.txt; do echo "=== $(basename $f .txt)"; grep -E "^(profile|  )|host:|structured/plain" "$f"; done
for s in "${settings[@]}"; do
  name=${s%%:*}
  echo "=== free-text decode, $name"; grep -E "^ +(1|32) +128|digest" "$FINAL/decode-$name.txt"
done
for s in "${settings[@]}"; do
  name=${s%%:*}
  echo "=== structured, $name: rounds per digest"; grep -h "digest" "$FINAL/structured-$name"/structured-*.txt 2>/dev/null | awk '{print $3}' | sort | uniq -c
  echo "=== structured, $name: .NET side of the first pair"; grep -h -m2 "host:" "$FINAL/structured-$name"/structured-*.txt 2>/dev/null
  echo "=== structured, $name"; tail -3 "$FINAL/structured-$name.log"
done
(cd "$FINAL" && tar -czf /tmp/session17a.tgz . && rm -rf ./* && mv /tmp/session17a.tgz .)
echo "time used: $((SECONDS - start)) s"
