#!/usr/bin/env python3
"""Checks that transformers loads reward models Osprey trained, and scores them as Osprey does.

Trains (with $OSP, the osprey binary) a full and a LoRA reward model on examples/datasets/preference.jsonl from the
tiny qwen2 parity model on the CPU, then loads
  - the full checkpoint with AutoModelForSequenceClassification, and
  - the base with AutoModelForSequenceClassification + PeftModel.from_pretrained(the SEQ_CLS adapter),
and compares their scores for a few prompts with `osprey infer --input_ids` on the same checkpoints (float32).
Prints a table; exits 1 when any |Δscore| > 1e-4.

    OSP=/path/to/osprey python3 tools/rm_interop_check.py [--out FILE.json]
"""
import argparse, json, os, subprocess, sys, tempfile
import torch
from transformers import AutoModelForSequenceClassification
from peft import PeftModel

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASE = os.path.join(ROOT, "tests/fixtures/parity/qwen2")
PROMPTS = [[5, 17, 42, 99, 100, 3, 8], [9, 8, 7, 6, 5, 4, 3], [44, 45, 46, 47, 48, 49, 50]]


def osprey(*args):
    r = subprocess.run([os.environ["OSP"], *args], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"osprey {' '.join(args)} failed:\n{r.stderr}")
    return r.stdout


def osprey_scores(*model_args):
    ids = ";".join(" ".join(map(str, p)) for p in PROMPTS)
    out = osprey("infer", *model_args, "--input_ids", ids, "--device", "cpu", "--torch_dtype", "float32")
    return [float(line.split("] ", 1)[1]) for line in out.strip().splitlines() if line.startswith("[")]


def hf_scores(model):
    with torch.no_grad():
        return [model(input_ids=torch.tensor([p])).logits[0, 0].item() for p in PROMPTS]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out")
    a = ap.parse_args()
    work = tempfile.mkdtemp()
    rows = []
    for kind in ("full", "lora"):
        out = os.path.join(work, kind)
        osprey("rlhf", "--rlhf_type", "rm", "--train_type", kind, "--model", BASE, "--dataset", os.path.join(ROOT, "examples/datasets/preference.jsonl"),
               "--max_steps", "10", "--per_device_train_batch_size", "4", "--gradient_accumulation_steps", "1",
               "--learning_rate", "1e-3" if kind == "full" else "1e-2", "--device", "cpu", "--output_dir", out, "--add_version", "false", "--save_steps", "10")
        ckpt = os.path.join(out, "checkpoint-10")
        if kind == "full":
            hf = AutoModelForSequenceClassification.from_pretrained(ckpt, dtype=torch.float32, attn_implementation="eager").eval()
            ours = osprey_scores("--model", ckpt)
        else:
            base = AutoModelForSequenceClassification.from_pretrained(BASE, num_labels=1, dtype=torch.float32, attn_implementation="eager")
            hf = PeftModel.from_pretrained(base, ckpt).eval()
            ours = osprey_scores("--adapters", ckpt)
        theirs = hf_scores(hf)
        diff = max(abs(x - y) for x, y in zip(ours, theirs))
        rows.append({"model": kind, "osprey": ours, "transformers": theirs, "max_abs": diff, "ok": diff <= 1e-4})
    for r in rows:
        print(f"{r['model']:5s} max|Δscore| {r['max_abs']:.2e} {'ok' if r['ok'] else 'FAIL'}  osprey {['%.5f' % v for v in r['osprey']]}  transformers {['%.5f' % v for v in r['transformers']]}")
    if a.out:
        json.dump(rows, open(a.out, "w"), indent=1)
    sys.exit(0 if all(r["ok"] for r in rows) else 1)


if __name__ == "__main__":
    main()
