#!/usr/bin/env bash
# Session 12's structured-outputs device call (issue 16), after whitespace runs stopped walking the vocabulary:
# `CONC="1 32" NEW=64 ROUNDS=3 tools/structured_bench.sh` (the issue's ratios, median of 3 runs), then one OSPREY_PROFILE=1 run of the person
# schema at 32 requests (where the step's time goes: host masks, mask upload, emit) in the time left (TIME_LEFT
# seconds from the call's start, default 280). Needs .dist/osprey-gpu.tar.xz and .dist/tokenizers.tar.xz; carry .dist.
set -uo pipefail
FINAL=${OUT:-/tmp/osprey-out}; mkdir -p "$FINAL/bench"
start=$SECONDS
left() { echo $(( ${TIME_LEFT:-280} - (SECONDS - start) )); }
OUT=$FINAL/bench CONC="1 32" NEW=64 ROUNDS=${ROUNDS:-3} timeout $(( $(left) - 20 )) bash tools/structured_bench.sh > "$FINAL/bench.log" 2>&1
if (( $(left) > 40 )); then
  export DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1
  OSPREY_PROFILE=1 timeout $(( $(left) - 5 )) /tmp/osp/osprey-gpu/osprey benchmark --model /tmp/qwen2-0.5b --device cuda \
    --torch_dtype bfloat16 --concurrency 32 --prompt_length 128 --max_new_tokens 64 --response_format /tmp/person.schema.json \
    > "$FINAL/profile-person-32.txt" 2>&1
fi
echo "=== profile (person schema, 32 requests)"; grep -v "^\s*$" "$FINAL/profile-person-32.txt" 2>/dev/null | tail -32
echo "=== ratios"; tail -5 "$FINAL/bench.log"
