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
[[ -x /tmp/osp/osprey-gpu/osprey ]] || tar -xJf .dist/osprey-gpu.tar.xz -C /tmp/osp
[[ -d /tmp/osp/tokenizers ]] || tar -xJf .dist/tokenizers.tar.xz -C /tmp/osp
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
# PAIRS=N (default 1): timed structured/free-text pairs per concurrency in each process, one after another (every pair
# is a row of the table's runs).
# FORMATS (default "json_object /tmp/person.schema.json") picks the formats. ROUNDS=N (default 1) runs each format's benchmark N times, alternating the formats: one 64-token round is 0.1-0.3 s,
# and the plain reference alone moved by up to 30% between runs on one machine (session 12), so the table reports the
# median ratio over the runs with the smallest and largest beside it.
ROUNDS=${ROUNDS:-1}
for r in $(seq 1 "$ROUNDS"); do
  for f in ${FORMATS:-json_object /tmp/person.schema.json}; do
    name=$(basename "$f" .schema.json)
    echo "== osprey serving engine, qwen2-0.5b, response_format $f: $C concurrent requests, $B (run $r of $ROUNDS)"
    $OSP benchmark --model $M --device cuda --torch_dtype bfloat16 --concurrency $C $B --response_format "$f" --pairs "${PAIRS:-1}" \
      --result_path "$OUT/structured.jsonl" 2>&1 | tee "$OUT/structured-$name$([[ $ROUNDS == 1 ]] || echo "-$r").txt"
  done
done
echo
echo "== structured/plain decode throughput (same rows, same lengths; 1.000 = no cost, issue asks > 0.90)"
python3 - "$OUT" <<'PY'
import glob, os, re, statistics, sys
runs = {}
for path in sorted(glob.glob(os.path.join(sys.argv[1], "structured-*.txt"))):
    fmt = re.sub(r"-\d+$", "", os.path.basename(path)[len("structured-"):-len(".txt")])
    for line in open(path):
        m = re.match(r"structured/plain throughput at (\d+) requests: ([0-9.]+) / ([0-9.]+) tok/s = ([0-9.]+)", line)
        if m: runs.setdefault((fmt, int(m.group(1))), []).append((float(m.group(4)), float(m.group(2)), float(m.group(3))))
print(f"{'format':<14}{'requests':>9}{'runs':>6}{'median ratio':>14}{'min':>7}{'max':>7}{'structured t/s':>16}{'plain t/s':>11}")
for (fmt, n), rs in sorted(runs.items()):
    ratios = [r[0] for r in rs]
    med = statistics.median(ratios)
    pick = min(rs, key=lambda r: abs(r[0] - med))
    print(f"{fmt:<14}{n:>9}{len(rs):>6}{med:>14.3f}{min(ratios):>7.3f}{max(ratios):>7.3f}{pick[1]:>16.1f}{pick[2]:>11.1f}")
PY
