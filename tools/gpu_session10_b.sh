#!/usr/bin/env bash
# Session 10's second device call: issue 20's GRPO benchmark on the 7B-shaped model (tools/grpo_bench.sh SIZES=7b), then,
# with the time left, issue 22's pipeline check (tools/vl_bench.sh QUICK=1: a 2-layer Qwen2-VL, SFT against
# transformers+PEFT and image-chat serving; its figures mean nothing, it shows the pipeline runs on the GPU).
# Everything is archived into $OUT/session10-b.tar.gz; the tables are printed last.
set -uo pipefail
FINAL=${OUT:-/tmp/osprey-out}; mkdir -p "$FINAL" /tmp/o10b
export DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1
start=$SECONDS
pack() { tar -czf "$FINAL/session10-b.tar.gz" -C /tmp o10b; }
OUT=/tmp/o10b/grpo SIZES=7b timeout 400 bash tools/grpo_bench.sh > /tmp/o10b/grpo.log 2>&1
echo "grpo 7b done at $((SECONDS - start)) s"; pack
left=$(( 570 - (SECONDS - start) ))
if (( left > 90 )); then
  OUT=/tmp/o10b/vl QUICK=1 WARM=1 STEPS=2 CONC="1 4" NEW=32 timeout $left bash tools/vl_bench.sh > /tmp/o10b/vl.log 2>&1
  echo "vl quick done at $((SECONDS - start)) s"; pack
fi
echo "=== grpo"; tail -4 /tmp/o10b/grpo.log
echo "=== vl"; tail -25 /tmp/o10b/vl.log 2>/dev/null
