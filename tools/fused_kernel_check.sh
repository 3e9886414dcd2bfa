#!/usr/bin/env bash
# Issue 23, one device call: the fused CUDA kernels (src/Osprey/Runtime/FusedKernels.cs) on the GPU machine.
#   1. osprey kernel-probe --fused true: every kernel, forward and backward, float32/float16/bfloat16, against the
#      tensor-op path through the same modules; then each kernel timed against its tensor ops at 7B shapes;
#   2. tools/gpu_parity_check.py: every parity fixture family, float32 greedy on CUDA (kernels on), against the ids
#      transformers generated;
#   3. decode in the serving engine (CUDA graphs), 0.5B- and 7B-shaped Qwen2 with random bf16 weights, 128-token prompts,
#      256 new, 1 and 32 concurrent requests: OSPREY_FUSED_KERNELS=0 (the tensor path) against the kernels, same call.
# Needs .dist/osprey-gpu.tar.xz (tools/pack_gpu.sh) and .dist/tokenizers.tar.xz; carry .dist. SIZES, CONC, NEW override;
# DECODE_ONLY=1 runs part 3 alone.
set -uo pipefail
OUT=${OUT:-/tmp/osprey-out}; mkdir -p "$OUT" /tmp/osp /tmp/t
export DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1 PYTHONUNBUFFERED=1
tar -xJf .dist/osprey-gpu.tar.xz -C /tmp/osp; tar -xJf .dist/tokenizers.tar.xz -C /tmp/t
OSP=/tmp/osp/osprey-gpu/osprey
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
if [[ ${DECODE_ONLY:-0} != 1 ]]; then
echo "== 1. kernel-probe --fused"
$OSP kernel-probe --fused true --batch_size 1 32 4096 > "$OUT/probe.txt" 2>&1; echo "rc=$?" >> "$OUT/probe.txt"
echo "== 2. parity fixtures on CUDA (float32, kernels on)"
python3 tools/gpu_parity_check.py --osprey $OSP --fixtures tests/fixtures/parity > "$OUT/parity.txt" 2>&1; echo "rc=$?" >> "$OUT/parity.txt"
fi
echo "== 3. decode, kernels off/on"
for size in ${SIZES:-0.5b 7b}; do
  M=/tmp/qwen2-$size
  [[ -f $M/config.json ]] || python3 tools/make_bench_model.py --size $size --out $M 2>&1 | grep wrote
  cp /tmp/t/tokenizers/qwen3/tokenizer.json /tmp/t/tokenizers/qwen3/tokenizer_config.json $M/
  for fused in 0 1; do
    OSPREY_FUSED_KERNELS=$fused $OSP benchmark --model $M --device cuda --torch_dtype bfloat16 --concurrency ${CONC:-1 32} \
      --prompt_length 128 --max_new_tokens ${NEW:-256} --result_path "$OUT/decode-$size-fused$fused.jsonl" > "$OUT/decode-$size-fused$fused.txt" 2>&1
  done
done
echo; echo "== summary"
{
  cat "$OUT/gpu.txt"; cat "$OUT/probe.txt" "$OUT/parity.txt" 2>/dev/null | tail -80
  python3 - "$OUT" <<'PY'
import json, os, sys
out = sys.argv[1]
print(f"{'model':<8}{'requests':>9}{'tensor ops tok/s':>18}{'fused tok/s':>13}{'ratio':>7}{'ms/token off':>14}{'ms/token on':>13}")
for size in ("0.5b", "7b"):
    rows = {}
    for fused in (0, 1):
        p = os.path.join(out, f"decode-{size}-fused{fused}.jsonl")
        if not os.path.exists(p): continue
        for line in open(p):
            r = json.loads(line); r = r.get("result", r)
            rows.setdefault(r["Concurrency"], {})[fused] = r
    for c, pair in sorted(rows.items()):
        if len(pair) < 2: continue
        a, b = pair[0], pair[1]
        ta, tb = a["ThroughputTokensPerSecond"], b["ThroughputTokensPerSecond"]
        print(f"{size:<8}{c:>9}{ta:>18.1f}{tb:>13.1f}{tb / ta:>7.3f}{a['MillisecondsPerToken']:>14.2f}{b['MillisecondsPerToken']:>13.2f}")
PY
} | tee "$OUT/summary.txt"
(cd "$OUT" && tar -czf /tmp/details.tgz --exclude summary.txt . && find . -mindepth 1 ! -name summary.txt -delete && mv /tmp/details.tgz details.tgz)
