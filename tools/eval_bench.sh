#!/usr/bin/env bash
# One device call for issue 19's benchmark: `osprey eval` against an lm-evaluation-harness-style transformers loop
# (tools/eval_reference.py) on a Qwen2.5-0.5B- and a 7B-shaped model with random weights (tools/make_bench_model.py)
# and the Qwen3 tokenizer from .dist/tokenizers.tar.xz. Items are made up by eval_reference.py make (no third-party
# data): 1,000 MMLU-shaped multiple-choice items scored by log-likelihood and 200 GSM8K-shaped items generated
# greedily (256 new tokens at most). Per model: items/s of each side, Osprey/reference, and the float32 parity of
# the log-likelihoods (max |diff|, choices that differ; issue target <= 1e-4 and 0) on the first 100 items.
# SIZES="7b" runs one model. Needs .dist/osprey-gpu.tar.xz (tools/pack_gpu.sh) and .dist/tokenizers.tar.xz; carry .dist. Table comes last.
set -uo pipefail
OUT=${OUT:-/tmp/osprey-out}; mkdir -p "$OUT" /tmp/osp /tmp/t
export DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1 PYTHONUNBUFFERED=1
tar -xJf .dist/osprey-gpu.tar.xz -C /tmp/osp; tar -xJf .dist/tokenizers.tar.xz -C /tmp/t
OSP=/tmp/osp/osprey-gpu/osprey
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
D=/tmp/evalsets
python3 tools/eval_reference.py make --out $D --mcq ${MCQ:-1000} --math ${MATH:-200} | tee "$OUT/make.txt"
rate() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.2f", n / s }'; }
: > "$OUT/table.txt"
for size in ${SIZES:-0.5b 7b}; do
  M=/tmp/qwen2-$size
  python3 tools/make_bench_model.py --size $size --out $M 2>&1 | grep wrote
  cp /tmp/t/tokenizers/qwen3/tokenizer.json /tmp/t/tokenizers/qwen3/tokenizer_config.json $M/
  MCQ_ARGS="{\"general_mcq\": {\"local_path\": \"$D/mcq\", \"subset_list\": [\"bench\"]}}"
  # Throughput in bf16 (both sides), parity in float32 on 100 items.
  s=$(date +%s.%N)
  $OSP eval --model $M --device cuda --torch_dtype bfloat16 --eval_dataset general_mcq --dataset_args "$MCQ_ARGS" \
    --eval_output_dir "$OUT/$size-mcq" > "$OUT/$size-mcq.log" 2>&1
  osp_mcq=$(rate ${MCQ:-1000} $(awk -v a="$(date +%s.%N)" -v b="$s" 'BEGIN { print a - b }'))
  ref_mcq=$(python3 tools/eval_reference.py loglik --model $M --mcq $D/mcq --dtype bfloat16 2>&1 | tee "$OUT/$size-ref-mcq.log" | sed -n 's/.*= \([0-9.]*\) items\/s/\1/p')
  s=$(date +%s.%N)
  $OSP eval --model $M --device cuda --torch_dtype bfloat16 --eval_dataset gsm8k --dataset_args "{\"gsm8k\": {\"local_path\": \"$D/gsm8k\"}}" \
    --eval_generation_config '{"max_tokens": 256}' --eval_batch_size 32 --eval_output_dir "$OUT/$size-math" > "$OUT/$size-math.log" 2>&1
  osp_math=$(rate ${MATH:-200} $(awk -v a="$(date +%s.%N)" -v b="$s" 'BEGIN { print a - b }'))
  ref_math=$(python3 tools/eval_reference.py generate --model $M --math $D/gsm8k --batch 32 --compare "$OUT/$size-math/predictions.jsonl" 2>&1 | tee "$OUT/$size-ref-math.log" | sed -n 's/.*= \([0-9.]*\) items\/s/\1/p')
  $OSP eval --model $M --device cuda --torch_dtype float32 --eval_dataset general_mcq --dataset_args "$MCQ_ARGS" --eval_limit 100 \
    --eval_output_dir "$OUT/$size-mcq-f32" > "$OUT/$size-mcq-f32.log" 2>&1
  parity=$(python3 tools/eval_reference.py loglik --model $M --mcq $D/mcq --limit 100 --compare "$OUT/$size-mcq-f32/predictions.jsonl" 2>&1 | tail -1)
  # The osprey times include loading the model; the reference's exclude it (they favour the reference).
  echo "$size | MCQ loglik items/s osprey $osp_mcq vs reference $ref_mcq | GSM8K generate items/s osprey $osp_math vs reference $ref_math | float32 $parity" | tee -a "$OUT/table.txt"
  rm -rf $M
done
echo "== eval benchmark ($(cat "$OUT/gpu.txt"))"; cat "$OUT/table.txt"
# The device tool returns at most 8 files: everything but the table travels in one archive.
(cd "$OUT" && tar -czf /tmp/details.tgz --exclude table.txt . && find . -mindepth 1 ! -name table.txt -delete && mv /tmp/details.tgz details.tgz)
