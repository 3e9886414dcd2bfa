#!/usr/bin/env python3
"""Writes a Qwen2-architecture model with random bf16 weights (shapes of Qwen2.5-0.5B or, with --size 7b,
Qwen2.5-7B; see
shared reference-numbers: hidden 896, 24 layers, 14 heads / 2 KV heads, intermediate 4864, vocab 151936,
tied embeddings) for speed benchmarks. --layers overrides the depth (a 1-layer copy separates per-layer
cost from fixed per-step cost)."""
import argparse

import torch
from transformers import AutoModelForCausalLM, Qwen2Config


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--size", default="0.5b", choices=["0.5b", "7b"])
    ap.add_argument("--layers", type=int, default=None)
    args = ap.parse_args()
    torch.manual_seed(0)
    if args.size == "0.5b":
        shape = dict(hidden_size=896, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                     intermediate_size=4864, vocab_size=151936, tie_word_embeddings=True)
    else:  # Qwen2.5-7B shapes
        shape = dict(hidden_size=3584, num_hidden_layers=28, num_attention_heads=28, num_key_value_heads=4,
                     intermediate_size=18944, vocab_size=152064, tie_word_embeddings=False)
    if args.layers is not None:
        shape["num_hidden_layers"] = args.layers
    cfg = Qwen2Config(**shape, max_position_embeddings=32768, rope_theta=1000000.0, rms_norm_eps=1e-6,
                      bos_token_id=151643, eos_token_id=151645)
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
    model.save_pretrained(args.out)
    print(f"wrote {args.out}: {sum(p.numel() for p in model.parameters()) / 1e6:.0f}M parameters")


if __name__ == "__main__":
    main()
