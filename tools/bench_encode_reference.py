#!/usr/bin/env python3
"""Dataset preprocessing speed, Osprey vs transformers, on two pinned cores of one machine (the GPU host's CPU).

Writes N Alpaca rows (seeded, our own pseudo-words), then times on CPUs 0-1 (taskset):
  reference: transformers AutoTokenizer.apply_chat_template(messages, tokenize=True) per row, in a
             multiprocessing pool of 2 (what ms-swift's datasets.map(num_proc=2) does per row, without its extras);
  osprey:    osprey encode --model DIR --dataset rows.jsonl --dataset_num_proc 2 --load_from_cache_file false
             --output /dev/null   (render + tokenize + loss labels; the whole process, startup included).

    python3 tools/bench_encode_reference.py --osprey /tmp/o/osprey-gpu/osprey --tokenizer /tmp/t/tokenizers/qwen3
"""
import argparse
import json
import multiprocessing as mp
import os
import random
import subprocess
import time

_tok = None


def _init(folder):
    global _tok
    from transformers import AutoTokenizer
    _tok = AutoTokenizer.from_pretrained(folder)


def _encode(row):
    user = row["instruction"] + ("\n" + row["input"] if row["input"] else "")
    ids = _tok.apply_chat_template([{"role": "user", "content": user}, {"role": "assistant", "content": row["output"]}],
                                   tokenize=True)
    if hasattr(ids, "keys"):  # transformers 5 returns a BatchEncoding (a UserDict), not a list
        ids = ids["input_ids"]
    return len(ids)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--osprey", required=True)
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--rows", type=int, default=100000)
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    syll = ["ka", "lo", "mi", "ren", "sa", "tu", "vo", "zel", "an", "ir", "op", "ush"]
    words = ["".join(rng.choice(syll) for _ in range(rng.randint(1, 3))) for _ in range(5000)]

    def text(n):
        return " ".join(words[min(int(rng.paretovariate(1.1)) - 1, len(words) - 1)] for _ in range(n))

    rows = [{"instruction": text(rng.randint(6, 30)), "input": text(rng.randint(5, 60)) if rng.random() < 0.5 else "",
             "output": text(rng.randint(20, 250))} for _ in range(args.rows)]
    path = "/tmp/osprey-bench-alpaca.jsonl"
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    os.sched_setaffinity(0, {0, 1})

    started = time.perf_counter()
    with mp.Pool(2, initializer=_init, initargs=(args.tokenizer,)) as pool:
        tokens = sum(pool.map(_encode, rows, chunksize=256))
    ref_s = time.perf_counter() - started

    env = dict(os.environ)
    env.setdefault("DOTNET_SYSTEM_GLOBALIZATION_INVARIANT", "1")
    cmd = ["taskset", "-c", "0,1", args.osprey, "encode", "--model", args.tokenizer, "--dataset", path, "--dataset_shuffle", "false",
           "--dataset_num_proc", "2", "--load_from_cache_file", "false", "--output", "/dev/null"]
    started = time.perf_counter()
    run = subprocess.run(cmd, capture_output=True, text=True, env=env)
    osp_s = time.perf_counter() - started
    if run.returncode != 0:
        raise SystemExit(run.stderr[-2000:])
    summary = [line for line in run.stderr.splitlines() if line.startswith("encoded ")]
    print(f"\n{args.rows} Alpaca rows, 2 pinned cores, tokenizer {args.tokenizer}; reference tokens {tokens}")
    print(f"osprey: {summary[0] if summary else ''}")
    print("| engine | seconds | rows/s | Osprey / reference |")
    print("|---|---|---|---|")
    print(f"| transformers apply_chat_template, pool of 2 | {ref_s:.1f} | {args.rows / ref_s:,.0f} | |")
    print(f"| osprey encode --dataset_num_proc 2 (whole process, labels included) | {osp_s:.1f} | {args.rows / osp_s:,.0f} | {ref_s / osp_s:.2f} |")


if __name__ == "__main__":
    main()
