#!/usr/bin/env bash
# Session 15, second device call (issue 16): the person schema at 32 requests measured 0.764 (0.748-0.819) in the first
# call, below session 14's 0.879 from before closed objects' mask keys forgot their names. Same call, same card:
# tools/structured_bench.sh FORMATS=person CONC=32 ROUNDS=3 for each of OSPREY_GRAMMAR_MEMO (candidates' verdicts kept per
# real state; removed after this call) x OSPREY_GRAMMAR_FORGET (closed objects forget names), then the default (both on) with both formats at 1 and
# 32 requests. Outputs go to one tarball (the returned file count is limited). Needs .dist/osprey-gpu.tar.xz and
# .dist/tokenizers.tar.xz; carry .dist. The table comes last.
set -uo pipefail
FINAL=${OUT:-/tmp/osprey-out}; mkdir -p "$FINAL"
W=/tmp/s15b; mkdir -p $W
start=$SECONDS
for v in "1 1" "0 1" "1 0" "0 0"; do
  set -- $v
  OUT=$W/memo$1-forget$2 OSPREY_GRAMMAR_MEMO=$1 OSPREY_GRAMMAR_FORGET=$2 FORMATS=/tmp/person.schema.json CONC=32 NEW=256 ROUNDS=3 \
    timeout 120 bash tools/structured_bench.sh > $W/memo$1-forget$2.log 2>&1
done
OUT=$W/default CONC="32 1" NEW=256 ROUNDS=3 timeout $(( 580 - (SECONDS - start) )) bash tools/structured_bench.sh > $W/default.log 2>&1
tar -czf "$FINAL/s15b.tgz" -C $W .
for v in memo1-forget1 memo0-forget1 memo1-forget0 memo0-forget0; do
  echo "== $v"; grep -h "grammar:" $W/$v/structured-*.txt; grep -E "^person" $W/$v.log
done
echo "== default"; grep -h "grammar:" $W/default/structured-*.txt; tail -5 $W/default.log
echo "time used: $((SECONDS - start)) s"
