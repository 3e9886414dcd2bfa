#!/usr/bin/env bash
# One device call after the architecture refactor (issue 14): does the GPU path still behave and run as fast as the
# build before it (main at c85082d)? Needs, from tools/pack_gpu.sh: .dist/osprey-gpu.tar.xz (this build) and
# .dist/osprey-gpu-base-diff.tar.xz (the files of the earlier build, packed the same way from a checkout of c85082d,
# that differ from this one: the Osprey assemblies; the runtime files are the same, and both builds would not fit the
# device tool's 64 MiB), and .dist/tokenizers.tar.xz.
#   1. seeded sampling on CUDA (twice) and on the CPU, both builds: the same ids everywhere;
#   2. LoRA, DoRA and full training on CUDA float32, then transformers+PEFT load the results and give Osprey's logits
#      (tools/gpu_sft.sh PART=interop, this build);
#   3. osprey deploy on CUDA (graphs and eager) answers as transformers on all eight families (this build);
#   4. graph-probe: captured decode steps equal eager ones (this build);
#   5. speed, both builds in this call: LoRA pt on the 0.5B Qwen2 shape (batch 4 x 2048) and the serving engine at
#      1 and 32 concurrent requests. Writes details to $OUT and prints a table last.
# PART=check runs 1-4, PART=speed runs 5 (each fits one device command); the default runs both.
set -uo pipefail
OUT=${OUT:-/tmp/osprey-out}; mkdir -p "$OUT" /tmp/osp /tmp/base /tmp/t
export DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1 PYTHONUNBUFFERED=1
tar -xJf .dist/osprey-gpu.tar.xz -C /tmp/osp
cp -r /tmp/osp/osprey-gpu /tmp/base/ && tar -xJf .dist/osprey-gpu-base-diff.tar.xz -C /tmp/base/osprey-gpu
tar -xJf .dist/tokenizers.tar.xz -C /tmp/t
NEW=/tmp/osp/osprey-gpu/osprey
OLD=/tmp/base/osprey-gpu/osprey
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
summary=()

PART=${PART:-all}
if [[ $PART != speed ]]; then
echo "== 1. seeded sampling"
S="infer --do_sample true --temperature 0.8 --top_p 0.9 --top_k 40 --max_new_tokens 12 --seed 3 --input_ids 1,2;3"
for b in OLD NEW; do
  for d in cuda cuda cpu; do ${!b} $S --device $d 2>/dev/null | tee -a "$OUT/sampling-$b.txt"; done
done
distinct=$(cat "$OUT"/sampling-*.txt | sort | uniq | wc -l)
summary+=("seeded sampling, 2 builds x (cuda, cuda, cpu): $distinct distinct line(s) for 2 prompts (2 = all equal)")

echo "== 2. training interop with transformers+PEFT"
OUT=$OUT PART=interop bash tools/gpu_sft.sh > "$OUT/interop.txt" 2>&1
summary+=("PEFT/transformers interop (qwen2 LoRA, phi3 DoRA, gemma2; adapter, merged, full): $(grep -E '^tol ' "$OUT/interop.txt" | tr '\n' ' ')")

echo "== 3. deploy on CUDA vs transformers, all families"
python3 tools/gpu_serve_families.py --osprey $NEW > "$OUT/serve-families.txt" 2>&1; rc=$?
summary+=("deploy vs transformers, rc=$rc: $(grep -E '^[a-z0-9_]+ +(graphs|eager) ' "$OUT/serve-families.txt" | awk '{printf "%s/%s %s; ", $1, $2, $3}')")

echo "== 4. graph-probe"
python3 tools/make_bench_model.py --out /tmp/q05 2>&1 | grep wrote
cp /tmp/t/tokenizers/qwen3/tokenizer.json /tmp/t/tokenizers/qwen3/tokenizer_config.json /tmp/q05/
timeout 60 $NEW graph-probe --device cuda --skip_model > "$OUT/graph-toy.txt" 2>&1; summary+=("graph-probe toy: rc=$? $(tail -1 "$OUT/graph-toy.txt")")
timeout 200 $NEW graph-probe --device cuda --model /tmp/q05 --batch_size 1 32 > "$OUT/graph-q05.txt" 2>&1; summary+=("graph-probe 0.5B: rc=$? $(tail -1 "$OUT/graph-q05.txt")")

fi
if [[ $PART != check ]]; then
[[ -d /tmp/q05 ]] || { python3 tools/make_bench_model.py --out /tmp/q05 2>&1 | grep wrote; cp /tmp/t/tokenizers/qwen3/tokenizer.json /tmp/t/tokenizers/qwen3/tokenizer_config.json /tmp/q05/; }
echo "== 5. speed, both builds"
python3 - <<'PY'
import json, random
random.seed(0)
words = "the of and to in is was for on that with as by at from it an be this which or are have not had but were one their all".split()
with open("/tmp/rand.jsonl", "w") as f:
    for _ in range(120):
        f.write(json.dumps({"text": " ".join(random.choice(words) for _ in range(3000))}) + "\n")
PY
for round in 1 2; do
  for b in OLD NEW; do
    rm -rf /tmp/bench-$b
    ${!b} pt --model /tmp/q05 --dataset /tmp/rand.jsonl --max_length 2048 --truncation_strategy right --max_steps 25 --logging_steps 5 \
      --save_strategy no --device cuda --torch_dtype bfloat16 --output_dir /tmp/bench-$b --add_version false --gradient_accumulation_steps 1 \
      --lr_scheduler_type constant --per_device_train_batch_size 4 --gradient_checkpointing false --load_from_cache_file false > "$OUT/pt-$b-$round.txt" 2>&1
    cp /tmp/bench-$b/logging.jsonl "$OUT/pt-$b-$round.jsonl"
    tps=$(python3 -c "import json,sys;r=[json.loads(l) for l in open('/tmp/bench-$b/logging.jsonl') if '\"tokens_per_second\"' in l];s=[x['tokens_per_second'] for x in r[1:]];print(f'{sum(s)/len(s):.0f} tok/s, loss first/last {r[0][\"loss\"]:.4f}/{r[-1][\"loss\"]:.4f}')")
    summary+=("LoRA pt 0.5B 4x2048 round $round $b: $tps")
    ${!b} benchmark --model /tmp/q05 --device cuda --torch_dtype bfloat16 --concurrency 1 32 --prompt_length 128 --max_new_tokens 256 \
      --result_path "$OUT/serve-$b-$round.jsonl" > "$OUT/serve-$b-$round.txt" 2>&1
    summary+=("engine 0.5B round $round $b: $(python3 -c "import json;print(' | '.join(f\"{r['result']['Concurrency']} req: {r['result']['ThroughputTokensPerSecond']:.0f} tok/s\" for r in map(json.loads, open('$OUT/serve-$b-$round.jsonl'))))" 2>&1 | tail -1)")
  done
done
fi
echo; echo "== summary"
printf '%s\n' "${summary[@]}" | tee "$OUT/summary.txt"
# The device tool returns at most 8 files: everything but the summary travels in one archive.
(cd "$OUT" && tar -czf /tmp/details.tgz --exclude summary.txt . && find . -mindepth 1 ! -name summary.txt -delete && mv /tmp/details.tgz details.tgz)
