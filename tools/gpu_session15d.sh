#!/usr/bin/env bash
# Session 15, fourth device call (issue 16): OSPREY_PROFILE=1 rounds at 32 requests (person schema, json_object) with the
# step's host phases after the tokens are read back split (grammars stepped, emit, row compaction), then the final
# tools/structured_bench.sh table (CONC="32 1", both formats, ROUNDS=3). Outputs in one tarball. Needs
# .dist/osprey-gpu.tar.xz and .dist/tokenizers.tar.xz; carry .dist. The tables come last.
set -uo pipefail
FINAL=${OUT:-/tmp/osprey-out}; mkdir -p "$FINAL"
W=/tmp/s15d; mkdir -p $W
start=$SECONDS
OUT=$W/default CONC="32 1" NEW=256 ROUNDS=3 timeout 300 bash tools/structured_bench.sh > $W/default.log 2>&1
for f in /tmp/person.schema.json json_object; do
  DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1 OSPREY_PROFILE=1 timeout 100 /tmp/osp/osprey-gpu/osprey benchmark --model /tmp/qwen2-0.5b --device cuda \
    --torch_dtype bfloat16 --concurrency 32 --prompt_length 128 --max_new_tokens 256 --response_format $f > $W/profile-$(basename $f .schema.json)-32.txt 2>&1
done
tar -czf "$FINAL/s15d.tgz" -C $W .
for f in $W/profile-*.txt; do echo "== $f"; grep -v "^ *0\.0[0-4]" $f | grep -A12 "^profile" | grep -v "^requests\|^ *32 "; done
echo "== default"; tail -5 $W/default.log
echo "time used: $((SECONDS - start)) s"
