#!/usr/bin/env python3
"""`osprey deploy` of the tiny Qwen2-VL / Qwen2.5-VL fixtures on CUDA, with image requests batched among text ones.

The CPU tests (tests/Osprey.Tests/Server/VisionServingTests) hold the CPU engine's replies to transformers' greedy
ids. This checks the CUDA paths they cannot reach: decode steps as CUDA graphs whose rotary positions carry each
image row's M-RoPE delta, and the eager CUDA step. For each fixture under tests/fixtures/vl it starts
`osprey deploy --device cpu` once, then `--device cuda` with graphs and with --enforce_eager true, sends every case
of golden.json three times over, all at once (images as data URLs, 15 requests), and requires every CUDA reply to
equal the CPU reply to the same case.

    python3 tools/gpu_serve_vl.py --osprey ./osprey

Prints a table last; exits 1 on any mismatch. Writes $OUT/serve_vl.json.
"""
import argparse
import base64
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VL = os.path.join(ROOT, "tests", "fixtures", "vl")


def start(osprey, folder, device, extra, notes):
    cmd = [osprey, "deploy", "--model", folder, "--port", "0", "--device", device, "--torch_dtype", "float32",
           "--served_model_name", "m", "--max_batch_size", "16"] + extra
    env = dict(os.environ)
    env.setdefault("DOTNET_SYSTEM_GLOBALIZATION_INVARIANT", "1")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    began = time.time()
    while time.time() - began < 300:
        line = proc.stdout.readline()
        if not line:
            break
        if "CUDA graphs" in line:
            notes.append(line.strip())
        found = re.search(r"at (http://[^/ ]+)/", line)
        if found:
            return proc, found.group(1)
    proc.kill()
    return None, None


def message(case):
    """The case's user turn in OpenAI's shape: text pieces with an image_url data URL wherever {img} stands."""
    parts, pieces = [], case["text"].split("{img}")
    for i, piece in enumerate(pieces):
        if i > 0:
            name = case["images"][i - 1]
            with open(os.path.join(VL, "images", name), "rb") as f:
                data = base64.b64encode(f.read()).decode()
            mime = "image/png" if name.endswith(".png") else "image/jpeg"
            parts.append({"type": "image_url", "image_url": {"url": f"data:{mime};base64,{data}"}})
        if piece:
            parts.append({"type": "text", "text": piece})
    return [{"role": "user", "content": parts}]


def ask_all(url, requests):
    replies = [None] * len(requests)

    def ask(i):
        body = {"model": "m", "messages": requests[i], "max_tokens": 8, "temperature": 0}
        req = urllib.request.Request(url + "/v1/chat/completions", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=300) as r:
                replies[i] = json.loads(r.read())["choices"][0]["message"]["content"]
        except Exception as e:  # shows up as a mismatch, with its reason
            replies[i] = f"<error {e}>"

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return replies


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--osprey", required=True)
    args = ap.parse_args()
    out_dir = os.environ.get("OUT", ".")
    rows, report, failed = [], [], False
    for family in ("qwen2_vl", "qwen2_5_vl"):
        folder = os.path.join(VL, family)
        with open(os.path.join(folder, "golden.json"), encoding="utf-8") as f:
            cases = json.load(f)["cases"]
        requests = [message(c) for c in cases] * 3
        names = [c["name"] for c in cases] * 3
        results = {}
        for mode, device, extra in (("cpu", "cpu", []), ("graphs", "cuda", []), ("eager", "cuda", ["--enforce_eager", "true"])):
            notes = []
            proc, url = start(args.osprey, folder, device, extra, notes)
            if url is None:
                rows.append((family, mode, "deploy did not start"))
                failed = True
                continue
            try:
                results[mode] = ask_all(url, requests)
            finally:
                proc.terminate()
                proc.wait(timeout=30)
            if mode == "cpu":
                rows.append((family, mode, f"reference ({len(requests)} requests)"))
                continue
            reference = results.get("cpu", [None] * len(requests))
            equal = sum(1 for a, b in zip(reference, results[mode]) if a == b and not a.startswith("<error"))
            failed |= equal != len(requests)
            rows.append((family, mode, f"{equal}/{len(requests)} equal to cpu  {' '.join(notes)}"))
        report.append({"family": family, "cases": [{"name": n, **{m: r[i] for m, r in results.items()}} for i, n in enumerate(names)]})
    with open(os.path.join(out_dir, "serve_vl.json"), "w", encoding="utf-8") as f:
        json.dump(report, f, ensure_ascii=False, indent=1)
    print(f"\n{'family':<12}{'engine':<8}result")
    for family, mode, result in rows:
        print(f"{family:<12}{mode:<8}{result}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
