#!/usr/bin/env bash
# Session 10's export device call (issue 18): the 7B-shaped AWQ export (128 x 2048 calibration tokens, group 128) and
# FP8 (block scales), then decode of bf16 and both exports through the packed-weight kernels (AWQ's dequantization kernel
# is new), with what time is left. Each stage of tools/quant_export_bench.sh writes to its own folder; everything is
# archived into $OUT/session10-awq.tar.gz and the summaries are printed last.
set -uo pipefail
FINAL=${OUT:-/tmp/osprey-out}; mkdir -p "$FINAL" /tmp/o10a
start=$SECONDS
OUT=/tmp/o10a/export STAGES=export METHODS="awq fp8" timeout 470 bash tools/quant_export_bench.sh > /tmp/o10a/export.log 2>&1
echo "export done at $((SECONDS - start)) s"
tar -czf "$FINAL/session10-awq.tar.gz" -C /tmp o10a
OUT=/tmp/o10a/decode STAGES=decode timeout $(( 575 - (SECONDS - start) )) bash tools/quant_export_bench.sh > /tmp/o10a/decode.log 2>&1
echo "decode done at $((SECONDS - start)) s"
tar -czf "$FINAL/session10-awq.tar.gz" -C /tmp o10a
echo "=== export"; tail -30 /tmp/o10a/export.log
echo "=== decode"; tail -12 /tmp/o10a/decode.log
