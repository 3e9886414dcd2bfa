#!/usr/bin/env python3
"""Reference for `osprey eval` (issue 19), for the GPU machine: an lm-evaluation-harness-style transformers loop.

  make   --out DIR --mcq N --math M [--seed S]
         writes made-up items (random words, no third-party data) in EvalScope layouts: DIR/mcq/bench_val.csv
         (4 options, MMLU-shaped) and DIR/gsm8k/test.jsonl (question, answer ending in '#### N').
  loglik --model M --mcq DIR/mcq [--subset bench] [--limit N] [--out FILE] [--compare predictions.jsonl]
         for each item, the harness protocol written out independently of Osprey: the MMLU prompt
         ("The following are multiple choice questions (with answers) about {subject}.\n\n{q}\nA. ..\nAnswer:"),
         continuations " A".." D", tokens = encode(context + continuation)[len(encode(context)):], no special tokens;
         one forward per option over the whole sequence (as the harness does, no shared prefix), float32
         log_softmax summed over the option's tokens. Prints items/s; with --compare, the largest difference
         from Osprey's logged log-likelihoods and the number of items whose choice differs (must be 0; <=1e-4 in float32).
  generate --model M --math DIR/gsm8k [--limit N] [--batch B] [--max_new_tokens T] [--compare predictions.jsonl]
         greedy generation of EvalScope's GSM8K prompt through the chat template with HF generate in batches of B
         (left padding), as lm-eval's generate_until does; prints items/s and, with --compare, how many replies differ.
"""
import argparse, csv, json, os, random, sys, time

MCQ_HEAD = "The following are multiple choice questions (with answers) about {}.\n\n"
MATH_PROMPT = ("Solve the following math problem step by step. The last line of your response should be of the form "
               "\"ANSWER: $ANSWER\" (without quotes) where $ANSWER is the answer to the problem.\n\n{}\n\nRemember to put "
               "your answer on its own line at the end in the form \"ANSWER: $ANSWER\" (without quotes) where $ANSWER is "
               "the answer to the problem, and you do not need to use a \\boxed command.")
WORDS = ("river stone light cloud paper orange window garden silver number engine market winter camera honest quick "
         "slow bright narrow simple ancient modern gentle famous lucky empty heavy purple").split()


def make(a):
    rng = random.Random(a.seed)
    os.makedirs(os.path.join(a.out, "mcq"), exist_ok=True)
    os.makedirs(os.path.join(a.out, "gsm8k"), exist_ok=True)
    sentence = lambda n: " ".join(rng.choice(WORDS) for _ in range(n))
    with open(os.path.join(a.out, "mcq", "bench_val.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "question", "A", "B", "C", "D", "answer"])
        for i in range(a.mcq):
            w.writerow([i, sentence(rng.randint(20, 60)) + "?", *(sentence(rng.randint(2, 8)) for _ in range(4)), "ABCD"[rng.randrange(4)]])
    with open(os.path.join(a.out, "gsm8k", "test.jsonl"), "w") as f:
        for i in range(a.math):
            x, y = rng.randint(2, 99), rng.randint(2, 99)
            f.write(json.dumps({"question": f"{sentence(12)}: a crate holds {x} {rng.choice(WORDS)}s and there are {y} crates. How many in all?",
                                "answer": f"{x} * {y} = {x * y}\n#### {x * y}"}) + "\n")
    print(f"wrote {a.mcq} MCQ items and {a.math} math items under {a.out}")


def load(model_dir, dtype):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=getattr(torch, dtype)).cuda().eval()
    return tok, model


def loglik(a):
    import torch
    tok, model = load(a.model, a.dtype)
    rows = list(csv.DictReader(open(os.path.join(a.mcq, a.subset + "_val.csv"), newline="")))[: a.limit]
    out, t0 = [], time.time()
    with torch.no_grad():
        for i, r in enumerate(rows):
            letters = [l for l in "ABCDEFGHIJ" if r.get(l)]
            context = MCQ_HEAD.format(a.subset.replace("_", " ")) + r["question"].strip() + "\n" + "".join(f"{l}. {r[l]}\n" for l in letters) + "Answer:"
            n_ctx = len(tok(context, add_special_tokens=False).input_ids)
            lls = []
            for l in letters:
                ids = tok(context + " " + l, add_special_tokens=False).input_ids
                logits = model(torch.tensor([ids], device="cuda")).logits[0].float()
                logp = torch.log_softmax(logits, -1)
                lls.append(sum(logp[k - 1, ids[k]].item() for k in range(n_ctx, len(ids))))
            out.append({"key": f"general_mcq/{a.subset}/{i}", "loglikelihoods": lls, "choice": letters[max(range(len(lls)), key=lls.__getitem__)]})
    torch.cuda.synchronize()
    dt = time.time() - t0
    print(f"reference loglikelihood: {len(rows)} items in {dt:.1f} s = {len(rows) / dt:.2f} items/s")
    if a.out:
        with open(a.out, "w") as f:
            f.writelines(json.dumps(o) + "\n" for o in out)
    if a.compare:
        mine = {o["key"]: o for o in map(json.loads, open(a.compare))}
        diff = max(abs(x - y) for o in out for x, y in zip(o["loglikelihoods"], mine[o["key"]]["loglikelihoods"]))
        flips = sum(o["choice"] != mine[o["key"]]["extracted"] for o in out)
        print(f"compare: max |ll diff| = {diff:.2e}; choices differing: {flips} of {len(out)}")
        return 0 if flips == 0 else 1
    return 0


def generate(a):
    import torch
    tok, model = load(a.model, a.dtype)
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    rows = [json.loads(l) for l in open(os.path.join(a.math, "test.jsonl"))][: a.limit]
    replies, t0 = [], time.time()
    with torch.no_grad():
        for s in range(0, len(rows), a.batch):
            prompts = [tok.apply_chat_template([{"role": "user", "content": MATH_PROMPT.format(r["question"].strip())}], tokenize=False, add_generation_prompt=True) for r in rows[s:s + a.batch]]
            enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to("cuda")
            gen = model.generate(**enc, max_new_tokens=a.max_new_tokens, do_sample=False)
            replies += [tok.decode(g[enc.input_ids.shape[1]:], skip_special_tokens=True) for g in gen]
    torch.cuda.synchronize()
    dt = time.time() - t0
    print(f"reference generate: {len(rows)} items in {dt:.1f} s = {len(rows) / dt:.2f} items/s")
    if a.compare:
        mine = {o["key"]: o["prediction"] for o in map(json.loads, open(a.compare))}
        differ = sum(r != mine.get(f"gsm8k/main/{i}") for i, r in enumerate(replies))
        print(f"compare: replies differing from Osprey's: {differ} of {len(replies)} (bf16 batches may differ; float32 batch 1 should not)")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make"); m.add_argument("--out", required=True); m.add_argument("--mcq", type=int, default=1000); m.add_argument("--math", type=int, default=200); m.add_argument("--seed", type=int, default=0)
    l = sub.add_parser("loglik"); l.add_argument("--model", required=True); l.add_argument("--mcq", required=True); l.add_argument("--subset", default="bench")
    l.add_argument("--limit", type=int, default=None); l.add_argument("--out"); l.add_argument("--compare"); l.add_argument("--dtype", default="float32")
    g = sub.add_parser("generate"); g.add_argument("--model", required=True); g.add_argument("--math", required=True); g.add_argument("--limit", type=int, default=None)
    g.add_argument("--batch", type=int, default=8); g.add_argument("--max_new_tokens", type=int, default=256); g.add_argument("--compare"); g.add_argument("--dtype", default="bfloat16")
    a = ap.parse_args()
    sys.exit({"make": make, "loglik": loglik, "generate": generate}[a.cmd](a) or 0)


if __name__ == "__main__":
    main()
