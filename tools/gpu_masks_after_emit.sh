#!/usr/bin/env bash
# Issue 16, one device call: does starting the next step's allowed sets after the tokens' hand-out
# (OSPREY_MASKS_AFTER_EMIT=1, InferenceEngine.MasksAfterEmit) lift the person schema at 32 requests? Session 15's profile
# (benchmarks/session15-h100.md) had 32 person rows' hand-out at 0.33 ms a step against 0.08 ms for free text while those
# sets were computed beside it. Same call, same card: tools/structured_bench.sh (CONC="32 1", both formats, NEW=256,
# ROUNDS=3) with the switch off and on, alternating, then one OSPREY_PROFILE=1 round of the person schema at 32 each way.
# Outputs in one tarball. Needs .dist/osprey-gpu.tar.xz and .dist/tokenizers.tar.xz; carry .dist. The tables come last.
set -uo pipefail
FINAL=${OUT:-/tmp/osprey-out}; mkdir -p "$FINAL"
W=/tmp/masks-after-emit; mkdir -p $W
start=$SECONDS
for a in 0 1; do
  OUT=$W/after$a OSPREY_MASKS_AFTER_EMIT=$a CONC="32 1" NEW=256 ROUNDS=3 timeout 200 bash tools/structured_bench.sh > $W/after$a.log 2>&1
done
for a in 0 1; do
  DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1 OSPREY_MASKS_AFTER_EMIT=$a OSPREY_PROFILE=1 timeout 100 /tmp/osp/osprey-gpu/osprey benchmark \
    --model /tmp/qwen2-0.5b --device cuda --torch_dtype bfloat16 --concurrency 32 --prompt_length 128 --max_new_tokens 256 \
    --response_format /tmp/person.schema.json > $W/profile-after$a.txt 2>&1
done
tar -czf "$FINAL/masks-after-emit.tgz" -C $W .
for a in 0 1; do echo "== profile, OSPREY_MASKS_AFTER_EMIT=$a"; grep -v "^ *0\.0[0-4]" $W/profile-after$a.txt | grep -A9 "^profile" | grep -v "^requests\|^ *32 "; done
for a in 0 1; do echo "== OSPREY_MASKS_AFTER_EMIT=$a"; tail -5 $W/after$a.log; done
echo "time used: $((SECONDS - start)) s"
