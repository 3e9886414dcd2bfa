#!/usr/bin/env bash
# Session 15, first device call, within TIME_LEFT seconds (default 590):
#   1. issue 16: tools/structured_bench.sh step by step (the default engine), CONC="32 1" NEW=256 ROUNDS=3, after the
#      closed-object change of session 14 (the person schema at 32 requests was 0.879 before it);
#   2. issue 23: tools/decode_vs_compiled.sh SIZES=7b with the time left (the 7B shape has never fit a call).
# Needs .dist/osprey-gpu.tar.xz and .dist/tokenizers.tar.xz; carry .dist. The tables come last.
set -uo pipefail
FINAL=${OUT:-/tmp/osprey-out}; mkdir -p "$FINAL"
start=$SECONDS
left() { echo $(( ${TIME_LEFT:-590} - (SECONDS - start) )); }
OUT=$FINAL/structured CONC="32 1" NEW=256 ROUNDS=${ROUNDS:-3} timeout $(( $(left) - 200 )) bash tools/structured_bench.sh > "$FINAL/structured.log" 2>&1
if (( $(left) > 200 )); then
  OUT=$FINAL/decode7b SIZES=7b TIME_LEFT=$(( $(left) - 10 )) bash tools/decode_vs_compiled.sh > "$FINAL/decode7b.log" 2>&1
fi
echo "=== structured"; tail -8 "$FINAL/structured.log"
echo "=== decode 7b"; tail -5 "$FINAL/decode7b.log" 2>/dev/null
echo "time used: $((SECONDS - start)) s"
