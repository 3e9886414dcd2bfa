#!/usr/bin/env bash
# Issue 23, one device call (about 4 minutes): DPO LoRA against transformers+PEFT (TRL's computation,
# tools/bench_dpo_reference.py) on the 0.5B shape, 4 pairs of ~1000-token responses a step (tools/gpu_sft.sh PART=dpo05's
# data and flags), with Osprey's micro-batch uploads plain and pinned (OSPREY_PINNED_BATCHES=0/1, alternating, twice).
# Since session 17 the preference steps read their metrics once per micro-batch after the backward pass is queued
# (before: once per metric between forward and backward, each a wait for the device). Compare the ratio with the SFT
# LoRA ratio of tools/gpu_pinned_batches.sh in the same session (issue 23: DPO at least SFT's speed-up).
# Needs .dist/osprey-gpu.tar.xz and .dist/tokenizers.tar.xz; carry .dist. The table comes last.
set -uo pipefail
FINAL=${OUT:-/tmp/osprey-out}; mkdir -p "$FINAL" /tmp/osp /tmp/t
W=/tmp/dpo-pinned; mkdir -p $W
export DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1 PYTHONUNBUFFERED=1
[[ -x /tmp/osp/osprey-gpu/osprey ]] || tar -xJf .dist/osprey-gpu.tar.xz -C /tmp/osp
[[ -d /tmp/t/tokenizers ]] || tar -xJf .dist/tokenizers.tar.xz -C /tmp/t
OSP=/tmp/osp/osprey-gpu/osprey
[[ -f /tmp/q05/config.json ]] || python3 tools/make_bench_model.py --out /tmp/q05 2>&1 | grep wrote
cp /tmp/t/tokenizers/qwen3/tokenizer.json /tmp/t/tokenizers/qwen3/tokenizer_config.json /tmp/q05/
python3 tools/make_bench_pref_data.py /tmp/pref.jsonl
timeout 150 python3 tools/bench_dpo_reference.py --model /tmp/q05 --data /tmp/pref.jsonl --batch 4 --max_length 2048 --steps 20 --warmup 5 \
  --out $W/hf-dpo05.json > $W/hf-dpo05.txt 2>&1 || tail -5 $W/hf-dpo05.txt
for r in 1 2; do for p in 0 1; do
  rm -rf /tmp/bench-dpo05
  OSPREY_PINNED_BATCHES=$p timeout 90 $OSP rlhf --rlhf_type dpo --model /tmp/q05 --dataset /tmp/pref.jsonl --max_length 2048 --max_steps 25 \
    --logging_steps 5 --save_strategy no --device cuda --torch_dtype bfloat16 --output_dir /tmp/bench-dpo05 --add_version false \
    --per_device_train_batch_size 4 --gradient_accumulation_steps 1 --gradient_checkpointing false --lr_scheduler_type constant > $W/dpo-pinned$p-$r.txt 2>&1
  cp /tmp/bench-dpo05/logging.jsonl $W/dpo-pinned$p-$r.jsonl 2>/dev/null
done; done
tar -czf "$FINAL/dpo-pinned.tgz" -C $W .
python3 - $W <<'PY'
import json, os, sys
w = sys.argv[1]
try:
    r = json.load(open(os.path.join(w, "hf-dpo05.json"))); hf = r["tokens_per_s"]
    print(f"transformers+PEFT DPO: {hf:.0f} tokens/s ({r['ms_per_step']} ms/step)")
except Exception as e:
    hf = None; print(f"transformers+PEFT DPO: no result ({e})")
print(f"{'run':<16}{'tokens/s (steps 6-25)':>24}{'vs HF':>8}{'last loss':>12}")
for p in (0, 1):
    for n in (1, 2):
        f = os.path.join(w, f"dpo-pinned{p}-{n}.jsonl")
        if not os.path.exists(f): continue
        rows = [json.loads(l) for l in open(f) if '"tokens_per_second"' in l]
        tps = sum(x["tokens_per_second"] for x in rows[1:]) / max(1, len(rows) - 1)
        print(f"{'pinned=' + str(p) + ' #' + str(n):<16}{tps:>24.0f}{(tps / hf if hf else float('nan')):>8.2f}{rows[-1]['loss']:>12.6f}")
PY
