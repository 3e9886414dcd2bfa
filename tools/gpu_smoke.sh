#!/usr/bin/env bash
# GPU smoke test of the CLI on the device machine (needs .dist/osprey-gpu.tar.xz from tools/pack_gpu.sh):
# seeded sampling on CUDA (twice, and once on the CPU: the same seed gives the same tokens everywhere),
# batched sampling with eos, a bf16 Gemma 2 with repetition penalty, float16, a missing device, streaming.
set -uo pipefail
mkdir -p /tmp/osp && tar -xJf .dist/osprey-gpu.tar.xz -C /tmp/osp
export DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1
O=/tmp/osp/osprey-gpu/osprey
S="--do_sample true --temperature 0.8 --top_p 0.9 --top_k 40 --max_new_tokens 12 --seed 3"
for a in "infer --device cuda $S" "infer --device cuda $S" "infer --device cpu $S" \
         "infer --device cuda --do_sample true --temperature 0.8 --max_new_tokens 12 --seed 4 --input_ids 1,2;3" \
         "infer --model tests/fixtures/parity/gemma2 --device cuda --torch_dtype bfloat16 --do_sample true --repetition_penalty 1.3 --max_new_tokens 12 --input_ids 5,6;7" \
         "infer --device cuda:0 --torch_dtype float16 --max_new_tokens 12 --repetition_penalty 1.2 --input_ids 5,6,7;9" \
         "infer --device cuda:3 --max_new_tokens 3" "infer --device cuda --stream true --max_new_tokens 6"; do
  echo "== osprey $a"
  $O $a 2>&1 | grep -v "demo model" | head -4
done
