#!/usr/bin/env bash
# One device call for issue 17's 4-bit GPU work (after the QLoRA leak fix and the NVRTC 4-bit kernels):
#   1. osprey kernel-probe: the dequantization kernel equals the tensor path bit for bit (nf4/fp4, double quant on/off,
#      bf16/f16/f32), the fused decode product matches a matmul to rounding, and both are timed at 7B layer shapes;
#   2. osprey estimate for bf16 LoRA and QLoRA (the advisor's predictions to set beside the measured peaks);
#   3. tools/qlora_bench.sh: bf16 LoRA vs QLoRA training (peak memory, tokens/s) and bf16 vs NF4 decode at batch 1/32.
# Needs .dist/osprey-gpu.tar.xz and .dist/tokenizers.tar.xz; carry .dist. Prints the tables last.
set -uo pipefail
OUT=${OUT:-/tmp/osprey-out}; mkdir -p "$OUT" /tmp/osp /tmp/t
export DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1 PYTHONUNBUFFERED=1
tar -xJf .dist/osprey-gpu.tar.xz -C /tmp/osp; tar -xJf .dist/tokenizers.tar.xz -C /tmp/t
OSP=/tmp/osp/osprey-gpu/osprey
timeout 120 $OSP kernel-probe --batch_size 1 8 > "$OUT/kernel-probe.txt" 2>&1; echo "kernel-probe rc=$?" >> "$OUT/kernel-probe.txt"
M=/tmp/qwen2-7b
python3 tools/make_bench_model.py --size 7b --out $M 2>&1 | grep wrote
cp /tmp/t/tokenizers/qwen3/tokenizer.json /tmp/t/tokenizers/qwen3/tokenizer_config.json $M/
COMMON="--per_device_train_batch_size 1 --max_length 2048 --lora_rank 8 --target_modules all-linear --gradient_checkpointing true --torch_dtype bfloat16 --device cuda"
$OSP estimate --model $M $COMMON > "$OUT/estimate-bf16.txt" 2>&1
$OSP estimate --model $M $COMMON --quant_method bnb --quant_bits 4 --bnb_4bit_quant_type nf4 --bnb_4bit_use_double_quant true > "$OUT/estimate-qlora.txt" 2>&1
mkdir -p "$OUT/qlora"
OUT=$OUT/qlora STEPS=${STEPS:-6} NEW=${NEW:-64} bash tools/qlora_bench.sh > "$OUT/qlora.log" 2>&1
{
  echo "== osprey kernel-probe:"; cat "$OUT/kernel-probe.txt"
  echo "== osprey estimate, bf16 LoRA:"; grep -iE "total|peak|weights|activ|optim|loss|context" "$OUT/estimate-bf16.txt" | head -12
  echo "== osprey estimate, QLoRA NF4+DQ:"; grep -iE "total|peak|weights|activ|optim|loss|context" "$OUT/estimate-qlora.txt" | head -12
  echo "== measured (tools/qlora_bench.sh):"; cat "$OUT/qlora/summary.txt" 2>/dev/null || tail -20 "$OUT/qlora.log"
} | tee "$OUT/summary.txt"
(cd "$OUT" && tar -czf /tmp/details.tgz --exclude summary.txt . && find . -mindepth 1 ! -name summary.txt -delete && mv /tmp/details.tgz details.tgz)
