#!/usr/bin/env bash
# Issue 21: the web UI's GPU meters (GET /api/gpus, NVML) on a real NVIDIA GPU, one device call (< 60 s).
# Starts `osprey web-ui` from the self-contained GPU build on a free port, runs torch matmuls on GPU 0 for about 6 s,
# fetches /api/gpus four times meanwhile (and once before), prints each answer and nvidia-smi's own reading beside it,
# stops everything, and exits non-zero when no answer lists a GPU with memory (total_bytes > 0, used_bytes present)
# or when utilization_percent never rises above 0 under load. Needs .dist/osprey-gpu.tar.xz (tools/pack_gpu.sh);
# carry .dist. Writes the answers and web-ui's log to $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/osprey-out}; mkdir -p "$OUT" /tmp/osp /tmp/webui-gpu
export DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1 PYTHONUNBUFFERED=1
# OSP=path/to/osprey runs another build (the script's plumbing can be tried on a CPU machine, where it must fail).
if [[ -z ${OSP:-} ]]; then
  [[ -x /tmp/osp/osprey-gpu/osprey ]] || tar -xJf .dist/osprey-gpu.tar.xz -C /tmp/osp
  OSP=/tmp/osp/osprey-gpu/osprey
fi
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
URL=http://127.0.0.1:$PORT
get() { python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' "$1"; }

(cd /tmp/webui-gpu && exec "$OSP" web-ui --port "$PORT") > "$OUT/webui.log" 2>&1 &
WEBUI=$!
LOAD=
cleanup() { [[ -n $LOAD ]] && kill "$LOAD" 2>/dev/null; kill "$WEBUI" 2>/dev/null; wait 2>/dev/null; }
trap cleanup EXIT
for _ in $(seq 40); do get "$URL/api/info" > /dev/null 2>&1 && break; sleep 0.5; done
get "$URL/api/info" > /dev/null || { echo "web-ui did not answer on $URL:"; cat "$OUT/webui.log"; exit 1; }

echo "== idle"
get "$URL/api/gpus" | tee "$OUT/gpus-idle.json"
# About 6 s of back-to-back 8192x8192 matmuls on GPU 0 (tens of TFLOP/s: the GPU is never idle in between).
python3 - > "$OUT/load.log" 2>&1 <<'PY' &
import time, torch
a = torch.randn(8192, 8192, device="cuda", dtype=torch.float16)
b = a @ a
torch.cuda.synchronize()
print("load started", flush=True)  # importing torch and starting CUDA take seconds: sampling waits for this line
end = time.time() + 6
while time.time() < end:
    for _ in range(20):
        b = a @ a
    torch.cuda.synchronize()
print("load done")
PY
LOAD=$!
for _ in $(seq 60); do grep -q "load started" "$OUT/load.log" && break; sleep 0.5; done
sleep 1
for i in 1 2 3 4; do
  echo "== under load, $i"
  get "$URL/api/gpus" | tee "$OUT/gpus-load-$i.json"
  nvidia-smi --query-gpu=index,utilization.gpu,memory.used,memory.total --format=csv,noheader | sed 's/^/   nvidia-smi: /'
  sleep 0.8
done
wait "$LOAD"; LOAD=
cat "$OUT/load.log"

python3 - "$OUT" <<'PY'
import glob, json, sys
answers = [json.load(open(f)) for f in sorted(glob.glob(sys.argv[1] + "/gpus-*.json"))]
gpus = [g for a in answers for g in a]
if not gpus or not all(isinstance(g.get("used_bytes"), int) and g.get("total_bytes", 0) > 0 for g in gpus):
    sys.exit(f"FAIL: /api/gpus gave no GPU memory: {answers}")
load = [g.get("utilization_percent") for f in sorted(glob.glob(sys.argv[1] + "/gpus-load-*.json")) for g in json.load(open(f))]
if not any(isinstance(u, int) and u > 0 for u in load):
    sys.exit(f"FAIL: utilization_percent never above 0 under load: {load}")
print(f"OK: {len(answers)} answers, memory on every GPU, utilization under load {load}")
PY
