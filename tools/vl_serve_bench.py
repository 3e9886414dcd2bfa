#!/usr/bin/env python3
"""Image-chat serving throughput of `osprey deploy` (issue 22 benchmark, tools/vl_bench.sh): starts the server on a
vision-language model, then at each concurrency N sends N chat requests at once, each with one picture as an OpenAI
`image_url` data URL (alternately the 448x448 and the 1024x768 pictures of tools/make_vl_bench_data.py, a different
picture for every request) and a question, streamed, greedy, `ignore_eos` with `max_tokens` new tokens, so every
request decodes the same number of tokens. Before each timed round an untimed round of the same shape warms the
server (CUDA graphs are captured on first use). Standard library only.

    python3 tools/vl_serve_bench.py --osprey OSPREY --model DIR --data /tmp/vlb-data --concurrency 1 32 \
        --max_tokens 128 -- --device cuda --torch_dtype bfloat16

Arguments after `--` go to `osprey deploy`. Per round it reports: wall time, output tokens/s over the round (all
requests' completion tokens / wall), requests/s, mean and max time to first token (submit to the first content chunk:
queueing, image decoding and preprocessing, the tower and prefill), mean per-request decode speed ((tokens-1) / (last
chunk - first chunk)), and the prompt tokens per request from `usage`. Writes --out (JSON) and prints a table last.
Exits 1 if a request fails or returns fewer tokens than asked.
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

QUESTION = "Describe this picture: its colours, the shapes in it and where they are."


def start(osprey, model, extra, log_path):
    cmd = [osprey, "deploy", "--model", model, "--port", "0", "--served_model_name", "m"] + extra
    env = dict(os.environ)
    env.setdefault("DOTNET_SYSTEM_GLOBALIZATION_INVARIANT", "1")
    log = open(log_path, "w", encoding="utf-8")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    began = time.time()
    url = None
    while time.time() - began < 420:
        line = proc.stdout.readline()
        if not line:
            break
        log.write(line)
        log.flush()
        found = re.search(r"at (http://[^/ ]+)/", line)
        if found:
            url = found.group(1)
            break
    if url is None:
        proc.kill()
        log.close()
        raise SystemExit(f"osprey deploy did not start (log: {log_path}): {' '.join(cmd)}")

    def drain():  # keep reading so the server never blocks on a full pipe
        for rest in proc.stdout:
            log.write(rest)
        log.close()

    threading.Thread(target=drain, daemon=True).start()
    return proc, url


def pictures(data):
    folder = os.path.join(data, "images")
    a = sorted(f for f in os.listdir(folder) if f.endswith("_a.png"))
    b = sorted(f for f in os.listdir(folder) if f.endswith("_b.png"))
    out = []
    for x, y in zip(a, b):  # alternate sizes: 448x448, 1024x768, ...
        out += [os.path.join(folder, x), os.path.join(folder, y)]
    if not out:
        raise SystemExit(f"{folder} has no r*_a.png / r*_b.png pictures; run tools/make_vl_bench_data.py")
    return out


def data_url(path):
    with open(path, "rb") as f:
        return "data:image/png;base64," + base64.b64encode(f.read()).decode()


def ask(url, picture, max_tokens, clock0):
    body = {"model": "m", "max_tokens": max_tokens, "temperature": 0, "ignore_eos": True, "stream": True,
            "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": picture}},
                                                     {"type": "text", "text": QUESTION}]}]}
    req = urllib.request.Request(url + "/v1/chat/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    submit = time.perf_counter() - clock0
    first = last = None
    chunks, usage = 0, None
    with urllib.request.urlopen(req, timeout=600) as r:
        for raw in r:
            line = raw.decode("utf-8").strip()
            if not line.startswith("data:"):
                continue
            payload = line[5:].strip()
            if payload == "[DONE]":
                break
            msg = json.loads(payload)
            if msg.get("usage"):
                usage = msg["usage"]
            for choice in msg.get("choices", []):
                if choice.get("delta", {}).get("content"):
                    now = time.perf_counter() - clock0
                    first = now if first is None else first
                    last = now
                    chunks += 1
    return {"submit": submit, "first": first, "last": last, "chunks": chunks, "usage": usage}


def round_of(url, pics, max_tokens):
    results, errors = [None] * len(pics), []
    clock0 = time.perf_counter()

    def run(i):
        try:
            results[i] = ask(url, pics[i], max_tokens, clock0)
        except Exception as e:  # reported and counted as a failure
            errors.append(f"request {i}: {type(e).__name__}: {e}")

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(pics))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - clock0, results, errors


def main():
    argv = sys.argv[1:]
    extra = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1:]
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--osprey", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True, help="tools/make_vl_bench_data.py output folder")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 32])
    ap.add_argument("--max_tokens", type=int, default=128)
    ap.add_argument("--out", default=os.path.join(os.environ.get("OUT", "."), "vl_serve.json"))
    args = ap.parse_args(argv)
    most = max(args.concurrency)
    if "--max_batch_size" not in extra:
        extra += ["--max_batch_size", str(max(most, 1))]
    paths = pictures(args.data)
    need = 2 * sum(args.concurrency)
    if len(paths) < need:
        print(f"note: {len(paths)} pictures for {need} requests: some repeat", file=sys.stderr)
    encoded = [data_url(p) for p in paths]
    sizes = {p: os.path.basename(p) for p in paths}
    proc, url = start(args.osprey, args.model, extra, os.path.splitext(args.out)[0] + "-deploy.log")
    rows, report, failed = [], [], False
    try:
        cursor = 0
        for c in args.concurrency:
            for timed in (False, True):
                pics = [encoded[(cursor + k) % len(encoded)] for k in range(c)]
                names = [sizes[paths[(cursor + k) % len(paths)]] for k in range(c)]
                cursor += c
                wall, results, errors = round_of(url, pics, args.max_tokens)
                if not timed:
                    if errors:
                        failed = True
                        print("warm-up:", *errors[:3], sep="\n  ", file=sys.stderr)
                    continue
                ok = [r for r in results if r is not None and r["first"] is not None]
                tokens = [(r["usage"] or {}).get("completion_tokens", r["chunks"]) for r in ok]
                short = [t for t in tokens if t < args.max_tokens]
                failed |= bool(errors) or bool(short) or len(ok) != c
                ttft = [r["first"] - r["submit"] for r in ok]
                decode = [(t - 1) / (r["last"] - r["first"]) for r, t in zip(ok, tokens) if t > 1 and r["last"] > r["first"]]
                prompt = sorted({(r["usage"] or {}).get("prompt_tokens") for r in ok} - {None})
                row = {"concurrency": c, "wall_s": round(wall, 3), "requests_ok": len(ok), "errors": errors[:5],
                       "completion_tokens": sum(tokens), "short_replies": len(short),
                       "output_tokens_per_s": round(sum(tokens) / wall, 1), "requests_per_s": round(len(ok) / wall, 3),
                       "ttft_mean_s": round(sum(ttft) / len(ttft), 3) if ttft else None,
                       "ttft_max_s": round(max(ttft), 3) if ttft else None,
                       "decode_tok_s_per_request": round(sum(decode) / len(decode), 1) if decode else None,
                       "prompt_tokens": prompt, "pictures": names}
                report.append(row)
                rows.append(row)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
    with open(args.out + ".tmp", "w", encoding="utf-8") as f:
        json.dump({"model": os.path.abspath(args.model), "max_tokens": args.max_tokens, "deploy_args": extra,
                   "rounds": report}, f, indent=1)
    os.replace(args.out + ".tmp", args.out)
    print(f"\n{'requests':>8} {'wall s':>8} {'out tok/s':>10} {'req/s':>7} {'TTFT mean':>10} {'TTFT max':>9} "
          f"{'decode tok/s/req':>17} {'prompt tokens':>14}")
    for r in rows:
        print(f"{r['concurrency']:>8} {r['wall_s']:>8.2f} {r['output_tokens_per_s']:>10.1f} {r['requests_per_s']:>7.2f} "
              f"{r['ttft_mean_s'] if r['ttft_mean_s'] is not None else '-':>10} "
              f"{r['ttft_max_s'] if r['ttft_max_s'] is not None else '-':>9} "
              f"{r['decode_tok_s_per_request'] if r['decode_tok_s_per_request'] is not None else '-':>17} "
              f"{'/'.join(str(p) for p in r['prompt_tokens']):>14}")
        for e in r["errors"]:
            print("   ", e)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
