#!/usr/bin/env python3
"""`osprey deploy` on CUDA (CUDA graphs on) against transformers' greedy chat replies, for every tiny parity family.

For each tests/fixtures/parity/<family>/ folder with an infer_golden.json (made by tools/make_infer_fixtures.py
with transformers), this starts `osprey deploy --model <folder> --device cuda --torch_dtype float32 --port 0`,
sends all of the family's cases at once to /v1/chat/completions (temperature 0, the case's max_new_tokens and
repetition_penalty), and compares each reply with transformers' "response". Families cover sliding windows
(Mistral, Gemma 2/3), soft-capping and scaled embeddings (Gemma 2), fused projections (Phi-3) and q/k norms (Qwen3),
so every kind of decode step is captured as a graph at least once.

    python3 tools/gpu_serve_families.py --osprey /tmp/osp/osprey-gpu/osprey

Prints a table last; exits 1 on any mismatch. Writes $OUT/serve_families.json.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def serve(osprey, folder, extra, notes):
    cmd = [osprey, "deploy", "--model", folder, "--port", "0", "--device", "cuda", "--torch_dtype", "float32",
           "--served_model_name", "m", "--max_batch_size", "8"] + extra
    env = dict(os.environ)
    env.setdefault("DOTNET_SYSTEM_GLOBALIZATION_INVARIANT", "1")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    started = time.time()
    while time.time() - started < 300:
        line = proc.stdout.readline()
        if not line:
            break
        if "CUDA graphs" in line:
            notes.append(line.strip())
        m = re.search(r"at (http://[^/ ]+)/", line)
        if m:
            return proc, m.group(1)
    proc.kill()
    return None, None


def ask_all(url, cases):
    replies = [None] * len(cases)

    def ask(i):
        c = cases[i]
        body = {"model": "m", "messages": c["messages"], "max_tokens": c["settings"]["max_new_tokens"], "temperature": 0}
        if c["settings"].get("repetition_penalty"):
            body["repetition_penalty"] = c["settings"]["repetition_penalty"]
        req = urllib.request.Request(url + "/v1/chat/completions", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=300) as r:
                replies[i] = json.loads(r.read())["choices"][0]["message"]["content"]
        except Exception as e:  # reported as a mismatch with its reason
            replies[i] = f"<error {e}>"

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(cases))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return replies


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--osprey", required=True)
    ap.add_argument("--parity", default=os.path.join(ROOT, "tests", "fixtures", "parity"))
    args = ap.parse_args()
    out_dir = os.environ.get("OUT", ".")
    rows, report, failed = [], [], False
    for family in sorted(os.listdir(args.parity)):
        golden_path = os.path.join(args.parity, family, "infer_golden.json")
        if not os.path.exists(golden_path):
            continue
        with open(golden_path, encoding="utf-8") as f:
            cases = json.load(f)["cases"]
        for mode, extra in (("graphs", []), ("eager", ["--enforce_eager", "true"])):
            notes = []
            proc, url = serve(args.osprey, os.path.join(args.parity, family), extra, notes)
            if url is None:
                rows.append((family, mode, "deploy did not start"))
                failed = True
                continue
            try:
                replies = ask_all(url, cases)
            finally:
                proc.terminate()
                proc.wait(timeout=30)
            equal = sum(1 for c, r in zip(cases, replies) if r == c["response"])
            failed |= equal != len(cases)
            rows.append((family, mode, f"{equal}/{len(cases)}  {' '.join(notes)}"))
            report.append({"family": family, "mode": mode, "cases": [{"name": c["name"], "transformers": c["response"], "osprey": r} for c, r in zip(cases, replies)]})
    with open(os.path.join(out_dir, "serve_families.json"), "w", encoding="utf-8") as f:
        json.dump(report, f, ensure_ascii=False, indent=1)
    print(f"\n{'family':<14}{'engine':<8}replies equal to transformers, what deploy said")
    for family, mode, result in rows:
        print(f"{family:<14}{mode:<8}{result}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
