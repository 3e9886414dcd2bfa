#!/usr/bin/env bash
# Issue 18 follow-up, one device call: the GPTQ/FP8 CUDA kernels (src/Osprey/Quantization/PackedWeightKernels.cs).
#   1. osprey kernel-probe: every kernel against the tensor path (dequantized weights must match bit for bit, the fused
#      GPTQ product within 2e-2 of a float32 matmul), then the GPTQ 4-bit product timed against a bf16 matmul at 7B shapes;
#   2. decode in the engine (osprey benchmark, static batches of 1 and 32, 128-token prompts, 128 new) of a
#      Qwen2.5-0.5B-shaped model with random bf16 weights (tools/make_cpu_bench_model.py, numpy) as bf16, as 4-bit GPTQ
#      (the same script's --gptq, group 32), as AWQ 4-bit (osprey export --quant_method awq, 16 short calibration rows) and
#      as FP8 (osprey export --quant_method fp8, block scales), each with the
#      kernels (OSPREY_FUSED_PACKED=1: the dequantization kernels, on by default since session 9; GPTQ's fused product only
#      with OSPREY_GPTQ_FUSED_GEMV=1, the "gemv" rows) and without (OSPREY_FUSED_PACKED=0, the tensor path), same call.
# Needs .dist/osprey-gpu.tar.xz (tools/pack_gpu.sh) and .dist/tokenizers.tar.xz; carry .dist. Table comes last.
set -uo pipefail
OUT=${OUT:-/tmp/osprey-out}; mkdir -p "$OUT" /tmp/osp /tmp/t
export DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1
[[ -x /tmp/osp/osprey-gpu/osprey ]] || tar -xJf .dist/osprey-gpu.tar.xz -C /tmp/osp
[[ -d /tmp/t/tokenizers ]] || tar -xJf .dist/tokenizers.tar.xz -C /tmp/t
OSP=${OSP:-/tmp/osp/osprey-gpu/osprey}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
timeout 240 $OSP kernel-probe --batch_size 1 4 > "$OUT/kernel-probe.txt" 2>&1; echo "kernel-probe exit $?" >> "$OUT/kernel-probe.txt"
[[ -d /tmp/pk-bf16 ]] || python3 tools/make_cpu_bench_model.py /tmp/pk-bf16 /tmp/t/tokenizers/qwen3 > /dev/null
[[ -d /tmp/pk-gptq ]] || python3 tools/make_cpu_bench_model.py /tmp/pk-gptq /tmp/t/tokenizers/qwen3 --gptq > /dev/null
[[ -d /tmp/pk-fp8 ]] || $OSP export --model /tmp/pk-bf16 --quant_method fp8 --output_dir /tmp/pk-fp8 --device cuda > "$OUT/export-fp8.txt" 2>&1
# AWQ 4-bit (group 128) calibrated on 16 short rows: the export's speed is tools/quant_export_bench.sh's business, this is for decode.
python3 -c "
import json
with open('/tmp/pk-calib.jsonl', 'w') as f:
    for i in range(32): f.write(json.dumps({'messages': [{'role': 'user', 'content': 'Write.'}, {'role': 'assistant', 'content': ' '.join(['the cat sat on the mat and'] * 20) + str(i)}]}) + '\\n')
"
[[ -d /tmp/pk-awq ]] || $OSP export --model /tmp/pk-bf16 --quant_method awq --quant_bits 4 --dataset /tmp/pk-calib.jsonl --quant_n_samples 16 \
  --max_length 256 --output_dir /tmp/pk-awq --device cuda > "$OUT/export-awq.txt" 2>&1
T="$OUT/decode.txt"; printf "%-5s %-8s %6s %14s %9s\n" model path batch decode_tok/s ms/step > "$T"
for m in bf16 gptq awq fp8; do
  for path in kernels gemv tensor; do
    [[ $m == bf16 && $path != kernels ]] && continue
    [[ $m != gptq && $path == gemv ]] && continue
    env=(OSPREY_FUSED_PACKED=1); [[ $path == tensor ]] && env=(OSPREY_FUSED_PACKED=0)
    [[ $path == gemv ]] && env=(OSPREY_FUSED_PACKED=1 OSPREY_GPTQ_FUSED_GEMV=1)
    env "${env[@]}" timeout 120 $OSP benchmark --model /tmp/pk-$m --device cuda --torch_dtype bfloat16 --batch_size 1 32 \
      --prompt_length 128 --max_new_tokens 128 --warmup 1 > "$OUT/decode-$m-$path.txt" 2>&1
    awk -v m=$m -v p=$path '$1 ~ /^[0-9]+$/ && NF >= 7 { printf "%-5s %-8s %6s %14s %9s\n", m, p, $1, $6, $7 }' "$OUT/decode-$m-$path.txt" >> "$T"
  done
done
grep -E "^(gptq|awq|fp8|type|out |[0-9])|FAILED|passed|unavailable|exit" "$OUT/kernel-probe.txt"
cat "$T"
# 3. Where a 32-request structured step's time goes on the GPU (issue 16): OSPREY_PROFILE=1, json_object, with the
#    engine's background grammar prewarm (the default on CUDA) and without (OSPREY_GRAMMAR_PREWARM=0).
for pw in ${PREWARM:-1 0}; do
  echo "== structured json_object, 32 requests, prewarm $pw"
  OSPREY_GRAMMAR_PREWARM=$pw OSPREY_PROFILE=1 timeout 120 $OSP benchmark --model /tmp/pk-bf16 --device cuda --torch_dtype bfloat16 \
    --concurrency 32 --prompt_length 128 --max_new_tokens 64 --response_format json_object 2>&1 | grep -v "^Train" | tail -22 | tee "$OUT/structured-profile-$pw.txt"
done
