#!/usr/bin/env python3
"""Encode throughput: Osprey's tokenizer vs Hugging Face `tokenizers` (Rust) on the same machine and text.

Builds a few MB of mixed text (Python source and docstrings of installed packages, plus the multilingual lines of
tests/fixtures/tokenizers/corpus.json: CJK, emoji, Arabic, Hindi, code, whitespace runs), one document per line,
then for each tokenizer folder times
  HF:     tokenizers.Tokenizer.from_file(tokenizer.json).encode_batch(lines, add_special_tokens=False)
          in a fresh process with RAYON_NUM_THREADS=1 (one thread) and with all cores,
  Osprey: osprey tokenize --model DIR --benchmark_file corpus.txt --num_threads 1|N
HF runs one warm-up pass, Osprey at least one pass and one second (its JIT compiles in tiers); both report the mean
of --repeat timed passes, and both must produce the same number of tokens (the parity check of this benchmark).

    python3 tools/bench_tokenizers.py --osprey /tmp/o/osprey-gpu/osprey --tokenizers /tmp/t/tokenizers

Prints a markdown table last and writes $OUT/tokenize-bench.jsonl.
"""
import argparse
import glob
import json
import os
import random
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

HF_WORKER = r"""
import json, sys, time
from tokenizers import Tokenizer
path, corpus, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(corpus, encoding="utf-8") as f:
    lines = f.read().split("\n")
tok = Tokenizer.from_file(path)
tok.encode_batch(lines, add_special_tokens=False)  # warm-up
started = time.perf_counter()
for _ in range(repeat):
    enc = tok.encode_batch(lines, add_special_tokens=False)
seconds = (time.perf_counter() - started) / repeat
print(json.dumps({"tokens": sum(len(e.ids) for e in enc), "seconds": seconds}))
"""


def build_corpus(path, target_bytes, seed):
    import transformers
    rng = random.Random(seed)
    sources = sorted(glob.glob(os.path.join(os.path.dirname(transformers.__file__), "**", "*.py"), recursive=True))
    rng.shuffle(sources)
    docs, size = [], 0
    for src in sources:
        with open(src, encoding="utf-8", errors="replace") as f:
            text = f.read()
        # One document per blank-line-separated block, on one line (both sides read the file line by line).
        for block in text.split("\n\n"):
            block = block.strip("\n").replace("\r", " ").replace("\n", " ")
            if block.strip():
                docs.append(block)
                size += len(block.encode("utf-8"))
        if size >= target_bytes * 0.8:
            break
    with open(os.path.join(ROOT, "tests", "fixtures", "tokenizers", "corpus.json"), encoding="utf-8") as f:
        multilingual = [t["text"].replace("\r", " ").replace("\n", " ") for t in json.load(f) if t["text"].strip()]
    while size < target_bytes:
        line = rng.choice(multilingual)
        docs.append(line)
        size += len(line.encode("utf-8"))
    rng.shuffle(docs)
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(docs))
    return len(docs), os.path.getsize(path)


def hf(path, corpus, repeat, threads):
    env = dict(os.environ)
    if threads == 1:
        env["RAYON_NUM_THREADS"] = "1"
    else:
        env.pop("RAYON_NUM_THREADS", None)
    run = subprocess.run([sys.executable, "-c", HF_WORKER, path, corpus, str(repeat)], capture_output=True, text=True,
                         env=env, timeout=1800)
    if run.returncode != 0:
        raise RuntimeError(run.stderr[-2000:])
    return json.loads(run.stdout.strip().splitlines()[-1])


def osprey(binary, folder, corpus, repeat, threads):
    env = dict(os.environ)
    env.setdefault("DOTNET_SYSTEM_GLOBALIZATION_INVARIANT", "1")
    run = subprocess.run([binary, "tokenize", "--model", folder, "--benchmark_file", corpus, "--num_threads",
                          str(threads), "--repeat", str(repeat)], capture_output=True, text=True, env=env, timeout=1800)
    if run.returncode != 0:
        raise RuntimeError(run.stderr[-2000:])
    return json.loads(run.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--osprey", required=True)
    ap.add_argument("--tokenizers", required=True, help="folder with one tokenizer folder per name")
    ap.add_argument("--names", default="qwen3,llama3_1,gemma3,deepseek_v3,llama2")
    ap.add_argument("--mb", type=float, default=4.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1234)
    args = ap.parse_args()
    out_dir = os.environ.get("OUT", ".")
    corpus = os.path.join("/tmp", "osprey-tokenize-bench.txt")
    lines, size = build_corpus(corpus, int(args.mb * 1024 * 1024), args.seed)
    cores = os.cpu_count()
    import tokenizers
    rows = []
    for name in args.names.split(","):
        folder = os.path.join(args.tokenizers, name)
        for threads in (1, cores):
            row = {"tokenizer": name, "threads": threads, "lines": lines, "bytes": size}
            try:
                h = hf(os.path.join(folder, "tokenizer.json"), corpus, args.repeat, threads)
                o = osprey(args.osprey, folder, corpus, args.repeat, threads)
                row.update(hf_tokens=h["tokens"], hf_tokens_per_s=h["tokens"] / h["seconds"],
                           osprey_tokens=o["tokens"], osprey_tokens_per_s=o["tokens_per_s"])
                row["ratio"] = row["osprey_tokens_per_s"] / row["hf_tokens_per_s"]
            except Exception as e:  # noqa: BLE001 - report and go on
                row["error"] = str(e)[-500:]
            rows.append(row)
            print(json.dumps(row), flush=True)
    with open(os.path.join(out_dir, "tokenize-bench.jsonl"), "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    print(f"\ncorpus: {lines} lines, {size / 1e6:.2f} MB; tokenizers {tokenizers.__version__}; {cores} cores; "
          f"mean of {args.repeat} passes after a warm-up (HF: 1 pass; Osprey: >= 1 pass and 1 s)")
    print("| tokenizer | threads | HF tokens/s | Osprey tokens/s | Osprey / HF | same token count |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['tokenizer']} | {r['threads']} | error: {r['error'][:80]} | | | |")
            continue
        print(f"| {r['tokenizer']} | {r['threads']} | {r['hf_tokens_per_s'] / 1e6:.2f} M | "
              f"{r['osprey_tokens_per_s'] / 1e6:.2f} M | {r['ratio']:.2f} | "
              f"{'yes' if r['hf_tokens'] == r['osprey_tokens'] else 'NO (%d vs %d)' % (r['hf_tokens'], r['osprey_tokens'])} |")


if __name__ == "__main__":
    main()
