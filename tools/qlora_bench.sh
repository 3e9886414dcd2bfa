#!/usr/bin/env bash
# Issue 17 benchmark, one device call on the GPU machine (H100, no network): a Qwen2.5-7B-shaped model with random bf16
# weights (tools/make_bench_model.py --size 7b, PyTorch + transformers on that machine),
#   1. osprey sft, LoRA r8 on all linear layers, batch 1 x 2048 tokens, gradient checkpointing, a few steps:
#      bf16 base against QLoRA (NF4 + double quantization, quantized at load);
#   2. decode of the same model at batch 1 and 32 (osprey benchmark, static batches), bf16 against 4-bit.
# Peak GPU memory is polled from nvidia-smi every 0.2 s while each command runs (device memory used minus what was
# used before it started: the CUDA context, the caching allocator's reserve and the weights, i.e. what another
# process could not have), beside the largest memory_gib the training log reports (NVML at each logging step).
# Needs .dist/osprey-gpu.tar.xz (tools/pack_gpu.sh) and .dist/tokenizers.tar.xz (the qwen3 tokenizer files).
# Writes details to $OUT and prints a short table last. STEPS, PROMPT and NEW override the sizes.
set -uo pipefail
OUT=${OUT:-/tmp/osprey-out}; mkdir -p "$OUT" /tmp/osp /tmp/t
export DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1 PYTHONUNBUFFERED=1
tar -xJf .dist/osprey-gpu.tar.xz -C /tmp/osp
tar -xJf .dist/tokenizers.tar.xz -C /tmp/t
OSP=/tmp/osp/osprey-gpu/osprey
STEPS=${STEPS:-10}; PROMPT=${PROMPT:-512}; NEW=${NEW:-128}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
M=/tmp/qwen2-7b
[[ -f $M/config.json ]] || python3 tools/make_bench_model.py --size 7b --out $M 2>&1 | grep wrote
cp /tmp/t/tokenizers/qwen3/tokenizer.json /tmp/t/tokenizers/qwen3/tokenizer_config.json $M/
python3 - <<'PY'
import json, random
random.seed(0)
words = "the of and to in is was for on that with as by at from it an be this which or are have not had but were one their all".split()
with open("/tmp/long.jsonl", "w") as f:
    for _ in range(40):
        answer = " ".join(random.choice(words) for _ in range(3000))
        f.write(json.dumps({"messages": [{"role": "user", "content": "Write."}, {"role": "assistant", "content": answer}]}) + "\n")
PY

used() { nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -1; }
# run NAME CMD...: runs CMD with stdout+stderr in $OUT/NAME.txt, writes its peak extra GPU memory (MiB) to $OUT/NAME.peak
run() {
  local name=$1; shift
  local base peak=0 m pid rc
  base=$(used)
  "$@" > "$OUT/$name.txt" 2>&1 & pid=$!
  while kill -0 $pid 2>/dev/null; do m=$(used); (( m > peak )) && peak=$m; sleep 0.2; done
  wait $pid; rc=$?
  echo $(( peak > base ? peak - base : 0 )) > "$OUT/$name.peak"
  echo "$name: rc=$rc, peak +$(cat "$OUT/$name.peak") MiB"
  return $rc
}

Q4=(--quant_method bnb --quant_bits 4 --bnb_4bit_quant_type nf4 --bnb_4bit_use_double_quant true --bnb_4bit_compute_dtype bfloat16)
SFT=(sft --model $M --dataset /tmp/long.jsonl --max_length 2048 --truncation_strategy right --max_steps $STEPS --logging_steps 2
     --save_strategy no --device cuda --torch_dtype bfloat16 --add_version false --per_device_train_batch_size 1
     --gradient_accumulation_steps 1 --gradient_checkpointing true --lora_rank 8 --lora_alpha 32 --target_modules all-linear
     --lr_scheduler_type constant --load_from_cache_file false)
echo "== 1. LoRA r8 all-linear, 1 x 2048, gradient checkpointing, $STEPS steps"
run sft-bf16 $OSP "${SFT[@]}" --output_dir /tmp/run-bf16
cp /tmp/run-bf16/logging.jsonl "$OUT/sft-bf16.jsonl" 2>/dev/null
run sft-qlora $OSP "${SFT[@]}" "${Q4[@]}" --output_dir /tmp/run-qlora
cp /tmp/run-qlora/logging.jsonl "$OUT/sft-qlora.jsonl" 2>/dev/null

echo "== 2. decode, batch 1 and 32, prompt $PROMPT, $NEW new tokens"
BENCH=(benchmark --model $M --device cuda --torch_dtype bfloat16 --batch_size 1 32 --prompt_length $PROMPT --max_new_tokens $NEW)
run decode-bf16 $OSP "${BENCH[@]}" --result_path "$OUT/decode-bf16.jsonl"
run decode-nf4 $OSP "${BENCH[@]}" "${Q4[@]}" --result_path "$OUT/decode-nf4.jsonl"

echo; echo "== summary"
python3 - "$OUT" <<'PY' | tee "$OUT/summary.txt"
import json, os, sys
out = sys.argv[1]
def peak(name):
    p = os.path.join(out, name + ".peak")
    return int(open(p).read()) / 1024 if os.path.exists(p) else float("nan")
def train(name):
    p = os.path.join(out, name + ".jsonl")
    if not os.path.exists(p): return None
    rows = [json.loads(l) for l in open(p) if '"tokens_per_second"' in l]
    if not rows: return None
    speeds = [r["tokens_per_second"] for r in rows[1:]] or [rows[0]["tokens_per_second"]]  # the first window includes warm-up
    return sum(speeds) / len(speeds), max(r.get("memory_gib", 0) for r in rows), rows[0]["loss"], rows[-1]["loss"]
print(f"{'run':<34}{'peak GiB (poll)':>16}{'log GiB':>9}{'tokens/s':>10}  loss first/last")
tps = {}
for name in ("sft-bf16", "sft-qlora"):
    t = train(name)
    if t is None: print(f"{name:<34}{peak(name):>16.2f}   failed, see {name}.txt"); continue
    tps[name] = t[0]
    print(f"{name:<34}{peak(name):>16.2f}{t[1]:>9.2f}{t[0]:>10.0f}  {t[2]:.4f}/{t[3]:.4f}")
if len(tps) == 2:
    print(f"QLoRA/bf16 tokens/s: {tps['sft-qlora'] / tps['sft-bf16']:.2f} (issue 17 asks >= 0.75); QLoRA peak {peak('sft-qlora'):.2f} GiB (asks <= 10)")
print(f"{'decode':<34}{'peak GiB (poll)':>16}{'batch':>7}{'decode tok/s':>14}{'ms/step':>9}")
for name in ("decode-bf16", "decode-nf4"):
    p = os.path.join(out, name + ".jsonl")
    if not os.path.exists(p): print(f"{name:<34}   failed, see {name}.txt"); continue
    for line in open(p):
        r = json.loads(line); r = r.get("result", r)
        print(f"{name:<34}{peak(name):>16.2f}{r['Batch']:>7}{r['DecodeTokensPerSecond']:>14.0f}{r['MillisecondsPerStep']:>9.1f}")
PY
# The device tool returns at most 8 files: everything but the summary travels in one archive.
(cd "$OUT" && tar -czf /tmp/details.tgz --exclude summary.txt . && find . -mindepth 1 ! -name summary.txt -delete && mv /tmp/details.tgz details.tgz)
