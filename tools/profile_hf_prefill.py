#!/usr/bin/env python3
"""Diagnostic: where transformers spends a prefill forward (batch x prompt tokens), with torch.profiler,
to compare with `OSPREY_TRACE_FORWARD=1 osprey benchmark ...`. Prints the wall time of one forward and
the top CUDA kernels."""
import argparse
import time

import torch
from transformers import AutoModelForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--batch_size", type=int, default=32)
    ap.add_argument("--prompt_length", type=int, default=2048)
    args = ap.parse_args()
    torch.backends.cuda.enable_cudnn_sdp(False)
    torch.set_grad_enabled(False)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.bfloat16, attn_implementation="sdpa").cuda().eval()
    ids = torch.randint(3, model.config.vocab_size, (args.batch_size, args.prompt_length), device="cuda")
    for _ in range(2):
        model(ids, logits_to_keep=1)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    model(ids, logits_to_keep=1)
    torch.cuda.synchronize()
    print(f"hf forward {args.batch_size}x{args.prompt_length}: {(time.perf_counter() - t0) * 1000:.1f} ms")
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        model(ids, logits_to_keep=1)
        torch.cuda.synchronize()
    print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=18, max_name_column_width=70))


if __name__ == "__main__":
    main()
