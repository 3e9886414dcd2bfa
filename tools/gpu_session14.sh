#!/usr/bin/env bash
# Session 14's device call (issues 16 and 23), within TIME_LEFT seconds (default 590):
#   1. `tools/structured_bench.sh` (CONC="1 32", NEW=256, ROUNDS, default 3) twice, step-by-step (OSPREY_ASYNC_DECODE=0)
#      and pipelined (OSPREY_ASYNC_DECODE=1: grammar rows now pipeline, their masks computed while the forward pass
#      runs), each pairing structured rows with free text held to the same lengths;
#   2. one OSPREY_PROFILE=1 pipelined run of json_object at 32 requests (where the step's time goes);
#   3. if at least 150 s are left: `tools/decode_vs_compiled.sh` (SIZES, default "0.5b") for issue 23.
# Needs .dist/osprey-gpu.tar.xz and .dist/tokenizers.tar.xz; carry .dist. The tables come last.
set -uo pipefail
FINAL=${OUT:-/tmp/osprey-out}; mkdir -p "$FINAL" /tmp/osp
start=$SECONDS
left() { echo $(( ${TIME_LEFT:-590} - (SECONDS - start) )); }
export DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1
for a in 0 1; do
  (( $(left) > 60 )) || break
  OUT=$FINAL/structured-async$a OSPREY_ASYNC_DECODE=$a CONC="1 32" NEW=256 ROUNDS=${ROUNDS:-3} \
    timeout $(( $(left) - 10 )) bash tools/structured_bench.sh > "$FINAL/structured-async$a.log" 2>&1
done
if (( $(left) > 60 )); then
  OSPREY_PROFILE=1 OSPREY_ASYNC_DECODE=1 timeout 50 /tmp/osp/osprey-gpu/osprey benchmark --model /tmp/qwen2-0.5b --device cuda \
    --torch_dtype bfloat16 --concurrency 32 --prompt_length 128 --max_new_tokens 256 --response_format json_object > "$FINAL/profile-jo-32-async.txt" 2>&1
fi
if (( $(left) > 150 )); then
  OUT=$FINAL/decode SIZES=${SIZES:-0.5b} TIME_LEFT=$(( $(left) - 10 )) bash tools/decode_vs_compiled.sh > "$FINAL/decode.log" 2>&1
fi
for a in 0 1; do echo "=== structured, OSPREY_ASYNC_DECODE=$a"; tail -6 "$FINAL/structured-async$a.log" 2>/dev/null; done
echo "=== profile (pipelined json_object, 32)"; grep -iE "ms|step" "$FINAL/profile-jo-32-async.txt" 2>/dev/null | tail -25
echo "=== decode"; tail -6 "$FINAL/decode.log" 2>/dev/null
echo "time used: $((SECONDS - start)) s"
