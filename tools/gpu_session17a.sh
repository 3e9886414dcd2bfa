#!/usr/bin/env bash
# Session 17's structured-outputs call (issue 16), within TIME_LEFT seconds (default 560). At 32 requests only (the
# 1-request cells have been above 0.9 every call since session 14), NEW=256, each structured round against its own
# free-text round; every round now also prints its .NET side (allocations, collections, pause time, thread-pool items):
#   1. default engine, 3 rounds per format (tools/structured_bench.sh);
#   2. OSPREY_PROFILE=3 (no engine marks wait for the device: each phase's time is the engine thread's real time,
#      "sampling, tokens to the host" includes the wait for the device), one round per format;
#   3. pipelined decode (OSPREY_ASYNC_DECODE=1), 2 rounds per format;
#   4. workstation GC (DOTNET_gcServer=0; the CLI ships with server GC), 2 rounds per format.
# Needs .dist/osprey-gpu.tar.xz and .dist/tokenizers.tar.xz; carry .dist. The tables come last.
set -uo pipefail
FINAL=${OUT:-/tmp/osprey-out}; mkdir -p "$FINAL"
start=$SECONDS
left() { echo $(( ${TIME_LEFT:-560} - (SECONDS - start) )); }
OUT=$FINAL/default CONC=32 ROUNDS=3 timeout $(( $(left) - 300 )) bash tools/structured_bench.sh > "$FINAL/default.log" 2>&1
M=/tmp/qwen2-0.5b
for f in json_object /tmp/person.schema.json; do
  (( $(left) > 240 )) || break
  OSPREY_PROFILE=3 timeout 60 /tmp/osp/osprey-gpu/osprey benchmark --model $M --device cuda --torch_dtype bfloat16 --concurrency 32 \
    --prompt_length 128 --max_new_tokens 256 --response_format "$f" > "$FINAL/profile3-$(basename $f .schema.json).txt" 2>&1
done
(( $(left) > 160 )) && OSPREY_ASYNC_DECODE=1 OUT=$FINAL/async CONC=32 ROUNDS=2 timeout $(( $(left) - 90 )) bash tools/structured_bench.sh > "$FINAL/async.log" 2>&1
(( $(left) > 70 )) && DOTNET_gcServer=0 OUT=$FINAL/wsgc CONC=32 ROUNDS=2 timeout $(( $(left) - 10 )) bash tools/structured_bench.sh > "$FINAL/wsgc.log" 2>&1
for f in "$FINAL"/profile3-*.txt; do echo "=== $(basename $f .txt)"; grep -E "^(profile|  )|host:|structured/plain" "$f"; done
for r in default async wsgc; do
  echo "=== $r: host lines"; grep -h "host:" "$FINAL/$r"/structured-*.txt 2>/dev/null
  echo "=== $r"; tail -4 "$FINAL/$r.log"
done
(cd "$FINAL" && tar -czf /tmp/session17a.tgz . && rm -rf ./* && mv /tmp/session17a.tgz .)
echo "time used: $((SECONDS - start)) s"
