#!/usr/bin/env bash
# Session 18, one device call (about 2 minutes), after the fix of the masks' table rebuilt at every step (it waited for
# the forward pass; gpu_session18a.sh found it). Issue 16: tools/structured_bench.sh at 1 and 32 requests, five
# structured/free-text pairs per cell, step by step (default) and pipelined (OSPREY_ASYNC_DECODE=1).
# Needs .dist/osprey-gpu.tar.xz and .dist/tokenizers.tar.xz; carry
# .dist. The tables come last.
set -uo pipefail
FINAL=${OUT:-/tmp/osprey-out}; mkdir -p "$FINAL"
start=$SECONDS
export DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1
for mode in default async; do
  env $([[ $mode == async ]] && echo OSPREY_ASYNC_DECODE=1) OUT=$FINAL/structured-$mode CONC="1 32" PAIRS=5 \
    timeout 150 bash tools/structured_bench.sh > "$FINAL/structured-$mode.log" 2>&1
  # Each mode packed as it ends, so what ran comes back if the call is cut.
  (cd "$FINAL" && tar -czf "/tmp/s18b-$mode.tgz" "structured-$mode" "structured-$mode.log" && mv "/tmp/s18b-$mode.tgz" .)
done
for mode in default async; do echo "=== structured, $mode"; tail -5 "$FINAL/structured-$mode.log"; done
(cd "$FINAL" && rm -rf structured-default structured-async)
echo "time used: $((SECONDS - start)) s"
