#!/usr/bin/env bash
# World-size-1 NCCL smoke test for the single-GPU machine (issue 24), run from the repository root:
#   bash tools/nccl_smoke.sh
# 1. NPROC_PER_NODE=1 makes osprey the launcher of one worker; the worker loads libnccl.so.2 from the PyTorch install
#    (nvidia/nccl/lib), makes a one-rank communicator and all-reduces every step on libtorch's stream.
# 2. The same run as a plain process (no NCCL) must give bit-identical losses (float32, tiny fixture): an all-reduce
#    over one rank is the identity, so any difference is a binding bug (wrong pointer, stream or dtype).
# 3. --deepspeed zero2 through NCCL (reduce-scatter + all-gather over one rank) must match too, up to the grad-norm
#    summation order (printed as the largest relative loss difference).
# 4. OSPREY_OVERLAP_GRAD_REDUCE=1 (per-layer all-reduce during the backward pass, on NCCL's side stream, forced on for one
#    rank) with and without gradient checkpointing, and --deepspeed zero3 (prefetched all-gathers on the side stream),
#    against plain full runs.
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
# 4. The overlapped paths on the communicator's side stream: per-layer all-reduce during the backward pass (forced on for
#    one rank), with and without checkpointing, must give the plain full run's losses bit for bit; ZeRO-3's prefetched
#    all-gathers up to the grad-norm order.
rm -rf /tmp/nccl-ov /tmp/nccl-ov-nockpt /tmp/nccl-z3 /tmp/nccl-plain-nockpt
OSPREY_OVERLAP_GRAD_REDUCE=1 NPROC_PER_NODE=1 MASTER_PORT=29533 $OSP sft $COMMON --train_type full --output_dir /tmp/nccl-ov 2>&1 | grep -v "^Train" | tee /tmp/nccl-ov.log | tail -1
OSPREY_OVERLAP_GRAD_REDUCE=1 NPROC_PER_NODE=1 MASTER_PORT=29534 $OSP sft $COMMON --train_type full --gradient_checkpointing false --output_dir /tmp/nccl-ov-nockpt 2>&1 | grep -v "^Train" | tail -1
$OSP sft $COMMON --train_type full --gradient_checkpointing false --output_dir /tmp/nccl-plain-nockpt 2>&1 | grep -v "^Train" | tail -1
NPROC_PER_NODE=1 MASTER_PORT=29535 $OSP sft $COMMON --train_type full --deepspeed zero3 --output_dir /tmp/nccl-z3 2>&1 | grep -v "^Train" | tail -1
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
ov, ovn, pn, z3 = losses("/tmp/nccl-ov"), losses("/tmp/nccl-ov-nockpt"), losses("/tmp/nccl-plain-nockpt"), losses("/tmp/nccl-z3")
split = [l.strip() for l in open("/tmp/nccl-ov.log") if "during the backward pass" in l]
print("per-layer all-reduce on the side stream:", split[0] if split else "NOT REPORTED")
print("  checkpointing, bit-identical to plain full:", ov == c, ov)
print("  no checkpointing, bit-identical to plain full without:", ovn == pn, ovn)
rel3 = max(abs(x - y) / abs(x) for x, y in zip(c, z3)) if c and len(c) == len(z3) else float("nan")
print(f"ZeRO-3 world 1 (prefetched all-gathers) vs plain full: max relative loss difference {rel3:.2e} (expect < 1e-5)")
ok = nccl and a == b and rel < 1e-5 and split and ov == c and ovn == pn and bool(pn) and rel3 < 1e-5
print("PASS" if ok else "FAIL")
PY
