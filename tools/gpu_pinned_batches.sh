#!/usr/bin/env bash
# Issue 23, one device call (about 6 minutes): does staging each micro-batch in pinned memory and copying it without
# waiting (OSPREY_PINNED_BATCHES=1, Runtime/HostUpload) speed up training? Session 16's OSPREY_PROFILE=3 run found the
# plain upload waiting for the GPU at every micro-batch. On the 0.5B shape (tools/fused_train_bench.sh's model and
# data), 4x2048, no checkpointing, one micro-batch a step: transformers(+PEFT) for LoRA r8 and full
# (tools/fused_train_bench.sh FUSED=1 SKIP_D0=1, which also runs Osprey with the default upload), then Osprey with
# OSPREY_PINNED_BATCHES=0/1 alternating, 25 steps each, twice; then OSPREY_PROFILE=3 each way (the busy kernel is queued
# after the step's first mark). Needs .dist/osprey-gpu.tar.xz and .dist/tokenizers.tar.xz; carry .dist.
set -uo pipefail
FINAL=${OUT:-/tmp/osprey-out}; mkdir -p "$FINAL"
W=/tmp/pinned; mkdir -p $W
OUT=$W/bench TYPES="lora full" SKIP_D0=1 FUSED=1 bash tools/fused_train_bench.sh > $W/bench.log 2>&1
export DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1
run() { # run NAME TYPE [extra env...]
  local name=$1 type=$2; shift 2
  rm -rf /tmp/bench
  env "$@" timeout 90 /tmp/osp/osprey-gpu/osprey pt --model /tmp/q05 --dataset /tmp/rand.jsonl --max_length 2048 \
    --truncation_strategy right --max_steps ${STEPS:-25} --logging_steps 5 --save_strategy no --device cuda --torch_dtype bfloat16 \
    --output_dir /tmp/bench --add_version false --gradient_accumulation_steps 1 --lr_scheduler_type constant \
    --per_device_train_batch_size 4 --gradient_checkpointing false --train_type $type > $W/$name.txt 2>&1
  cp /tmp/bench/logging.jsonl $W/$name.jsonl 2>/dev/null
}
for r in 1 2; do for type in lora full; do for p in 0 1; do run $type-pinned$p-$r $type OSPREY_PINNED_BATCHES=$p; done; done; done
for type in lora full; do for p in 0 1; do STEPS=10 run profile3-$type-pinned$p $type OSPREY_PINNED_BATCHES=$p OSPREY_PROFILE=3; done; done
tar -czf "$FINAL/pinned.tgz" -C $W .
echo "== transformers and Osprey (default upload)"; tail -6 $W/bench.log
python3 - $W <<'PY'
import json, os, sys
w = sys.argv[1]
print(f"{'run':<22}{'tokens/s (steps 6-25)':>24}{'last loss':>12}")
for t in ("lora", "full"):
    for p in (0, 1):
        for r in (1, 2):
            f = os.path.join(w, f"{t}-pinned{p}-{r}.jsonl")
            if not os.path.exists(f): continue
            rows = [json.loads(l) for l in open(f) if '"tokens_per_second"' in l]
            tps = [x["tokens_per_second"] for x in rows[1:]]
            print(f"{t + ' pinned=' + str(p) + ' #' + str(r):<22}{sum(tps) / max(1, len(tps)):>24.0f}{rows[-1]['loss']:>12.6f}")
PY
for f in $W/profile3-*.txt; do echo "== $(basename $f .txt)"; grep "steps 6-10" $f | sed 's/.*steps 6-10: //'; done
