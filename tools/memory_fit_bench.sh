#!/usr/bin/env bash
# One device call for issue 17 item 5 (memory-fit advisor), run from the repository root on the GPU machine:
# a random 7B-shaped Qwen2 (tools/make_bench_model.py), `osprey estimate` for each row, then a few training steps of
# the same row with `osprey pt`; prints the predicted peak beside the measured one and tokens/s, a table last.
#   (a) bf16 LoRA r8 all-linear, batch 1x2048, gradient checkpointing
#   (b) QLoRA: NF4 + double quant, same adapter and batch, gradient checkpointing
# Measured peak: the highest nvidia-smi reading while the process ran, polled every 100 ms (includes the CUDA context
# and the caching allocator's reserve, as the estimate does), and the largest memory_gib in logging.jsonl (NVML at
# each logging step). Needs .dist/osprey-gpu.tar.xz (tools/pack_gpu.sh) and .dist/tokenizers.tar.xz (the npm
# tokenizers, for a real 151k vocabulary), as tools/gpu_sft.sh does. MAX_STEPS (default 3) steps per row.
set -uo pipefail
OUT=${OUT:-/tmp/osprey-out}; mkdir -p "$OUT" /tmp/osp /tmp/t
export DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1 PYTHONUNBUFFERED=1
[[ -x /tmp/osp/osprey-gpu/osprey ]] || tar -xJf .dist/osprey-gpu.tar.xz -C /tmp/osp
[[ -d /tmp/t/tokenizers ]] || tar -xJf .dist/tokenizers.tar.xz -C /tmp/t
OSP=/tmp/osp/osprey-gpu/osprey
STEPS=${MAX_STEPS:-3}
M=/tmp/q7mem
[[ -f $M/config.json ]] || python3 tools/make_bench_model.py --out $M --size 7b 2>&1 | grep wrote
cp /tmp/t/tokenizers/qwen3/tokenizer.json /tmp/t/tokenizers/qwen3/tokenizer_config.json $M/
python3 - <<'PY'
import json, random
random.seed(0)
words = "the of and to in is was for on that with as by at from it an be this which or are have not had but were one their all".split()
with open("/tmp/memfit.jsonl", "w") as f:
    for _ in range(16):
        f.write(json.dumps({"text": " ".join(random.choice(words) for _ in range(3000))}) + "\n")
PY
COMMON="--per_device_train_batch_size 1 --max_length 2048 --lora_rank 8 --target_modules all-linear --gradient_checkpointing true --torch_dtype bfloat16"
: > "$OUT/memory_fit_rows.txt"
row() { # $1 name, rest: extra flags
  local name=$1; shift
  echo "== $name: osprey estimate"
  $OSP estimate --model $M $COMMON "$@" | tee "$OUT/estimate-$name.txt"
  local predicted; predicted=$(awk '/^peak/ {print $2}' "$OUT/estimate-$name.txt")
  echo "== $name: osprey pt, $STEPS steps"
  rm -rf /tmp/memfit-$name
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 > /tmp/mem-$name.log & local pid=$!
  $OSP pt --model $M --dataset /tmp/memfit.jsonl --truncation_strategy right --max_steps $STEPS --logging_steps 1 \
    --save_strategy no --device cuda --output_dir /tmp/memfit-$name --add_version false --gradient_accumulation_steps 1 \
    --lr_scheduler_type constant $COMMON "$@" 2>&1 | grep -v "^Train" | grep -v "^frame #" | tail -6
  kill $pid; sleep 0.3
  cp /tmp/memfit-$name/logging.jsonl "$OUT/logging-$name.jsonl" 2>/dev/null
  python3 - "$name" "$predicted" /tmp/mem-$name.log /tmp/memfit-$name/logging.jsonl >> "$OUT/memory_fit_rows.txt" <<'PY'
import json, sys
name, predicted, memlog, log = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4]
mib = [int(l) for l in open(memlog) if l.strip().isdigit()]
peak = (max(mib) - min(mib)) / 1024  # above what the GPU held before the process started
try:
    rows = [json.loads(l) for l in open(log) if '"tokens_per_second"' in l]
except OSError:
    rows = []
logged = max((r.get("memory_gib", 0) for r in rows), default=0)
tps = rows[-1]["tokens_per_second"] if rows else 0
err = (predicted - peak) / peak * 100 if peak else float("nan")
print(f"{name:<22} {predicted:>9.2f} {peak:>12.2f} {logged:>11.2f} {err:>+8.1f}% {tps:>10.0f}")
PY
}
row bf16-lora
row qlora-nf4-dq --quant_method bnb --quant_bits 4 --bnb_4bit_quant_type nf4 --bnb_4bit_use_double_quant true
echo
echo "7B-shaped Qwen2, LoRA r8 all-linear, batch 1x2048, gradient checkpointing, $STEPS steps ($(nvidia-smi --query-gpu=name --format=csv,noheader | head -1))"
printf "%-22s %9s %12s %11s %9s %10s\n" row "pred GiB" "nvsmi GiB" "log GiB" "error" "tokens/s"
cat "$OUT/memory_fit_rows.txt"
