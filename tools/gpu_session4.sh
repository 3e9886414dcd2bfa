#!/usr/bin/env bash
# One device call of the 2026-12-06 fourth session (the lead runs it): the vision-language fixtures (issue 22), the
# NCCL world-size-1 smoke test (issue 24), structured outputs at 1 and 32 concurrent requests (issue 16) and the 0.5B
# evaluation benchmark after generation moved onto the serving engine (issue 19). Each part has its own time limit
# and output folder under $OUT. Needs .dist (tools/pack_gpu.sh, tokenizers); carry .dist.
set -uo pipefail
OUT=${OUT:-/tmp/osprey-out}; mkdir -p "$OUT" /tmp/osp
tar -xJf .dist/osprey-gpu.tar.xz -C /tmp/osp
part() { local name=$1 limit=$2; shift 2; local s=$(date +%s); mkdir -p "$OUT/$name"
  OUT="$OUT/$name" timeout "$limit" "$@" > "$OUT/$name/stdout.txt" 2>&1; echo "== $name: rc=$? in $(( $(date +%s) - s )) s"; }
part vl 90 bash -c 'python3 tools/make_vl_fixtures.py --out /tmp/vl-fixtures && tar -czf $OUT/vl-fixtures.tgz -C /tmp vl-fixtures'
part nccl 150 bash tools/nccl_smoke.sh
part structured 170 env CONC="1 32" bash tools/structured_bench.sh
part eval 200 env SIZES=0.5b bash tools/eval_bench.sh
for p in vl nccl structured eval; do echo "-- $p"; tail -6 "$OUT/$p/stdout.txt"; done
