#!/usr/bin/env bash
# Before/after check of `osprey infer` for a refactor (issue 14): runs the same greedy and seeded-sampling
# commands (token ids, a dataset, the chat, batches, penalties, stop at eos) with two builds of the CLI on the CPU
# and diffs their stdout. Usage: tools/compare_infer.sh OLD_OSPREY_DLL NEW_OSPREY_DLL (each `dotnet <dll>`-runnable).
set -uo pipefail
old=$1 new=$2
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
fx="$root/tests/fixtures/parity"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '%s\n' '{"messages": [{"role": "user", "content": "hi"}]}' '{"query": "and 3+3?", "history": [["2+2?", "4"]], "response": "6"}' \
    '{"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "a longer question about the weather"}]}' > "$tmp/data.jsonl"
S="--do_sample true --temperature 0.8 --top_p 0.9 --top_k 40 --seed 3"
cases=(
  "--model $fx/llama3 --input_ids 1,17,42;3,8,250,61;5 --max_new_tokens 16"
  "--model $fx/qwen2 --input_ids 1,17,42;3,8,250,61 --max_new_tokens 16"
  "--model $fx/llama3 --input_ids 1,17,42;3,8 --max_new_tokens 16 $S"
  "--model $fx/gemma2 --input_ids 5,6;7 --max_new_tokens 16 --do_sample true --repetition_penalty 1.3 --seed 4"
  "--model $fx/gemma2 --input_ids 5,6,7 --max_new_tokens 16 --top_p 0.5 --temperature 1.3 --seed 9 --stream true"
  "--model $fx/llama3 --input_ids 5,6,7;9 --max_new_tokens 12 --repetition_penalty 1.2 --ignore_eos true"
  "--val_dataset $tmp/data.jsonl --max_new_tokens 12 --max_batch_size 3"
  "--val_dataset $tmp/data.jsonl --max_new_tokens 12 $S"
  "--val_dataset $tmp/data.jsonl --max_new_tokens 12 --system sys --temperature 1.1 --top_p 0.7 --seed 5"
  "--max_new_tokens 12 $S"
  "--max_new_tokens 12 --stream false"
)
fail=0
for c in "${cases[@]}"; do
  a=$(printf 'hello\nhi\nclear\nhello\n' | dotnet "$old" infer --device cpu $c 2>/dev/null)
  b=$(printf 'hello\nhi\nclear\nhello\n' | dotnet "$new" infer --device cpu $c 2>/dev/null)
  if [[ "$a" == "$b" && -n "$a" ]]; then echo "same: $c"; else echo "DIFFERENT: $c"; diff <(echo "$a") <(echo "$b") | head -10; fail=1; fi
done
exit $fail
