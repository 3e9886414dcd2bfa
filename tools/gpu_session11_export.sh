#!/usr/bin/env bash
# Session 11's export device call (issue 18): the 7B-shaped AWQ export (128 x 2048 calibration tokens, group 128) and
# FP8 (block scales), then a GPTQ export with a short calibration (8 x 512: its only use here is decode speed, which does
# not depend on the calibration; session 8 measured the full 128 x 2048 GPTQ export at 414 s), then decode of bf16 and
# the three exports through the packed-weight kernels, each stage in the time left. Everything is archived into
# $OUT/session11-export.tar.gz and the summaries are printed last.
set -uo pipefail
FINAL=${OUT:-/tmp/osprey-out}; mkdir -p "$FINAL" /tmp/o11e
start=$SECONDS
left() { echo $(( ${BUDGET:-585} - (SECONDS - start) )); }
OUT=/tmp/o11e/export STAGES=export METHODS="awq fp8" timeout $(( $(left) - 60 )) bash tools/quant_export_bench.sh > /tmp/o11e/export.log 2>&1
echo "awq+fp8 export done at $((SECONDS - start)) s"
tar -czf "$FINAL/session11-export.tar.gz" -C /tmp o11e
if (( $(left) > 240 )); then
  OUT=/tmp/o11e/gptq STAGES=export METHODS=gptq SAMPLES=8 LEN=512 timeout $(( $(left) - 150 )) bash tools/quant_export_bench.sh > /tmp/o11e/gptq.log 2>&1
  echo "gptq (short calibration) done at $((SECONDS - start)) s"
fi
OUT=/tmp/o11e/decode STAGES=decode timeout $(left) bash tools/quant_export_bench.sh > /tmp/o11e/decode.log 2>&1
echo "decode done at $((SECONDS - start)) s"
tar -czf "$FINAL/session11-export.tar.gz" -C /tmp o11e
echo "=== export"; tail -30 /tmp/o11e/export.log
echo "=== decode"; tail -14 /tmp/o11e/decode.log
