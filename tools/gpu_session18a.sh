#!/usr/bin/env bash
# Session 18, one device call (about 8 minutes). Issue 16: where the engine thread waits in a constrained step (the
# session 17a profile showed 1.6 ms a step inside "masks to the device", which only queues work): OSPREY_PROFILE=3
# (marks do not wait) for both formats at 32 requests, step by step and pipelined (OSPREY_ASYNC_DECODE=1), with the
# mask upload split into its staging copy, the queued copy and the unpack, through libtorch's `to` and (driver) through
# the CUDA driver's asynchronous copy (OSPREY_MASK_UPLOAD=driver). Then issue 23: tools/gpu_pinned_batches.sh.
# As run in session 18 (pack from 1ad1172); the driver copy and the split marks were removed after it (no difference;
# the wait was the bit-value table, benchmarks/session18-h100.md), so the driver modes now run the default upload.
# Needs .dist/osprey-gpu.tar.xz and .dist/tokenizers.tar.xz; carry .dist. The tables come last.
set -uo pipefail
FINAL=${OUT:-/tmp/osprey-out}; mkdir -p "$FINAL"
start=$SECONDS
modes="default async driver async+driver"
for mode in $modes; do
  env $([[ $mode == async* ]] && echo OSPREY_ASYNC_DECODE=1) $([[ $mode == *driver ]] && echo OSPREY_MASK_UPLOAD=driver) OSPREY_PROFILE=3 OUT=$FINAL/diag-$mode CONC=32 PAIRS=2 \
    timeout 90 bash tools/structured_bench.sh > "$FINAL/diag-$mode.log" 2>&1
done
OUT=$FINAL timeout 420 bash tools/gpu_pinned_batches.sh > "$FINAL/pinned.log" 2>&1
for mode in $modes; do for f in json_object person; do
  echo "=== $mode $f (ms per decode step, engine thread, marks not waiting)"
  awk '/^profile/{n++} n==3' "$FINAL/diag-$mode/structured-$f.txt" | grep -E "^ +[0-9.]+ +\(host" | head -16
  awk '/^profile/{n++} n==4' "$FINAL/diag-$mode/structured-$f.txt" | grep -E "^ +[0-9.]+ +\(host" | head -3 | sed 's/^/  plain: /'
done; done
tail -30 "$FINAL/pinned.log"
(cd "$FINAL" && tar -czf /tmp/s18a.tgz . && rm -rf ./* && mv /tmp/s18a.tgz .)
echo "time used: $((SECONDS - start)) s"
