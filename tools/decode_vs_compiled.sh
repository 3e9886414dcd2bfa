#!/usr/bin/env bash
# Issue 23, one device call: decode in Osprey's serving engine (CUDA graphs, fused kernels) against transformers'
# fastest generate path, `cache_implementation="static"` (torch.compile + CUDA graphs; tools/bench_hf_generate.py
# --static), same random-weight Qwen2 shapes (tools/make_bench_model.py), 128-token prompts, 256 new tokens, greedy,
# at 1 and 32 rows. Osprey's tok/s is `osprey benchmark`'s throughput, whose wall time includes the prefill; HF's is
# bench_hf_generate.py's decode rate, which leaves it out (so the ratio leans against Osprey). SIZES (default
# "0.5b 7b") within TIME_LEFT seconds (default 560). Needs .dist/osprey-gpu.tar.xz and
# .dist/tokenizers.tar.xz; carry .dist. The table comes last.
set -uo pipefail
OUT=${OUT:-/tmp/osprey-out}; mkdir -p "$OUT" /tmp/osp /tmp/t
start=$SECONDS
left() { echo $(( ${TIME_LEFT:-560} - (SECONDS - start) )); }
export DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1 PYTHONUNBUFFERED=1
[[ -x /tmp/osp/osprey-gpu/osprey ]] || tar -xJf .dist/osprey-gpu.tar.xz -C /tmp/osp
[[ -d /tmp/t/tokenizers ]] || tar -xJf .dist/tokenizers.tar.xz -C /tmp/t
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
for size in ${SIZES:-0.5b 7b}; do
  (( $(left) > 120 )) || break
  M=/tmp/qwen2-$size
  [[ -f $M/config.json ]] || python3 tools/make_bench_model.py --size $size --out $M 2>&1 | grep wrote
  cp /tmp/t/tokenizers/qwen3/tokenizer.json /tmp/t/tokenizers/qwen3/tokenizer_config.json $M/
  timeout $(( $(left) - 10 )) /tmp/osp/osprey-gpu/osprey benchmark --model $M --device cuda --torch_dtype bfloat16 --concurrency 1 32 \
    --prompt_length 128 --max_new_tokens 256 --result_path "$OUT/osprey-$size.jsonl" > "$OUT/osprey-$size.txt" 2>&1
  timeout $(( $(left) - 5 )) python3 tools/bench_hf_generate.py --model $M --batch_size 1 32 --prompt_length 128 --max_new_tokens 256 \
    --static --result_path "$OUT/hf-static-$size.jsonl" > "$OUT/hf-static-$size.txt" 2>&1
done
python3 - "$OUT" <<'PY'
import json, os, sys, glob
out = sys.argv[1]
print(f"{'model':<6}{'rows':>5}{'HF static tok/s':>17}{'Osprey tok/s':>14}{'ratio':>7}{'HF ms/step':>12}{'Osprey ms/token':>17}")
for size in ("0.5b", "7b"):
    hf = {}
    p = os.path.join(out, f"hf-static-{size}.jsonl")
    if os.path.exists(p):
        for l in open(p):
            r = json.loads(l)["result"]; hf[r["Batch"]] = r
    osp = {}
    p = os.path.join(out, f"osprey-{size}.jsonl")
    if os.path.exists(p):
        for l in open(p):
            r = json.loads(l)["result"]; osp[r["Concurrency"]] = r
    for rows in (1, 32):
        h = hf.get(rows); o = osp.get(rows)
        ht = h["DecodeTokensPerSecond"] if h else float("nan")
        ot = o["ThroughputTokensPerSecond"] if o else float("nan")
        hm = h["MillisecondsPerStep"] if h else float("nan")
        om = o["MillisecondsPerToken"] if o else float("nan")
        print(f"{size:<6}{rows:>5}{ht:>17.1f}{ot:>14.1f}{ot/ht if ht == ht and ht else float('nan'):>7.2f}{hm:>12.2f}{om:>17.2f}")
PY
echo "time used: $((SECONDS - start)) s"
