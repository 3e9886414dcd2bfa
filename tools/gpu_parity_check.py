#!/usr/bin/env python3
"""GPU smoke test of parity: runs `osprey infer` in float32 on CUDA over every fixture folder made by
make_parity_fixtures.py and compares the greedy ids (each prompt alone and all prompts batched with left
padding) with what transformers generated. Prints one line per family; exit code 1 on any mismatch."""
import argparse
import json
import os
import re
import subprocess
import sys


def run(osprey, folder, prompts, new, env):
    ids = ";".join(" ".join(str(t) for t in p) for p in prompts)
    cmd = [osprey, "infer", "--model", folder, "--device", "cuda", "--torch_dtype", "float32",
           "--input_ids", ids, "--max_new_tokens", str(new)]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        raise RuntimeError(p.stderr.strip())
    rows = []
    for line in p.stdout.splitlines():
        m = re.match(r"\[(\d+)\] ([\d ]*)\s+\(", line)
        if m:
            rows.append([int(x) for x in m.group(2).split()])
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--osprey", required=True)
    ap.add_argument("--fixtures", required=True)
    args = ap.parse_args()
    env = dict(os.environ)
    bad = 0
    for fam in sorted(os.listdir(args.fixtures)):
        folder = os.path.join(args.fixtures, fam)
        golden = json.load(open(os.path.join(folder, "golden.json")))
        prompts, new = golden["prompts"], golden["max_new_tokens"]
        try:
            singles = [run(args.osprey, folder, [p], new, env)[0] for p in prompts]
            batched = run(args.osprey, folder, prompts, new, env)
            ok = singles == golden["greedy_single"] and batched == golden["greedy_batched"]
            note = ""
        except RuntimeError as e:
            ok, note = False, str(e)[:200]
        bad += not ok
        print(f"gpu-parity {fam:12s} {'identical greedy ids (single + batched)' if ok else 'MISMATCH ' + note}", flush=True)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
