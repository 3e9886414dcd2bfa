#!/usr/bin/env bash
# Session 13's training-kernel device call (issue 23): `osprey kernel-probe --fused true` (every fused kernel forward
# and backward against the tensor path, float32/float16/bfloat16), then `tools/fused_train_bench.sh` (TYPES, default
# lora) with OSPREY_FUSED_TRAINING=1 so its "fused" rows train through the kernels' autograd functions, against
# transformers+PEFT in the same call, within TIME_LEFT seconds (default 590). Needs .dist/osprey-gpu.tar.xz and
# .dist/tokenizers.tar.xz; carry .dist. The probe's failures and the training table come last.
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
OUT=$FINAL/train OSPREY_FUSED_TRAINING=1 TYPES=${TYPES:-lora} timeout $(( $(left) - 5 )) bash tools/fused_train_bench.sh > "$FINAL/train.log" 2>&1
echo "=== probe"; grep -v "^\s*$" "$FINAL/probe.txt" 2>/dev/null | tail -45
echo "=== training"; tail -12 "$FINAL/train.log"
