#!/usr/bin/env bash
# Cross-checks Osprey's Hugging Face download client against the official huggingface_hub client, both talking
# to tools/hf_reference_server.py (an independent stdlib implementation of the hub's download protocol).
# For the GPU machine, where python3 has huggingface_hub:
#
#   OSP=/path/to/osprey tools/hub_crosscheck.sh [MODEL_FOLDER]     (default tests/fixtures/parity/qwen2)
#
# The folder is served as the model repo osprey-test/tiny at branch main. Checks:
#   a  huggingface_hub.snapshot_download(revision="main", cache_dir=CACHE_A) through the server: the server
#      speaks the official client's protocol; files equal the source folder.
#   b  `osprey download --use_hf true` into the same CACHE_A reuses everything (no new content GET in the
#      server log) and prints the same snapshot path as (a).
#   c  `osprey download` into a fresh CACHE_B; huggingface_hub.snapshot_download(local_files_only=True) resolves
#      it offline to the same path, the files equal the source, the blob names equal CACHE_A's.
#   d  `osprey infer --model osprey-test/tiny --use_hf true` with HF_HUB_CACHE=CACHE_B runs (and fetches no
#      content).
# Prints a PASS/FAIL table; exits non-zero when any check fails. Writes under $OUT when set (server log, outputs).
set -uo pipefail
cd "$(dirname "$0")/.."
SRC=${1:-tests/fixtures/parity/qwen2}
OSP=${OSP:-}
REPO=osprey-test/tiny
WORK=$(mktemp -d /tmp/hub-crosscheck.XXXXXX)
OUTDIR=${OUT:-$WORK/out}
mkdir -p "$OUTDIR"
CACHE_A=$WORK/cache-a
CACHE_B=$WORK/cache-b
LOG=$WORK/requests.log
declare -a NAMES=() RESULTS=() NOTES=()
record() { NAMES+=("$1"); RESULTS+=("$2"); NOTES+=("$3"); echo "[$2] $1: $3"; }

if [[ ! -d "$SRC" ]]; then echo "no model folder $SRC" >&2; exit 2; fi
mkdir -p "$WORK/repos/models/osprey-test/tiny/main"
cp -r "$SRC"/. "$WORK/repos/models/osprey-test/tiny/main/"

python3 tools/hf_reference_server.py --root "$WORK/repos" --port 0 --log "$LOG" > "$WORK/server.out" 2> "$WORK/server.err" &
SERVER_PID=$!
trap 'kill "$SERVER_PID" 2>/dev/null; cp -f "$LOG" "$OUTDIR/requests.log" 2>/dev/null' EXIT
for _ in $(seq 100); do [[ -s "$WORK/server.out" ]] && break; sleep 0.1; done
URL=$(head -1 "$WORK/server.out" | sed -n 's/^listening on //p')
if [[ -z "$URL" ]]; then echo "the reference server did not start:" >&2; cat "$WORK/server.err" >&2; exit 2; fi
echo "reference server at $URL serving $SRC as $REPO"

# Isolate both clients from this machine's own hub settings and credentials.
unset HF_TOKEN HUGGING_FACE_HUB_TOKEN HF_HOME HF_HUB_OFFLINE TRANSFORMERS_OFFLINE
export HF_ENDPOINT=$URL HF_HUB_DISABLE_TELEMETRY=1 HF_HUB_DISABLE_IMPLICIT_TOKEN=1 HF_HUB_ENABLE_HF_TRANSFER=0 \
       HF_HUB_DISABLE_PROGRESS_BARS=1 HF_TOKEN_PATH=$WORK/no-token DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1

content_gets() { awk -F'\t' '$1=="GET" && ($4==200 || $4==206) && $2 !~ /^\/api\//' "$LOG" 2>/dev/null | wc -l; }
SHA=$(python3 -c "import json,sys,urllib.request; print(json.load(urllib.request.urlopen(sys.argv[1]))['sha'])" "$URL/api/models/$REPO/revision/main")

# Compares a snapshot folder with the source folder, file by file (links followed).
same_files() {
  python3 - "$SRC" "$1" <<'EOF'
import filecmp, os, sys
src, snap = sys.argv[1], sys.argv[2]
def files(root):
    out = set()
    for d, _, fs in os.walk(root, followlinks=True):
        for f in fs:
            rel = os.path.relpath(os.path.join(d, f), root)
            if not rel.startswith(".cache" + os.sep):
                out.add(rel)
    return out
a, b = files(src), files(snap)
if a != b:
    print(f"file lists differ: only in source {sorted(a - b)}, only in snapshot {sorted(b - a)}"); sys.exit(1)
bad = [f for f in sorted(a) if not filecmp.cmp(os.path.join(src, f), os.path.join(snap, f), shallow=False)]
if bad:
    print(f"contents differ: {bad}"); sys.exit(1)
print(f"{len(a)} files equal")
EOF
}

# ---- a: the official client downloads from the reference server --------------------------------------------
PY_A=$(python3 - "$REPO" "$CACHE_A" 2>"$OUTDIR/a.err" <<'EOF'
import sys, huggingface_hub
from huggingface_hub import snapshot_download
p = snapshot_download(sys.argv[1], revision="main", cache_dir=sys.argv[2])
print(huggingface_hub.__version__, file=sys.stderr)
print(p)
EOF
)
A_RC=$?
PATH_A=$(echo "$PY_A" | tail -1)
if [[ $A_RC -ne 0 ]]; then
  record "a huggingface_hub snapshot_download" FAIL "rc=$A_RC: $(tail -3 "$OUTDIR/a.err" | tr '\n' ' ')"
elif [[ "$(realpath "$PATH_A")" != "$(realpath "$CACHE_A/models--osprey-test--tiny/snapshots/$SHA")" ]]; then
  record "a huggingface_hub snapshot_download" FAIL "path $PATH_A, expected .../snapshots/$SHA"
elif ! NOTE=$(same_files "$PATH_A"); then
  record "a huggingface_hub snapshot_download" FAIL "$NOTE"
else
  record "a huggingface_hub snapshot_download" PASS "huggingface_hub $(tail -1 "$OUTDIR/a.err"), $NOTE, $(content_gets) content GETs"
fi

if [[ -z "$OSP" || ! -x "$OSP" ]]; then
  record "b osprey reuses huggingface_hub's cache" FAIL "OSP is not set to an osprey executable"
  record "c huggingface_hub reads osprey's cache offline" FAIL "OSP is not set to an osprey executable"
  record "d osprey infer from the cache" FAIL "OSP is not set to an osprey executable"
else
  # ---- b: osprey into the same cache: everything is reused ---------------------------------------------
  BEFORE=$(content_gets)
  HF_HUB_CACHE=$CACHE_A "$OSP" download --model "$REPO" --use_hf true > "$OUTDIR/b.out" 2> "$OUTDIR/b.err"
  B_RC=$?
  AFTER=$(content_gets)
  PATH_B=$(tail -1 "$OUTDIR/b.out")
  if [[ $B_RC -ne 0 ]]; then
    record "b osprey reuses huggingface_hub's cache" FAIL "rc=$B_RC: $(tail -3 "$OUTDIR/b.err" | tr '\n' ' ')"
  elif [[ "$(realpath "$PATH_B" 2>/dev/null)" != "$(realpath "$PATH_A")" ]]; then
    record "b osprey reuses huggingface_hub's cache" FAIL "printed '$PATH_B', huggingface_hub gave '$PATH_A'"
  elif [[ $AFTER -ne $BEFORE ]]; then
    record "b osprey reuses huggingface_hub's cache" FAIL "$((AFTER - BEFORE)) new content GETs (expected 0)"
  else
    record "b osprey reuses huggingface_hub's cache" PASS "same snapshot path, 0 new content GETs"
  fi

  # ---- c: osprey into a fresh cache; huggingface_hub resolves it offline --------------------------------
  HF_HUB_CACHE=$CACHE_B "$OSP" download --model "$REPO" --use_hf true > "$OUTDIR/c.out" 2> "$OUTDIR/c.err"
  C_RC=$?
  PATH_C=$(tail -1 "$OUTDIR/c.out")
  PY_C=$(HF_HUB_OFFLINE=1 python3 - "$REPO" "$CACHE_B" 2>"$OUTDIR/c-py.err" <<'EOF'
import sys
from huggingface_hub import snapshot_download
print(snapshot_download(sys.argv[1], cache_dir=sys.argv[2], local_files_only=True))
EOF
  )
  PYC_RC=$?
  BLOBS_A=$(ls "$CACHE_A/models--osprey-test--tiny/blobs" 2>/dev/null | sort | tr '\n' ' ')
  BLOBS_B=$(ls "$CACHE_B/models--osprey-test--tiny/blobs" 2>/dev/null | sort | tr '\n' ' ')
  if [[ $C_RC -ne 0 ]]; then
    record "c huggingface_hub reads osprey's cache offline" FAIL "osprey rc=$C_RC: $(tail -3 "$OUTDIR/c.err" | tr '\n' ' ')"
  elif [[ $PYC_RC -ne 0 ]]; then
    record "c huggingface_hub reads osprey's cache offline" FAIL "local_files_only rc=$PYC_RC: $(tail -3 "$OUTDIR/c-py.err" | tr '\n' ' ')"
  elif [[ "$(realpath "$(echo "$PY_C" | tail -1)")" != "$(realpath "$PATH_C" 2>/dev/null)" ]]; then
    record "c huggingface_hub reads osprey's cache offline" FAIL "huggingface_hub resolved '$(echo "$PY_C" | tail -1)', osprey printed '$PATH_C'"
  elif ! NOTE=$(same_files "$PATH_C"); then
    record "c huggingface_hub reads osprey's cache offline" FAIL "$NOTE"
  elif [[ "$BLOBS_A" != "$BLOBS_B" ]]; then
    record "c huggingface_hub reads osprey's cache offline" FAIL "blob names differ: huggingface_hub [$BLOBS_A] osprey [$BLOBS_B]"
  else
    record "c huggingface_hub reads osprey's cache offline" PASS "same path offline, $NOTE, same blob names"
  fi

  # ---- d: osprey infer from CACHE_B -----------------------------------------------------------------
  BEFORE=$(content_gets)
  HF_HUB_CACHE=$CACHE_B "$OSP" infer --model "$REPO" --use_hf true --input_ids "1 2 3" --max_new_tokens 4 --device cpu \
    > "$OUTDIR/d.out" 2> "$OUTDIR/d.err"
  D_RC=$?
  AFTER=$(content_gets)
  if [[ $D_RC -ne 0 ]]; then
    record "d osprey infer from the cache" FAIL "rc=$D_RC: $(tail -3 "$OUTDIR/d.err" | tr '\n' ' ')"
  elif [[ $AFTER -ne $BEFORE ]]; then
    record "d osprey infer from the cache" FAIL "$((AFTER - BEFORE)) content GETs for a cached model"
  else
    record "d osprey infer from the cache" PASS "$(tail -1 "$OUTDIR/d.out" | cut -c1-80)"
  fi
fi

echo
printf '%-48s %-5s %s\n' CHECK RESULT NOTE
FAILED=0
for i in "${!NAMES[@]}"; do
  printf '%-48s %-5s %s\n' "${NAMES[$i]}" "${RESULTS[$i]}" "${NOTES[$i]}"
  [[ ${RESULTS[$i]} == PASS ]] || FAILED=1
done
exit $FAILED
