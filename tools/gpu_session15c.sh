#!/usr/bin/env bash
# Session 15, third device call (issue 16), after grammar steps are kept per (state, token) (TokenVocabulary.Next):
# tools/structured_bench.sh with the memos on (default; CONC="32 1", both formats, ROUNDS=3) and off (OSPREY_GRAMMAR_MEMO=0,
# person at 32), then one OSPREY_PROFILE=1 round of the person schema at 32. Outputs in one tarball. Needs
# .dist/osprey-gpu.tar.xz and .dist/tokenizers.tar.xz; carry .dist. The tables come last.
# A record of that call: both memos (TokenVocabulary.Next and the verdict memo, OSPREY_GRAMMAR_MEMO) were removed after it
# (benchmarks/session15-h100.md), so on later code the two runs are the same engine.
set -uo pipefail
FINAL=${OUT:-/tmp/osprey-out}; mkdir -p "$FINAL"
W=/tmp/s15c; mkdir -p $W
start=$SECONDS
OUT=$W/default CONC="32 1" NEW=256 ROUNDS=3 timeout 300 bash tools/structured_bench.sh > $W/default.log 2>&1
OUT=$W/memo0 OSPREY_GRAMMAR_MEMO=0 FORMATS=/tmp/person.schema.json CONC=32 NEW=256 ROUNDS=3 timeout 120 bash tools/structured_bench.sh > $W/memo0.log 2>&1
DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1 OSPREY_PROFILE=1 timeout 100 /tmp/osp/osprey-gpu/osprey benchmark --model /tmp/qwen2-0.5b --device cuda --torch_dtype bfloat16 \
  --concurrency 32 --prompt_length 128 --max_new_tokens 256 --response_format /tmp/person.schema.json > $W/profile-person-32.txt 2>&1
tar -czf "$FINAL/s15c.tgz" -C $W .
echo "== memo off"; grep -h "grammar:" $W/memo0/structured-*.txt | head -1; grep -E "^person" $W/memo0.log
echo "== profile"; grep -v "^ *0\.0" $W/profile-person-32.txt | grep -A8 "^profile"
echo "== default"; grep -h "grammar:" $W/default/structured-*.txt | sort | uniq -c; tail -5 $W/default.log
echo "time used: $((SECONDS - start)) s"
