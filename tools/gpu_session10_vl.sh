#!/usr/bin/env bash
# Session 10's VL device call (issue 22): tools/vl_bench.sh with QUICK=1 (2 layers, 2 vision blocks: the pipeline end
# to end, sft and serve, in a few minutes), then, if the quick run produced both SFT rows, the 7B-shaped STAGES=sft run
# in the time left (TIME_LEFT seconds, default 560 from the call's start). Everything is packed into
# $OUT/session10-vl.tar.gz; the summaries are printed last. Needs the full pack (with SkiaSharp) and .dist/tokenizers.tar.xz.
set -uo pipefail
FINAL=${OUT:-/tmp/osprey-out}; mkdir -p "$FINAL" /tmp/o10v
start=$SECONDS
OUT=/tmp/o10v/quick QUICK=1 WARM=1 STEPS=2 CONC="1 4" NEW=32 timeout 240 bash tools/vl_bench.sh > /tmp/o10v/quick.log 2>&1
echo "quick done at $((SECONDS - start)) s"
if grep -q "^osprey " /tmp/o10v/quick/summary.txt 2>/dev/null && grep -q "^transformers+PEFT" /tmp/o10v/quick/summary.txt; then
  left=$(( ${TIME_LEFT:-560} - (SECONDS - start) ))
  OUT=/tmp/o10v/full STAGES=${FULL_STAGES:-sft} timeout $left bash tools/vl_bench.sh > /tmp/o10v/full.log 2>&1
  echo "full done at $((SECONDS - start)) s (rc $?)"
fi
tar -czf "$FINAL/session10-vl.tar.gz" -C /tmp o10v
echo "=== quick"; tail -25 /tmp/o10v/quick.log
echo "=== full"; tail -25 /tmp/o10v/full.log 2>/dev/null
