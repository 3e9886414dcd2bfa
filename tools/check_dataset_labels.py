#!/usr/bin/env python3
"""Dataset formats end to end against transformers: `osprey encode` input_ids/labels vs an independent reference.

For each dataset file (the shipped examples/datasets/* and files of random rows this script writes in every
format, i.e. inputs not in the repository), this script
  1. converts the rows to OpenAI messages itself (its own reading of each format: messages, ShareGPT, Alpaca,
     query/response/history, question/answer columns, csv/tsv, preference (chosen side), KTO);
  2. renders them with transformers' apply_chat_template and labels the assistant spans: for assistant message i,
     the span starts where apply_chat_template(messages[:i], add_generation_prompt=True) ends (it must be a prefix
     of the full rendering) and ends after the message's content plus the end-of-turn token that follows it; a
     token carries loss when its first character lies in a span (offsets from the tokenizer);
  3. runs `osprey encode --model TOKENIZER --dataset FILE --dataset_shuffle false` and compares input_ids and
     labels row by row.

    python3 tools/check_dataset_labels.py --osprey /tmp/o/osprey-gpu/osprey --tokenizers /tmp/t/tokenizers

Prints a table last, writes $OUT/dataset_labels_check.json; exits 1 on any mismatch.
"""
import argparse
import csv
import json
import os
import random
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples", "datasets")
END_OF_TURN = {"qwen3": "<|im_end|>", "llama3_1": "<|eot_id|>"}


def read_rows(path):
    if path.endswith(".jsonl"):
        with open(path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
    if path.endswith(".json"):
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        return data["data"] if isinstance(data, dict) else data
    delimiter = "\t" if path.endswith(".tsv") else ","
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter=delimiter))


def has_tools(row):
    """Rows with tool calls are left out: this reference does not model where tool-call text carries loss."""
    text = json.dumps(row)
    return any(k in text for k in ('"tool_calls"', '"role": "tool"', '"function_call"', '"observation"', '"tools"'))


def to_messages(row):
    """This script's own reading of the formats (ms-swift's conventions)."""
    if "messages" in row:
        return [dict(m) for m in row["messages"]]
    if "conversations" in row:
        roles = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}
        msgs = [{"role": "system", "content": row["system"]}] if row.get("system") else []
        return msgs + [{"role": roles[t["from"]], "content": t["value"]} for t in row["conversations"]]
    if "prompt" in row and "chosen" in row:
        return [{"role": "user", "content": row["prompt"]}, {"role": "assistant", "content": row["chosen"]}]
    if "instruction" in row:
        query = row["instruction"] + ("\n" + row["input"] if row.get("input") else "")
        response = row["output"]
    else:
        query = row.get("query", row.get("question"))
        response = row.get("response", row.get("answer"))
    msgs = [{"role": "system", "content": row["system"]}] if row.get("system") else []
    history = row.get("history") or []
    if isinstance(history, str):
        history = json.loads(history)
    for q, r in history:
        msgs += [{"role": "user", "content": q}, {"role": "assistant", "content": r}]
    return msgs + [{"role": "user", "content": query}, {"role": "assistant", "content": response}]


def reference(tok, messages, end_of_turn):
    full = tok.apply_chat_template(messages, tokenize=False)
    spans = []
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        prefix = tok.apply_chat_template(messages[:i], tokenize=False, add_generation_prompt=True)
        if not full.startswith(prefix):
            raise RuntimeError(f"template is not prefix-stable at message {i}")
        content_at = full.index(m["content"].strip(), len(prefix))
        end = content_at + len(m["content"].strip())
        if full.startswith(end_of_turn, end):
            end += len(end_of_turn)
        spans.append((len(prefix), end))
    enc = tok(full, add_special_tokens=False, return_offsets_mapping=True)
    labels = [tid if any(s <= a < e for s, e in spans) else -100 for tid, (a, _) in zip(enc["input_ids"], enc["offset_mapping"])]
    return enc["input_ids"], labels


WORDS = ("amber basalt cedar delta ember fjord garnet harbor iris juniper kelp lumen mesa nectar opal prairie quartz "
         "ridge sierra tundra umber vale willow xenon yarrow zephyr 山 水 月 🙂").split()


def random_files(folder, seed):
    rng = random.Random(seed)

    def s(n):
        return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + rng.choice([".", "?", "!"])

    files = {}
    rows = []
    for _ in range(20):
        msgs = [{"role": "system", "content": s(5)}] if rng.random() < 0.3 else []
        for _ in range(rng.randint(1, 3)):
            msgs += [{"role": "user", "content": s(rng.randint(2, 12))}, {"role": "assistant", "content": s(rng.randint(2, 20))}]
        rows.append(msgs)

    def write_jsonl(name, items):
        path = os.path.join(folder, name)
        with open(path, "w", encoding="utf-8") as f:
            for item in items:
                f.write(json.dumps(item, ensure_ascii=False) + "\n")
        files[name] = path

    write_jsonl("rand_messages.jsonl", [{"messages": m} for m in rows])
    write_jsonl("rand_sharegpt.jsonl", [{"conversations": [{"from": {"user": "human", "assistant": "gpt"}[x["role"]], "value": x["content"]}
                                                           for x in m if x["role"] != "system"]} for m in rows])
    alp = [{"instruction": s(6), "input": s(4) if rng.random() < 0.5 else "", "output": s(15)} for _ in range(20)]
    path = os.path.join(folder, "rand_alpaca.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(alp, f, ensure_ascii=False)
    files["rand_alpaca.json"] = path
    write_jsonl("rand_query.jsonl", [{"query": s(5), "response": s(9), "history": [[s(3), s(4)]] if rng.random() < 0.5 else []}
                                     for _ in range(20)])
    path = os.path.join(folder, "rand_qa.csv")
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["question", "answer"])
        for _ in range(20):
            w.writerow([s(5) + ', "quoted"', s(8) + "\nsecond line"])
    files["rand_qa.csv"] = path
    return files


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--osprey", required=True)
    ap.add_argument("--tokenizers", required=True)
    ap.add_argument("--names", default="qwen3,llama3_1")
    ap.add_argument("--work", default="/tmp/osprey-dataset-check")
    ap.add_argument("--seed", type=int, default=4242)
    args = ap.parse_args()
    out_dir = os.environ.get("OUT", ".")
    from transformers import AutoTokenizer

    os.makedirs(args.work, exist_ok=True)
    files = {n: os.path.join(EXAMPLES, n) for n in sorted(os.listdir(EXAMPLES))
             if not n.startswith(("pretrain", "self-cognition", "preference_messages"))}
    files.update(random_files(args.work, args.seed))
    env = dict(os.environ)
    env.setdefault("DOTNET_SYSTEM_GLOBALIZATION_INVARIANT", "1")
    env["XDG_CACHE_HOME"] = os.path.join(args.work, "cache")
    report, failed = [], False
    for name in args.names.split(","):
        folder = os.path.join(args.tokenizers, name)
        tok = AutoTokenizer.from_pretrained(folder)
        for fname, path in files.items():
            row = {"tokenizer": name, "file": fname}
            try:
                rows = read_rows(path)
                expected = [None if has_tools(r) else reference(tok, to_messages(r), END_OF_TURN[name]) for r in rows]
                row["tool_rows_left_out"] = sum(1 for e in expected if e is None)
                run = subprocess.run([args.osprey, "encode", "--model", folder, "--dataset", path, "--dataset_shuffle", "false"],
                                     capture_output=True, text=True, env=env, timeout=300)
                if run.returncode != 0:
                    raise RuntimeError(run.stderr[-1000:])
                got = [json.loads(line) for line in run.stdout.splitlines() if line.strip()]
                row["rows"] = sum(1 for e in expected if e is not None)
                row["equal"] = sum(1 for e, g in zip(expected, got) if e is not None and g["input_ids"] == e[0] and g["labels"] == e[1])
                row["osprey_rows"] = len(got)
                if row["equal"] != row["rows"] or len(got) != len(expected):
                    failed = True
                    for k, (e, g) in enumerate(zip(expected, got)):
                        if e is None:
                            continue
                        ids, labels = e
                        if g["input_ids"] != ids or g["labels"] != labels:
                            row["first_mismatch"] = {"row": k, "ids_equal": g["input_ids"] == ids,
                                                     "reference_loss_text": tok.decode([t for t in labels if t != -100]),
                                                     "osprey_loss_text": tok.decode([t for t in g["labels"] if t != -100])}
                            break
            except Exception as e:  # noqa: BLE001 - reported
                row["error"] = f"{type(e).__name__}: {e}"[:1000]
                failed = True
            report.append(row)
    with open(os.path.join(out_dir, "dataset_labels_check.json"), "w", encoding="utf-8") as f:
        json.dump(report, f, ensure_ascii=False, indent=1)
    print(f"{'tokenizer':<10}{'file':<26}{'rows equal (ids and labels)':>40}")
    for r in report:
        status = r.get("error", "")[:60] or f"{r['equal']}/{r['rows']}" + (f" (+{r['tool_rows_left_out']} tool rows left out)" if r["tool_rows_left_out"] else "")
        print(f"{r['tokenizer']:<10}{r['file']:<26}{status:>40}")
        if "first_mismatch" in r:
            print("   ", json.dumps(r["first_mismatch"], ensure_ascii=False)[:400])
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
