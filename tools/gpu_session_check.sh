#!/usr/bin/env bash
# One device call after the issue-15/16/17 merges: does the GPU build still load PyTorch's CUDA libtorch and behave?
#   1. seeded sampling on CUDA (twice) and on the CPU: the same ids;
#   2. osprey deploy on CUDA (graphs and eager) answers as transformers on all eight tiny families;
#   3. bitsandbytes 4-bit (NF4 + double quant) and 8-bit export of the tiny qwen2/llama3 fixtures on CUDA and on the
#      CPU: byte-identical folders; greedy replies of the 4-bit folder on CUDA equal the CPU's;
#   4. QLoRA (NF4, quantized at load) on CUDA learns the quick-start memorisation and answers it;
#   5. structured outputs on CUDA: json_schema replies of the tiny qwen2 parse and hold the schema's keys.
# Needs .dist/osprey-gpu.tar.xz (tools/pack_gpu.sh). Writes details to $OUT and prints a table last.
set -uo pipefail
OUT=${OUT:-/tmp/osprey-out}; mkdir -p "$OUT" /tmp/osp
export DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1 PYTHONUNBUFFERED=1
tar -xJf .dist/osprey-gpu.tar.xz -C /tmp/osp
O=/tmp/osp/osprey-gpu/osprey
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
summary=()

echo "== 1. seeded sampling"
S="infer --do_sample true --temperature 0.8 --top_p 0.9 --top_k 40 --max_new_tokens 12 --seed 3 --input_ids 1,2;3"
for d in cuda cuda cpu; do $O $S --device $d 2>>"$OUT/sampling.err" | tee -a "$OUT/sampling.txt"; done
summary+=("seeded sampling (cuda, cuda, cpu): $(sort "$OUT/sampling.txt" | uniq | wc -l) distinct line(s) for 2 prompts (2 = all equal)")

echo "== 2. deploy on CUDA vs transformers, all families"
python3 tools/gpu_serve_families.py --osprey $O > "$OUT/serve-families.txt" 2>&1; rc=$?
summary+=("deploy vs transformers, rc=$rc: $(grep -E '^[a-z0-9_]+ +(graphs|eager) ' "$OUT/serve-families.txt" | awk '{printf "%s/%s %s; ", $1, $2, $3}')")

echo "== 3. bitsandbytes export CUDA vs CPU"
for fam in qwen2 llama3; do
  for q in "4 nf4" "4 fp4" "8 x"; do
    set -- $q; bits=$1; qt=$2; tag=$fam-$bits$qt
    for d in cuda cpu; do
      $O export --model tests/fixtures/parity/$fam --quant_method bnb --quant_bits $bits $( [[ $qt != x ]] && echo --bnb_4bit_quant_type $qt ) \
        --device $d --torch_dtype float32 --output_dir /tmp/q/$tag-$d > "$OUT/export-$tag-$d.txt" 2>&1 || echo "export $tag $d failed" >> "$OUT/failures.txt"
    done
    same=yes; for f in /tmp/q/$tag-cpu/*.safetensors; do cmp -s "$f" "/tmp/q/$tag-cuda/$(basename "$f")" || same=no; done
    summary+=("bnb export $tag: CUDA and CPU files byte-identical: $same")
  done
  for d in cuda cpu; do
    $O infer --model /tmp/q/$fam-4nf4-cpu --device $d --input_ids "1,2,3;4,5" --max_new_tokens 16 --temperature 0 2>>"$OUT/infer4.err" > "$OUT/infer4-$fam-$d.txt"
  done
  cmp -s "$OUT/infer4-$fam-cuda.txt" "$OUT/infer4-$fam-cpu.txt" && r=equal || r=DIFFERENT
  summary+=("4-bit $fam greedy ids CUDA vs CPU: $r ($(head -c 80 "$OUT/infer4-$fam-cuda.txt" | tr '\n' ' '))")
done

echo "== 4. QLoRA quick start on CUDA"
$O sft --model demo --dataset examples/datasets/memorize.jsonl --num_train_epochs 100 --quant_method bnb --quant_bits 4 \
  --per_device_train_batch_size 4 --learning_rate 1e-2 --lora_rank 16 \
  --device cuda --output_dir /tmp/qlora --add_version false --logging_steps 20 > "$OUT/qlora.txt" 2>&1; rc=$?
ck=$(ls -d /tmp/qlora/checkpoint-* | sort -V | tail -1)
ans=$(echo "What do ospreys eat?" | $O infer --model demo --quant_method bnb --quant_bits 4 --adapters $ck --device cuda --temperature 0 2>>"$OUT/qlora.err" | tail -3 | tr '\n' ' ')
summary+=("QLoRA demo on CUDA rc=$rc, loss first/last: $(python3 -c "import json;r=[json.loads(l) for l in open('/tmp/qlora/logging.jsonl') if '\"loss\"' in l];print(r[0]['loss'], r[-1]['loss'])" 2>&1 | tail -1); answer: ${ans:0:160}")

echo "== 5. structured outputs on CUDA"
python3 - "$O" > "$OUT/structured.txt" 2>&1 <<'PY'
import json, subprocess, sys, time, urllib.request, re
p = subprocess.Popen([sys.argv[1], "deploy", "--model", "tests/fixtures/parity/qwen2", "--port", "0", "--device", "cuda",
                      "--served_model_name", "m"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
url = None
for line in p.stdout:
    print(line, end="")
    m = re.search(r"http://[0-9.]+:\d+", line)
    if m: url = m.group(0); break
schema = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 12}, "age": {"type": "integer"},
          "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "maxItems": 3}}, "required": ["name", "age", "tags"], "additionalProperties": False}
ok = 0
for seed in range(8):
    body = {"model": "m", "messages": [{"role": "user", "content": "Describe a person."}], "max_tokens": 200, "temperature": 1.0, "seed": seed,
            "response_format": {"type": "json_schema", "json_schema": {"name": "p", "schema": schema, "strict": True}}}
    req = urllib.request.Request(url + "/v1/chat/completions", json.dumps(body).encode(), {"Content-Type": "application/json"})
    r = json.load(urllib.request.urlopen(req, timeout=120))
    text = r["choices"][0]["message"]["content"]; fin = r["choices"][0]["finish_reason"]
    try:
        v = json.loads(text); good = fin == "stop" and set(v) == {"name", "age", "tags"} and isinstance(v["age"], int) and len(v["name"]) <= 12 and all(t in ("a", "b") for t in v["tags"])
    except Exception as e:
        good = False
    ok += good; print(seed, fin, good, text[:200])
print(f"RESULT {ok}/8 valid")
p.terminate(); p.wait(30)
PY
summary+=("structured outputs on CUDA (json_schema, 8 sampled replies): $(grep RESULT "$OUT/structured.txt")")

echo; echo "== summary"
printf '%s\n' "${summary[@]}" | tee "$OUT/summary.txt"
(cd "$OUT" && tar -czf /tmp/details.tgz --exclude summary.txt . && find . -mindepth 1 ! -name summary.txt -delete && mv /tmp/details.tgz details.tgz)
