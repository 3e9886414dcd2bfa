#!/usr/bin/env bash
# One device call for this session's GPU numbers (issues 16 and 17), sharing one random 7B-shaped Qwen2 folder:
#   1. osprey estimate (the memory-fit advisor) for bf16 LoRA and QLoRA NF4+double quant, LoRA r8 all-linear,
#      batch 1 x 2048, gradient checkpointing;
#   2. tools/qlora_bench.sh: the same two rows trained for real (peak GPU memory polled with nvidia-smi, tokens/s),
#      then decode of the bf16 and 4-bit model at batch 1 and 32;
#   3. tools/structured_bench.sh: the serving engine's throughput with and without response_format masks (0.5B shape).
# Needs .dist/osprey-gpu.tar.xz and .dist/tokenizers.tar.xz; carry .dist. Prints the three tables last.
set -uo pipefail
OUT=${OUT:-/tmp/osprey-out}; mkdir -p "$OUT" /tmp/osp /tmp/t
export DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1 PYTHONUNBUFFERED=1
tar -xJf .dist/osprey-gpu.tar.xz -C /tmp/osp; tar -xJf .dist/tokenizers.tar.xz -C /tmp/t
OSP=/tmp/osp/osprey-gpu/osprey
M=/tmp/qwen2-7b
python3 tools/make_bench_model.py --size 7b --out $M 2>&1 | grep wrote
cp /tmp/t/tokenizers/qwen3/tokenizer.json /tmp/t/tokenizers/qwen3/tokenizer_config.json $M/
COMMON="--per_device_train_batch_size 1 --max_length 2048 --lora_rank 8 --target_modules all-linear --gradient_checkpointing true --torch_dtype bfloat16 --device cuda"
$OSP estimate --model $M $COMMON > "$OUT/estimate-bf16.txt" 2>&1
$OSP estimate --model $M $COMMON --quant_method bnb --quant_bits 4 --bnb_4bit_quant_type nf4 --bnb_4bit_use_double_quant true > "$OUT/estimate-qlora.txt" 2>&1
mkdir -p "$OUT/qlora" "$OUT/structured"
OUT=$OUT/qlora STEPS=${STEPS:-6} bash tools/qlora_bench.sh > "$OUT/qlora.log" 2>&1
rm -rf $M
OUT=$OUT/structured bash tools/structured_bench.sh > "$OUT/structured.log" 2>&1
{
  echo "== osprey estimate (predicted peak), bf16 LoRA:"; cat "$OUT/estimate-bf16.txt"
  echo "== osprey estimate, QLoRA NF4+DQ:"; cat "$OUT/estimate-qlora.txt"
  echo "== measured (tools/qlora_bench.sh):"; cat "$OUT/qlora/summary.txt" 2>/dev/null || tail -20 "$OUT/qlora.log"
  echo "== structured outputs (tools/structured_bench.sh):"; tail -8 "$OUT/structured.log"
} | tee "$OUT/summary.txt"
(cd "$OUT" && tar -czf /tmp/details.tgz --exclude summary.txt . && find . -mindepth 1 ! -name summary.txt -delete && mv /tmp/details.tgz details.tgz)
