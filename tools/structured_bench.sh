#!/usr/bin/env bash
# One device call: the throughput cost of structured outputs (issue 16 item 3: "throughput drops < 10% on the
# GPU"). A Qwen2.5-0.5B-shaped model with random bf16 weights (tools/make_bench_model.py) and the Qwen3
# tokenizer (151,669 tokens, the vocabulary the masks are built over) from .dist/tokenizers.tar.xz, as
# tools/gpu_serve.sh sets it up. For each response format, `osprey benchmark --concurrency N --response_format F`
# runs N requests under the grammar (each ends when its value is complete), then the same prompts as free text
# with every row held to the length its constrained run produced, so both rounds have the same batch at every
# step and the throughput ratio is the masks' cost alone. Needs .dist/osprey-gpu.tar.xz (tools/pack_gpu.sh) and
# .dist/tokenizers.tar.xz; carry .dist. Writes to $OUT; the table comes last.
set -uo pipefail
OUT=${OUT:-/tmp/osprey-out}
mkdir -p "$OUT" /tmp/osp
export DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1 PYTHONUNBUFFERED=1
tar -xJf .dist/osprey-gpu.tar.xz -C /tmp/osp
tar -xJf .dist/tokenizers.tar.xz -C /tmp/osp
OSP=/tmp/osp/osprey-gpu/osprey
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
M=/tmp/qwen2-0.5b
[[ -d $M ]] || python3 tools/make_bench_model.py --size 0.5b --out $M 2>&1 | grep wrote
cp /tmp/osp/tokenizers/qwen3/tokenizer.json /tmp/osp/tokenizers/qwen3/tokenizer_config.json $M/
# A schema like a tool call's arguments: bounded strings, a number, an enum, a short array.
cat > /tmp/person.schema.json <<'JSON'
{"type":"object","properties":{"name":{"type":"string","maxLength":24},"age":{"type":"integer"},
 "city":{"type":"string","maxLength":32},"role":{"enum":["admin","user","guest"]},
 "tags":{"type":"array","items":{"type":"string","maxLength":12},"maxItems":4}},
 "required":["name","age","city","role","tags"],"additionalProperties":false}
JSON
B="--prompt_length ${PROMPT:-128} --max_new_tokens ${NEW:-256}"
C="${CONC:-1 32}"
for f in json_object /tmp/person.schema.json; do
  name=$(basename "$f" .schema.json)
  echo "== osprey serving engine, qwen2-0.5b, response_format $f: $C concurrent requests, $B"
  $OSP benchmark --model $M --device cuda --torch_dtype bfloat16 --concurrency $C $B --response_format "$f" \
    --result_path "$OUT/structured.jsonl" 2>&1 | tee "$OUT/structured-$name.txt"
done
echo
echo "== structured/plain decode throughput (same rows, same lengths; 1.000 = no cost, issue asks > 0.90)"
printf "%-14s %8s %14s %14s %7s\n" format requests structured_t/s plain_t/s ratio
for f in json_object person; do
  grep -h "^structured/plain" "$OUT/structured-$f.txt" | \
    sed -E 's#.* at ([0-9]+) requests: ([0-9.]+) / ([0-9.]+) tok/s = ([0-9.]+)#\1 \2 \3 \4#' | \
    while read -r n s p r; do printf "%-14s %8s %14s %14s %7s\n" "$f" "$n" "$s" "$p" "$r"; done
done
