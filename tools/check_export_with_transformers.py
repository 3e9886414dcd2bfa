#!/usr/bin/env python3
"""Checks that transformers loads what `osprey export` writes: for every fixture family, exports the model
sharded (float32 and bfloat16), loads the export with AutoModelForCausalLM.from_pretrained, and compares
every tensor and the logits with the original loaded by transformers in the same dtype (identical). Prints one line per family; exit code 1 on any difference."""
import argparse
import os
import subprocess
import sys

import torch
from transformers import AutoModelForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--osprey", required=True)
    ap.add_argument("--fixtures", required=True)
    ap.add_argument("--work", default="/tmp/osprey-export-check")
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    bad = 0
    ids = torch.tensor([[5, 17, 99, 3, 42, 250, 7, 8]])
    for fam in sorted(os.listdir(args.fixtures)):
        src = os.path.join(args.fixtures, fam)
        notes = []
        for dtype, tdtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
            out = os.path.join(args.work, f"{fam}-{dtype}")
            p = subprocess.run([args.osprey, "export", "--model", src, "--output_dir", out, "--torch_dtype", dtype,
                                "--max_shard_size", "150KB", "--device", "cpu"], capture_output=True, text=True)
            if p.returncode != 0:
                notes.append(f"{dtype}: export failed: {p.stderr.strip()[:200]}")
                continue
            shards = sorted(f for f in os.listdir(out) if f.endswith(".safetensors"))
            exp = AutoModelForCausalLM.from_pretrained(out, dtype=tdtype).eval()
            # The reference is the original loaded in the same dtype (casting a loaded model would also cast
            # its float32 RoPE buffers, which loading in a dtype does not).
            ref = AutoModelForCausalLM.from_pretrained(src, dtype=tdtype).eval()
            sd_ref, sd_exp = ref.state_dict(), exp.state_dict()
            same_keys = set(sd_ref) == set(sd_exp)
            same_tensors = same_keys and all(torch.equal(sd_ref[k], sd_exp[k]) for k in sd_ref)
            diff = (ref(ids).logits.float() - exp(ids).logits.float()).abs().max().item()
            ok = same_tensors and diff == 0.0
            notes.append(f"{dtype}: {len(shards)} shards, tensors {'identical' if same_tensors else 'DIFFER'}, max|Δlogit| {diff:.1e}")
            bad += not ok
        print(f"export-check {fam:12s} " + "; ".join(notes), flush=True)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
