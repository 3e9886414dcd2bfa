#!/usr/bin/env bash
# Issue 23, one device call: training speed with the fused CUDA kernels on and off (OSPREY_FUSED_KERNELS=0 is the
# tensor-op path), against transformers+PEFT (tools/bench_sft_reference.py) in the same call, on the 0.5B-shaped Qwen2
# (random bf16 weights, tools/make_bench_model.py): LoRA r8 all-linear 4x2048 and full fine-tuning 4x2048, no gradient
# checkpointing, 25 steps (the first 5 are warm-up). Peak GPU memory polled with nvidia-smi for every run (one meter for
# both stacks). Needs .dist/osprey-gpu.tar.xz and .dist/tokenizers.tar.xz; carry .dist. TYPES="lora full" picks rows;
# FUSED="0 1" (default) picks the kernels-off and -on rows; STACKED0=1 adds a LoRA row with the stacked projections off
# (OSPREY_STACKED_LORA=0, kernels on: q/k/v and gate/up one base product per part, as before session 15).
set -uo pipefail
OUT=${OUT:-/tmp/osprey-out}; mkdir -p "$OUT" /tmp/osp /tmp/t
export DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1 PYTHONUNBUFFERED=1
[[ -x /tmp/osp/osprey-gpu/osprey ]] || tar -xJf .dist/osprey-gpu.tar.xz -C /tmp/osp
[[ -d /tmp/t/tokenizers ]] || tar -xJf .dist/tokenizers.tar.xz -C /tmp/t
OSP=/tmp/osp/osprey-gpu/osprey
M=/tmp/q05
[[ -f $M/config.json ]] || python3 tools/make_bench_model.py --out $M 2>&1 | grep wrote
cp /tmp/t/tokenizers/qwen3/tokenizer.json /tmp/t/tokenizers/qwen3/tokenizer_config.json $M/
python3 - <<'PY'
import json, random
random.seed(0)
words = "the of and to in is was for on that with as by at from it an be this which or are have not had but were one their all".split()
words += ["alpha", "river", "matrix", "garden", "silver", "orbit", "quantum", "harbor", "lantern", "meadow", "crystal", "thunder"]
with open("/tmp/rand.jsonl", "w") as f:
    for _ in range(120):
        f.write(json.dumps({"text": " ".join(random.choice(words) + random.choice(["", "", ",", "."]) for _ in range(3000))}) + "\n")
PY
# peak NAME CMD...: runs CMD (output in $OUT/NAME.txt), peak GPU memory in MiB above the idle reading into $OUT/NAME.peak
peak() {
  local name=$1; shift
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 > /tmp/mem-$name.log & local pid=$!
  "$@" > "$OUT/$name.txt" 2>&1; local rc=$?
  kill $pid; sleep 0.2
  echo $(( $(sort -n /tmp/mem-$name.log | tail -1) - $(sort -n /tmp/mem-$name.log | head -1) )) > "$OUT/$name.peak"
  echo "$name rc=$rc peak +$(cat "$OUT/$name.peak") MiB"
}
for type in ${TYPES:-lora full}; do
  peak hf-$type python3 tools/bench_sft_reference.py --model $M --train_type $type --batch 4 --seq 2048 --steps 20 --warmup 5 --out "$OUT/hf-$type.json"
  for fused in ${FUSED:-0 1} stacked0; do
    [[ $fused != stacked0 || ($type == lora && ${STACKED0:-0} == 1) ]] || continue
    rm -rf /tmp/bench
    OSPREY_FUSED_KERNELS=$([[ $fused == 0 ]] && echo 0 || echo 1) OSPREY_STACKED_LORA=$([[ $fused == stacked0 ]] && echo 0 || echo 1) peak osprey-$type-fused$fused $OSP pt --model $M --dataset /tmp/rand.jsonl --max_length 2048 \
      --truncation_strategy right --max_steps 25 --logging_steps 5 --save_strategy no --device cuda --torch_dtype bfloat16 \
      --output_dir /tmp/bench --add_version false --gradient_accumulation_steps 1 --lr_scheduler_type constant \
      --per_device_train_batch_size 4 --gradient_checkpointing false --train_type $type
    cp /tmp/bench/logging.jsonl "$OUT/osprey-$type-fused$fused.jsonl"
  done
done
# LoRA's shared A-product (docs/kernels.md) applies with --lora_dropout 0: that LoRA row with the groups off and on
# (OSPREY_FUSED_LORA), and transformers+PEFT at the same dropout. SKIP_D0=1 leaves these rows out.
if [[ " ${TYPES:-lora full} " == *" lora "* && ${SKIP_D0:-0} != 1 ]]; then
  peak hf-lora-d0 python3 tools/bench_sft_reference.py --model $M --train_type lora --lora_dropout 0 --batch 4 --seq 2048 --steps 20 --warmup 5 --out "$OUT/hf-lora-d0.json"
  for shared in 0 1; do
    rm -rf /tmp/bench
    OSPREY_FUSED_LORA=$shared peak osprey-lora-d0-shared$shared $OSP pt --model $M --dataset /tmp/rand.jsonl --max_length 2048 \
      --truncation_strategy right --max_steps 25 --logging_steps 5 --save_strategy no --device cuda --torch_dtype bfloat16 \
      --output_dir /tmp/bench --add_version false --gradient_accumulation_steps 1 --lr_scheduler_type constant \
      --per_device_train_batch_size 4 --gradient_checkpointing false --train_type lora --lora_dropout 0
    cp /tmp/bench/logging.jsonl "$OUT/osprey-lora-d0-shared$shared.jsonl"
  done
fi
echo; echo "== summary"
python3 - "$OUT" <<'PY' | tee "$OUT/summary.txt"
import json, os, sys
out = sys.argv[1]
def peak(n):
    p = os.path.join(out, n + ".peak")
    return int(open(p).read()) / 1024 if os.path.exists(p) else float("nan")
def osprey(n):
    p = os.path.join(out, n + ".jsonl")
    if not os.path.exists(p): return float("nan"), float("nan")
    rows = [json.loads(l) for l in open(p) if '"tokens_per_second"' in l]
    steady = [r["tokens_per_second"] for r in rows[1:]]  # the first window holds warm-up
    return sum(steady) / len(steady), rows[-1]["loss"]
print(open("/proc/driver/nvidia/gpus/" + os.listdir("/proc/driver/nvidia/gpus")[0] + "/information").read().splitlines()[0])
print(f"{'run (0.5B, 4x2048)':<26}{'tokens/s':>10}{'vs HF':>8}{'peak GiB':>10}{'last loss':>11}")
for t in ("lora", "full"):
    p = os.path.join(out, f"hf-{t}.json")
    if not os.path.exists(p): continue
    hf = json.load(open(p))
    hf_tps = hf["tokens_per_s"]
    print(f"{'HF+PEFT ' + t if t == 'lora' else 'HF ' + t:<26}{hf_tps:>10.0f}{1:>8.2f}{peak('hf-' + t):>10.2f}{'':>11}")
    for fused in ("0", "1", "stacked0"):
        if not os.path.exists(os.path.join(out, f"osprey-{t}-fused{fused}.jsonl")): continue
        tps, loss = osprey(f"osprey-{t}-fused{fused}")
        print(f"{'osprey ' + t + {'0': ' tensor ops', '1': ' fused', 'stacked0': ' fused, unstacked'}[fused]:<26}{tps:>10.0f}{tps / hf_tps:>8.2f}{peak(f'osprey-{t}-fused{fused}'):>10.2f}{loss:>11.4f}")
p = os.path.join(out, "hf-lora-d0.json")
if os.path.exists(p):
    hf_tps = json.load(open(p))["tokens_per_s"]
    print(f"{'HF+PEFT lora dropout 0':<26}{hf_tps:>10.0f}{1:>8.2f}{peak('hf-lora-d0'):>10.2f}{'':>11}")
    for shared in (0, 1):
        tps, loss = osprey(f"osprey-lora-d0-shared{shared}")
        print(f"{'osprey lora-d0 ' + ('shared A' if shared else 'per-module A'):<26}{tps:>10.0f}{tps / hf_tps:>8.2f}{peak(f'osprey-lora-d0-shared{shared}'):>10.2f}{loss:>11.4f}")
PY
(cd "$OUT" && tar -czf /tmp/details.tgz --exclude summary.txt . && find . -mindepth 1 ! -name summary.txt -delete && mv /tmp/details.tgz details.tgz)
