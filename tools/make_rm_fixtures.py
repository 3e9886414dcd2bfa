#!/usr/bin/env python3
"""Reward-model parity fixtures: AutoModelForSequenceClassification(num_labels=1) built from the tiny
parity models (tests/fixtures/parity/<family>), score head seeded, saved with save_pretrained, plus
expected.safetensors (input_ids, attention_mask: a right-padded batch; scores [B, 1] float32).

    python3 tools/make_rm_fixtures.py --src tests/fixtures/parity --out tests/fixtures/rm
"""
import argparse, json, os, shutil, sys
import torch, transformers
from safetensors.torch import save_file
from transformers import AutoModelForSequenceClassification

ap = argparse.ArgumentParser()
ap.add_argument("--src", default="tests/fixtures/parity")
ap.add_argument("--out", default="tests/fixtures/rm")
ap.add_argument("--families", default="qwen2,llama,qwen3,mistral,phi3,gemma2")
a = ap.parse_args()
for fam in a.families.split(","):
    src = os.path.join(a.src, fam)
    if not os.path.isdir(src):
        continue
    torch.manual_seed(1234)
    try:
        m = AutoModelForSequenceClassification.from_pretrained(src, num_labels=1, dtype=torch.float32).eval()
    except Exception as e:
        print(fam, "skipped:", e, file=sys.stderr)
        continue
    if m.config.pad_token_id is None:
        m.config.pad_token_id = 0
    out = os.path.join(a.out, fam)
    m.save_pretrained(out)
    for f in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        if os.path.exists(os.path.join(src, f)):
            shutil.copy(os.path.join(src, f), out)
    g = torch.Generator().manual_seed(7)
    lens = [7, 4, 5, 1]
    ids = torch.zeros(len(lens), max(lens), dtype=torch.long)  # pad 0, right padding
    mask = torch.zeros_like(ids)
    for i, n in enumerate(lens):
        ids[i, :n] = torch.randint(3, m.config.vocab_size, (n,), generator=g)
        mask[i, :n] = 1
    with torch.no_grad():
        scores = m(input_ids=ids, attention_mask=mask).logits.float()
    save_file({"input_ids": ids, "attention_mask": mask, "scores": scores.contiguous()},
              os.path.join(out, "expected.safetensors"))
    print(fam, type(m).__name__, scores.flatten().tolist(), sorted(m.state_dict().keys())[-2:], file=sys.stderr)
print("transformers", transformers.__version__, file=sys.stderr)
