#!/usr/bin/env bash
# Session 13's device call (issues 23 and 16), within TIME_LEFT seconds (default 590):
#   1. `osprey kernel-probe --fused true`: every fused kernel (the cross-entropy and AdamW ones new) forward and backward
#      against the tensor path, float32/float16/bfloat16, and timed at 7B shapes;
#   2. `tools/fused_train_bench.sh` (TYPES, default lora; SKIP_D0 default 1) with OSPREY_FUSED_TRAINING=1, so its "fused"
#      rows train through the kernels' autograd functions, the fused loss head and AdamW, against transformers+PEFT;
#   3. if at least 200 s are left: `tools/structured_bench.sh` (CONC="1 32", NEW=64, ROUNDS=2) for issue 16.
# Needs .dist/osprey-gpu.tar.xz and .dist/tokenizers.tar.xz; carry .dist. The tables come last.
set -uo pipefail
FINAL=${OUT:-/tmp/osprey-out}; mkdir -p "$FINAL" /tmp/osp
start=$SECONDS
left() { echo $(( ${TIME_LEFT:-590} - (SECONDS - start) )); }
export DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1
tar -xJf .dist/osprey-gpu.tar.xz -C /tmp/osp
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$FINAL/gpu.txt"
if [[ ${SKIP_PROBE:-0} != 1 ]]; then
  timeout 150 /tmp/osp/osprey-gpu/osprey kernel-probe --fused true --batch_size 1 32 4096 > "$FINAL/probe.txt" 2>&1
  echo "rc=$?" >> "$FINAL/probe.txt"
fi
if [[ ${SKIP_TRAIN:-0} != 1 ]]; then
  OUT=$FINAL/train OSPREY_FUSED_TRAINING=1 TYPES=${TYPES:-lora} SKIP_D0=${SKIP_D0:-1} timeout $(( $(left) - 5 )) bash tools/fused_train_bench.sh > "$FINAL/train.log" 2>&1
fi
if (( $(left) > 200 )); then
  OUT=$FINAL/structured CONC="1 32" NEW=64 ROUNDS=${ROUNDS:-2} timeout $(( $(left) - 10 )) bash tools/structured_bench.sh > "$FINAL/structured.log" 2>&1
fi
echo "=== probe"; grep -v "^\s*$" "$FINAL/probe.txt" 2>/dev/null | tail -60
echo "=== training"; tail -8 "$FINAL/train.log" 2>/dev/null
echo "=== structured"; tail -6 "$FINAL/structured.log" 2>/dev/null
echo "time used: $((SECONDS - start)) s"
