#!/usr/bin/env bash
# Behaviour snapshot for refactors (issue 14): runs training, resume, inference and serving on the CPU with fixed
# seeds and prints every training loss (from logging.jsonl) and every greedy reply. Run it on two builds and diff
# the outputs: a refactor that keeps behaviour gives identical files.
#   tools/behaviour_snapshot.sh [OSPREY_LAUNCHER] > snapshot.txt     (default launcher: ./osprey of this checkout)
# The baseline taken before the architecture refactor (main at c85082d) is tools/behaviour_snapshot.baseline.txt;
# It takes a few minutes on 2 cores, so it is run by hand rather than in the test suite.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
osprey="${1:-$root/osprey}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
data="$root/examples/datasets"


losses() { # prints step and every loss-like field of each logging.jsonl record, in order
    python3 - "$1" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    keys = [k for k in sorted(r) if ("loss" in k or k.startswith("rewards") or k.startswith("logps") or k.startswith("eval_rewards") or k in ("grad_norm", "token_acc", "eval_token_acc", "learning_rate", "kl"))]
    if keys:
        print("  step", r.get("global_step"), " ".join(f"{k}={r[k]!r}" for k in keys))
PY
}

train() { # name, verb, flags...
    local name=$1 verb=$2; shift 2
    "$osprey" "$verb" --model demo --seed 7 --logging_steps 1 --output_dir "$work/$name" "$@" > "$work/$name.out" 2> "$work/$name.err" \
        || { echo "$name failed:"; cat "$work/$name.err"; exit 1; }
    echo "== $name"
    losses "$(ls -d "$work/$name"/v*/ | head -1)/logging.jsonl"
}

common=(--max_steps 6 --save_steps 3 --per_device_train_batch_size 2 --gradient_accumulation_steps 2 --learning_rate 1e-2)
train sft-lora sft --dataset "$data/memorize.jsonl" "${common[@]}" --lora_rank 4 --val_dataset "$data/memorize.jsonl" --eval_steps 3
train sft-full sft --dataset "$data/memorize.jsonl" "${common[@]}" --train_type full --learning_rate 1e-3
train sft-dora sft --dataset "$data/messages.jsonl" "${common[@]}" --use_dora true --lorap_lr_ratio 4 --lr_scheduler_type linear --warmup_steps 2
train pt pt --dataset "$data/pretrain.jsonl" "${common[@]}" --max_length 64
train dpo rlhf --rlhf_type dpo --dataset "$data/preference.jsonl" "${common[@]}" --split_dataset_ratio 0.3 --eval_steps 3
train simpo rlhf --rlhf_type simpo --dataset "$data/preference.jsonl" "${common[@]}"
train orpo rlhf --rlhf_type orpo --dataset "$data/preference.jsonl" "${common[@]}" --train_type full --learning_rate 1e-4
train kto rlhf --rlhf_type kto --dataset "$data/kto.jsonl" "${common[@]}"
train rm rlhf --rlhf_type rm --dataset "$data/preference.jsonl" "${common[@]}"

# Resume: a run stopped after checkpoint-3 and resumed must log the same steps 4-6 as the uninterrupted run.
first="$(ls -d "$work/sft-lora"/v*/ | head -1)"
"$osprey" sft --model demo --seed 7 --logging_steps 1 --dataset "$data/memorize.jsonl" "${common[@]}" --lora_rank 4 \
    --val_dataset "$data/memorize.jsonl" --eval_steps 3 --resume_from_checkpoint "$first/checkpoint-3" > /dev/null 2> "$work/resume.err" \
    || { cat "$work/resume.err"; exit 1; }
echo "== sft-lora resumed from checkpoint-3 (the run's own logging.jsonl, now with both runs' records)"
losses "$first/logging.jsonl"

echo "== infer greedy (demo + sft-lora adapter, 24 tokens)"
printf 'What do ospreys eat?\nWhere do ospreys live?\n' > "$work/q.txt"
python3 - "$work/q.txt" "$work/rows.jsonl" <<'PY'
import json, sys
with open(sys.argv[2], "w") as f:
    for q in open(sys.argv[1]):
        f.write(json.dumps({"messages": [{"role": "user", "content": q.strip()}]}) + "\n")
PY
"$osprey" infer --adapters "$first/checkpoint-6" --val_dataset "$work/rows.jsonl" --max_new_tokens 24 --temperature 0 2>/dev/null
for family in "$root"/tests/fixtures/parity/*/; do
    name=$(basename "$family")
    echo "== infer greedy $name"
    "$osprey" infer --model "$family" --val_dataset "$work/rows.jsonl" --max_new_tokens 16 --temperature 0 --max_batch_size 2 2>/dev/null
done

cat > "$work/ask.py" <<'PY'
import json, sys, time, urllib.request, concurrent.futures
port = sys.argv[1]
model = None
for _ in range(600):
    try:
        model = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=1))["data"][0]["id"]
        break
    except Exception:
        time.sleep(0.2)
def ask(q):
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": q}], "max_tokens": 16, "temperature": 0}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", body, {"Content-Type": "application/json"})
    r = json.load(urllib.request.urlopen(req, timeout=120))
    return json.dumps(r["choices"][0]["message"]["content"], ensure_ascii=False), r["choices"][0]["finish_reason"], json.dumps(r["usage"])
with concurrent.futures.ThreadPoolExecutor(2) as pool:
    for out in pool.map(ask, ["What do ospreys eat?", "Where do ospreys live?"]):
        print(" ", *out)
PY
for family in qwen2 llama3 gemma2; do
    echo "== deploy greedy $family (two requests at once through the API)"
    port=$((20000 + RANDOM % 20000))
    "$osprey" deploy --model "$root/tests/fixtures/parity/$family" --port "$port" --host 127.0.0.1 > "$work/deploy.out" 2> "$work/deploy.err" &
    pid=$!
    status=0
    python3 "$work/ask.py" "$port" || status=$?
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    [ "$status" -eq 0 ] || { cat "$work/deploy.err"; exit 1; }
done
