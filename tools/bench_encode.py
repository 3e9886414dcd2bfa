#!/usr/bin/env python3
"""Benchmark `osprey encode --benchmark_rows N`: preprocessing synthetic Alpaca rows (fixed seed) with a real tokenizer.

Builds the CLI in Release, runs the benchmark mode REPEAT times per template and prints the best run of each (the
machine may be shared; the load average is printed with every run so noisy runs can be told apart).

  tools/bench_encode.py [--rows 100000] [--repeat 3] [--model ~/.cache/osprey-tests/npm/tokenizer-qwen3-3.7.2]
"""
import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--model", default=os.path.expanduser("~/.cache/osprey-tests/npm/tokenizer-qwen3-3.7.2"))
    ap.add_argument("--templates", nargs="+", default=["auto", "qwen3"])
    args = ap.parse_args()
    subprocess.run(["dotnet", "build", os.path.join(ROOT, "src/Osprey.Cli"), "-c", "Release", "-v", "q", "-nologo"],
                   check=True, stdout=subprocess.DEVNULL)
    exe = os.path.join(ROOT, "src/Osprey.Cli/bin/Release/net10.0/linux-x64/osprey")
    for template in args.templates:
        best = None
        for r in range(args.repeat):
            load = os.getloadavg()[0]
            out = subprocess.run([exe, "encode", "--model", args.model, "--benchmark_rows", str(args.rows),
                                  "--template", template], check=True, capture_output=True, text=True).stdout
            result = json.loads(out.strip().splitlines()[-1])
            result["template"] = template
            result["load_before"] = round(load, 2)
            print(json.dumps(result), flush=True)
            key = max(v["rows_per_s"] for k, v in result.items() if k.startswith("threads_"))
            if best is None or key > best[0]:
                best = (key, result)
        print("best " + template + ": " + json.dumps(best[1]), flush=True)


if __name__ == "__main__":
    sys.exit(main())
