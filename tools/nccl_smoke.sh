#!/usr/bin/env bash
# World-size-1 NCCL smoke test for the single-GPU machine (issue 24), run from the repository root:
#   bash tools/nccl_smoke.sh
# 1. NPROC_PER_NODE=1 makes osprey the launcher of one worker; the worker loads libnccl.so.2 from the PyTorch install
#    (nvidia/nccl/lib), makes a one-rank communicator and all-reduces every step on libtorch's stream.
# 2. The same run as a plain process (no NCCL) must give bit-identical losses (float32, tiny fixture): an all-reduce
#    over one rank is the identity, so any difference is a binding bug (wrong pointer, stream or dtype).
# 3. --deepspeed zero2 through NCCL (reduce-scatter + all-gather over one rank) must match too, up to the grad-norm
#    summation order (printed as the largest relative loss difference).
# Needs .dist/osprey-gpu.tar.xz (tools/pack_gpu.sh). Writes $OUT/nccl-smoke.txt.
set -uo pipefail
OUT=${OUT:-/tmp/osprey-out}; mkdir -p "$OUT" /tmp/osp
export DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1
[[ -x /tmp/osp/osprey-gpu/osprey ]] || tar -xJf .dist/osprey-gpu.tar.xz -C /tmp/osp
OSP=${OSP:-/tmp/osp/osprey-gpu/osprey}
COMMON="--model tests/fixtures/parity/qwen2 --dataset examples/datasets/memorize.jsonl --max_steps 6 --per_device_train_batch_size 1 \
  --gradient_accumulation_steps 2 --logging_steps 1 --save_steps 3 --device cuda --torch_dtype float32 --add_version false --load_from_cache_file false"
rm -rf /tmp/nccl-plain /tmp/nccl-dp /tmp/nccl-z2
$OSP sft $COMMON --output_dir /tmp/nccl-plain 2>&1 | grep -v "^Train" | tail -2
NPROC_PER_NODE=1 MASTER_PORT=29531 $OSP sft $COMMON --output_dir /tmp/nccl-dp 2>&1 | grep -v "^Train" | tee /tmp/nccl-dp.log | tail -4
NPROC_PER_NODE=1 MASTER_PORT=29532 $OSP sft $COMMON --train_type full --deepspeed zero2 --output_dir /tmp/nccl-z2 2>&1 | grep -v "^Train" | tail -2
$OSP sft $COMMON --train_type full --output_dir /tmp/nccl-plain-full 2>&1 | grep -v "^Train" | tail -1
python3 - <<'PY' | tee "$OUT/nccl-smoke.txt"
import json
def losses(d): return [json.loads(l)["loss"] for l in open(d + "/logging.jsonl") if '"loss"' in l]
nccl = any("NCCL" in l for l in open("/tmp/nccl-dp.log"))
a, b = losses("/tmp/nccl-plain"), losses("/tmp/nccl-dp")
c, d = losses("/tmp/nccl-plain-full"), losses("/tmp/nccl-z2")
print("nccl initialised:", nccl)
print("DP world 1 over NCCL, bit-identical to plain:", a == b, a, b)
rel = max(abs(x - y) / abs(x) for x, y in zip(c, d)) if c and len(c) == len(d) else float("nan")
print(f"ZeRO-2 world 1 over NCCL vs plain full: max relative loss difference {rel:.2e} (expect < 1e-5)")
print("PASS" if nccl and a == b and rel < 1e-5 else "FAIL")
PY
