#!/usr/bin/env bash
# Issue 18 benchmark (calibrated export), one device call on the GPU machine (H100, no network): a Qwen2.5-7B-shaped
# model with random bf16 weights (tools/make_bench_model.py --size 7b, PyTorch + transformers on that machine),
#   1. osprey export --quant_method gptq --quant_bits 4 --group_size 128 and --quant_method awq --quant_bits 4, each (its
#      "planned device memory" line goes into the summary beside the measured peak),
#      calibrated on 128 samples x 2048 tokens (--quant_n_samples 128 --max_length 2048; 16 more are held out for the
#      per-projection error table against round-to-nearest that export prints), plus FP8 (block scales, no calibration):
#      wall time and peak GPU memory (polled with nvidia-smi every 0.2 s, minus what was used before the command);
#   2. decode of the bf16 model and of each export at batch 1 and 32 (osprey benchmark, static batches).
# Random weights make the error table a statement about random matrices, not about a trained model; the timing and
# memory are what a real 7B costs. Needs .dist/osprey-gpu.tar.xz (tools/pack_gpu.sh) and .dist/tokenizers.tar.xz (the
# qwen3 tokenizer files); carry .dist. Writes details to $OUT and prints a short table last. SAMPLES, LEN, PROMPT and
# NEW override the sizes; METHODS="gptq fp8" exports a subset. STAGES="export" or STAGES="decode" runs one half (a 7B export and decode together can
# pass the device tool's 600 s per call; on a warm machine the second call finds /tmp/qwen2-7b and /tmp/q-* again).
# FIT_GIB=24 leaves only 24 GiB of the card free for the exports (see below): the 24 GB card check.
set -uo pipefail
OUT=${OUT:-/tmp/osprey-out}; mkdir -p "$OUT" /tmp/osp /tmp/t
export DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1 PYTHONUNBUFFERED=1
tar -xJf .dist/osprey-gpu.tar.xz -C /tmp/osp
tar -xJf .dist/tokenizers.tar.xz -C /tmp/t
OSP=/tmp/osp/osprey-gpu/osprey
SAMPLES=${SAMPLES:-128}; LEN=${LEN:-2048}; PROMPT=${PROMPT:-512}; NEW=${NEW:-128}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
M=/tmp/qwen2-7b
[[ -f $M/config.json ]] || python3 tools/make_bench_model.py --size 7b --out $M 2>&1 | grep wrote
cp /tmp/t/tokenizers/qwen3/tokenizer.json /tmp/t/tokenizers/qwen3/tokenizer_config.json $M/
# Calibration rows long enough to fill --max_length after the template (truncated on the right).
python3 - <<'PY'
import json, random
random.seed(0)
words = "the of and to in is was for on that with as by at from it an be this which or are have not had but were one their all".split()
with open("/tmp/calib.jsonl", "w") as f:
    for _ in range(200):
        answer = " ".join(random.choice(words) for _ in range(3000))
        f.write(json.dumps({"messages": [{"role": "user", "content": "Write."}, {"role": "assistant", "content": answer}]}) + "\n")
PY

used() { nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -1; }
# run NAME CMD...: runs CMD with stdout+stderr in $OUT/NAME.txt; writes its peak extra GPU memory (MiB) to $OUT/NAME.peak
# and its wall time (s) to $OUT/NAME.secs
run() {
  local name=$1; shift
  local base peak=0 m pid rc start
  base=$(used); start=$(date +%s.%N)
  "$@" > "$OUT/$name.txt" 2>&1 & pid=$!
  while kill -0 $pid 2>/dev/null; do m=$(used); (( m > peak )) && peak=$m; sleep 0.2; done
  wait $pid; rc=$?
  echo $(( peak > base ? peak - base : 0 )) > "$OUT/$name.peak"
  python3 -c "print(round($(date +%s.%N) - $start, 1))" > "$OUT/$name.secs"
  echo "$name: rc=$rc, $(cat "$OUT/$name.secs") s, peak +$(cat "$OUT/$name.peak") MiB"
  return $rc
}

# FIT_GIB=24: a second process takes all but FIT_GIB GiB of the card before the exports (and keeps it until they end),
# so an export that completes shows it fits a card of that size, allocator cache included.
holder=
if [[ -n ${FIT_GIB:-} ]]; then
  python3 - "$FIT_GIB" > "$OUT/fit-holder.txt" 2>&1 <<'PYHOLD' & holder=$!
import sys, time, torch
free, total = torch.cuda.mem_get_info()
take = free - int(float(sys.argv[1]) * 2**30)
block = torch.empty(max(take, 0), dtype=torch.uint8, device="cuda")
print(f"holding {take / 2**30:.1f} GiB; {torch.cuda.mem_get_info()[0] / 2**30:.1f} GiB free for the exports", flush=True)
time.sleep(100000)
PYHOLD
  sleep 15; cat "$OUT/fit-holder.txt"
fi
CAL=(--dataset /tmp/calib.jsonl --quant_n_samples $SAMPLES --max_length $LEN --truncation_strategy right --load_from_cache_file false)
EXPORT=(export --model $M --device cuda --torch_dtype bfloat16)
STAGES=${STAGES:-export decode}
if [[ $STAGES == *export* ]]; then
echo "== 1. quantized export, $SAMPLES x $LEN calibration tokens"
METHODS=${METHODS:-gptq awq fp8}
[[ $METHODS == *gptq* ]] && run export-gptq $OSP "${EXPORT[@]}" --quant_method gptq --quant_bits 4 --group_size 128 "${CAL[@]}" --output_dir /tmp/q-gptq
[[ $METHODS == *awq* ]] && run export-awq $OSP "${EXPORT[@]}" --quant_method awq --quant_bits 4 --group_size 128 "${CAL[@]}" --output_dir /tmp/q-awq
[[ $METHODS == *fp8* ]] && run export-fp8 $OSP "${EXPORT[@]}" --quant_method fp8 --fp8_scheme block --output_dir /tmp/q-fp8
fi
[[ -n $holder ]] && kill $holder
du -sh $M /tmp/q-gptq /tmp/q-awq /tmp/q-fp8 > "$OUT/sizes.txt" 2>&1

if [[ $STAGES == *decode* ]]; then
echo "== 2. decode, batch 1 and 32, prompt $PROMPT, $NEW new tokens"
BENCH=(benchmark --device cuda --torch_dtype bfloat16 --batch_size 1 32 --prompt_length $PROMPT --max_new_tokens $NEW)
run decode-bf16 $OSP "${BENCH[@]}" --model $M --result_path "$OUT/decode-bf16.jsonl"
for q in gptq awq fp8; do
  [[ -f /tmp/q-$q/config.json ]] && run decode-$q $OSP "${BENCH[@]}" --model /tmp/q-$q --result_path "$OUT/decode-$q.jsonl"
done
fi

echo; echo "== summary"
python3 - "$OUT" <<'PY' | tee "$OUT/summary.txt"
import json, os, sys
out = sys.argv[1]
def read(name, ext, cast=float):
    p = os.path.join(out, name + ext)
    return cast(open(p).read().strip()) if os.path.exists(p) else float("nan")
print(open(os.path.join(out, "gpu.txt")).read().strip())
print(f"{'export':<16}{'seconds':>10}{'peak GiB (poll)':>17}")
for q in ("gptq", "awq", "fp8"):
    print(f"{q:<16}{read('export-' + q, '.secs'):>10.0f}{read('export-' + q, '.peak') / 1024:>17.2f}")
print(open(os.path.join(out, "sizes.txt")).read().strip())
for q in ("gptq", "awq"):
    p = os.path.join(out, "export-" + q + ".txt")
    if os.path.exists(p):
        lines = [l.rstrip() for l in open(p) if "layers below" in l or "held-out output error" in l or "planned device memory" in l]
        print("\n".join(lines))
print(f"{'decode':<16}{'peak GiB (poll)':>16}{'batch':>7}{'decode tok/s':>14}{'ms/step':>9}")
for name in ("bf16", "gptq", "awq", "fp8"):
    p = os.path.join(out, "decode-" + name + ".jsonl")
    if not os.path.exists(p): print(f"{name:<16}   failed, see decode-{name}.txt"); continue
    for line in open(p):
        r = json.loads(line); r = r.get("result", r)
        print(f"{name:<16}{read('decode-' + name, '.peak') / 1024:>16.2f}{r['Batch']:>7}{r['DecodeTokensPerSecond']:>14.0f}{r['MillisecondsPerStep']:>9.1f}")
PY
# The device tool returns at most 8 files: everything but the summary travels in one archive.
(cd "$OUT" && tar -czf /tmp/details.tgz --exclude summary.txt . && find . -mindepth 1 ! -name summary.txt -delete && mv /tmp/details.tgz details.tgz)
