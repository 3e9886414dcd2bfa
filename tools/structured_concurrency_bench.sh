#!/usr/bin/env bash
# CPU benchmark of constrained decoding under concurrency (issue 16; benchmarks/structured-masks-cpu.md): a tiny
# Qwen2 model with random weights (tools/make_tiny_random_model.py: hidden 32, 2 layers) over Qwen3's real
# tokenizer (151,669 tokens), so a decode step is cheap and the host work of the masks dominates. For each
# concurrency, `osprey benchmark --response_format json_object` runs the requests under the grammar, then the same
# requests as free text held to the same lengths; prints ms per decode step (batch) of both and their ratio.
# TOKENIZER=folder with tokenizer.json, else .dist/tokenizers.tar.xz (or /work/main's) is unpacked.
# CONC="1 8 32", PROMPT=128, NEW=256 change the run.
set -euo pipefail
cd "$(dirname "$0")/.."
export DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1
WORK=${WORK:-/tmp/osprey-structured-conc}
mkdir -p "$WORK"
if [[ -z ${TOKENIZER:-} ]]; then
  for dist in .dist/tokenizers.tar.xz /work/main/.dist/tokenizers.tar.xz; do
    [[ -f $dist ]] && { tar -xJf "$dist" -C "$WORK"; TOKENIZER=$WORK/tokenizers/qwen3; break; }
  done
fi
[[ -f ${TOKENIZER:-}/tokenizer.json ]] || { echo "no Qwen3 tokenizer: set TOKENIZER=folder holding tokenizer.json" >&2; exit 2; }
M=$WORK/model
[[ -f $M/model.safetensors ]] || python3 tools/make_tiny_random_model.py "$M"
cp "$TOKENIZER"/tokenizer.json "$TOKENIZER"/tokenizer_config.json "$M"/
OSP=${OSP:-src/Osprey.Cli/bin/Debug/net10.0/linux-x64/osprey}  # OSP=path: another build (the commit before a change)
[[ -x $OSP ]] || dotnet build src/Osprey.Cli 2>&1 | grep -E " error |Elapsed"
printf "%-12s %12s %10s %7s\n" requests structured_ms plain_ms ratio
for n in ${CONC:-1 8 32}; do
  out=$("$OSP" benchmark --model "$M" --device cpu --concurrency "$n" --response_format json_object \
    --prompt_length "${PROMPT:-128}" --max_new_tokens "${NEW:-256}" 2>&1)
  # The table's ms/token is a request's time between its tokens: one decode step of the whole batch.
  s=$(awk '$NF=="json_object"{print $9}' <<<"$out"); p=$(awk '$NF=="lengths)"{print $9}' <<<"$out")
  printf "%-12s %12s %10s %7s\n" "$n" "$s" "$p" "$(awk -v s="$s" -v p="$p" 'BEGIN{printf "%.2f", s/p}')"
done
