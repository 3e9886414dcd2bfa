#!/usr/bin/env bash
# Session 14, issue 16: where structured decoding's host time goes on the GPU machine. Pipelined decode
# (OSPREY_ASYNC_DECODE=1) at 32 and 1 requests, json_object and the person schema, NEW=256: each constrained round's
# token ids saved (OSPREY_BENCH_TOKENS) to be replayed through GrammarMaskBench off the GPU, the grammar counters
# printed, and one OSPREY_PROFILE=1 round per format. Needs .dist/osprey-gpu.tar.xz and .dist/tokenizers.tar.xz.
set -uo pipefail
OUT=${OUT:-/tmp/osprey-out}; mkdir -p "$OUT"
export DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1
for a in 1 0; do
  OUT=$OUT/s$a OSPREY_ASYNC_DECODE=$a OSPREY_BENCH_TOKENS=$OUT/tokens$a.jsonl CONC="32 1" NEW=256 ROUNDS=${ROUNDS:-2} bash tools/structured_bench.sh > "$OUT/structured$a.log" 2>&1
done
for f in json_object /tmp/person.schema.json; do
  OSPREY_PROFILE=1 OSPREY_ASYNC_DECODE=1 timeout 60 /tmp/osp/osprey-gpu/osprey benchmark --model /tmp/qwen2-0.5b --device cuda --torch_dtype bfloat16 \
    --concurrency 32 --prompt_length 128 --max_new_tokens 256 --response_format $f > "$OUT/profile-$(basename $f .schema.json).txt" 2>&1
done
grep -h "grammar:" "$OUT"/s1/structured-*.txt
for a in 1 0; do echo "== OSPREY_ASYNC_DECODE=$a"; tail -5 "$OUT/structured$a.log"; done
for f in "$OUT"/profile-*.txt; do echo "== $f"; sed -n 1,14p "$f" | grep -v "^ *0\.0"; done
