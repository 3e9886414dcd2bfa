#!/usr/bin/env bash
# One device call: serving benchmark (issue 6) on Qwen2-shaped models with random bf16 weights, Osprey against
# transformers in the same call. Workload: 128-token random prompts, 256 new tokens, greedy, eos ignored, at
# 1, 32 and 128 concurrent requests. transformers runs generate() on a static batch of that size (cuDNN
# attention off: the fair reference); Osprey runs (a) the same static batch (`osprey benchmark --batch_size`)
# and (b) its serving engine with that many requests submitted at once (`osprey benchmark --concurrency`),
# which is what `osprey deploy` runs. SIZES="0.5b 7b" picks the models. Writes to $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/osprey-out}
mkdir -p "$OUT" /tmp/osp
export DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1 PYTHONUNBUFFERED=1
tar -xJf .dist/osprey-gpu.tar.xz -C /tmp/osp
tar -xJf .dist/tokenizers.tar.xz -C /tmp/osp
OSP=/tmp/osp/osprey-gpu/osprey
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" | tee -a "$OUT/gpu.txt"
B="--prompt_length ${PROMPT:-128} --max_new_tokens ${NEW:-256}"
C="${CONC:-1 32 128}"
for size in ${SIZES:-0.5b 7b}; do
  M=/tmp/qwen2-$size
  [[ -d $M ]] || python3 tools/make_bench_model.py --size $size --out $M 2>&1 | grep wrote
  # The Qwen tokenizer (vocabulary of Qwen2.5/Qwen3), so the engine can turn ids into text as it streams.
  cp /tmp/osp/tokenizers/qwen3/tokenizer.json /tmp/osp/tokenizers/qwen3/tokenizer_config.json $M/
  if [[ "${SKIP_HF:-0}" != 1 ]]; then
    echo "== HF transformers, qwen2-$size: static batch $C, $B"
    python3 tools/bench_hf_generate.py --model $M --batch_size $C $B --result_path "$OUT/serve-$size.jsonl" 2>&1 | grep -v -i "warn\|Loading weights"
  fi
  if [[ "${SKIP_STATIC:-0}" != 1 ]]; then
    echo "== osprey, qwen2-$size: static batch $C, $B"
    $OSP benchmark --model $M --device cuda --torch_dtype bfloat16 --batch_size $C $B --result_path "$OUT/serve-$size.jsonl" 2>&1
  fi
  echo "== osprey serving engine, qwen2-$size: $C concurrent requests, $B (CUDA graphs)"
  $OSP benchmark --model $M --device cuda --torch_dtype bfloat16 --concurrency $C $B --result_path "$OUT/serve-$size.jsonl" 2>&1
  if [[ "${SKIP_EAGER:-0}" != 1 ]]; then
    echo "== osprey serving engine, qwen2-$size: $C concurrent requests, $B (--enforce_eager)"
    $OSP benchmark --model $M --device cuda --torch_dtype bfloat16 --concurrency $C $B --enforce_eager true --result_path "$OUT/serve-$size-eager.jsonl" 2>&1
  fi
done
