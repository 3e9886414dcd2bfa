#!/usr/bin/env python3
"""HF reference for `osprey benchmark`: transformers generate() on the same model folder, same batch sizes,
prompt length and new tokens, greedy, end-of-sequence suppressed (min_new_tokens) so every row decodes the
full length. cuDNN attention is turned off (the fair reference, see shared reference-numbers.md).
Prefill time = time of generate(max_new_tokens=1); decode = the rest of a full run.
Appends one JSON line per batch size to --result_path."""
import argparse
import json
import time

import torch
from transformers import AutoModelForCausalLM


def nvml_used(index=0):
    try:
        import ctypes
        nv = ctypes.CDLL("libnvidia-ml.so.1")
        nv.nvmlInit_v2()
        h = ctypes.c_void_p()
        nv.nvmlDeviceGetHandleByIndex_v2(index, ctypes.byref(h))
        mem = (ctypes.c_ulonglong * 3)()
        nv.nvmlDeviceGetMemoryInfo(h, ctypes.byref(mem))
        return int(mem[2])
    except OSError:
        return -1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--batch_size", type=int, nargs="+", default=[1])
    ap.add_argument("--prompt_length", type=int, default=128)
    ap.add_argument("--max_new_tokens", type=int, default=256)
    ap.add_argument("--cudnn_sdp", action="store_true", help="leave cuDNN attention on (the default trap)")
    ap.add_argument("--static", action="store_true",
                    help="cache_implementation='static': transformers then compiles the decode step (torch.compile, CUDA graphs)")
    ap.add_argument("--result_path")
    args = ap.parse_args()
    if not args.cudnn_sdp:
        torch.backends.cuda.enable_cudnn_sdp(False)
    torch.set_grad_enabled(False)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.bfloat16, attn_implementation="sdpa").cuda().eval()
    vocab = model.config.vocab_size
    print("batch  prompt  new  prefill_s  prefill_tok/s  decode_tok/s  ms/step  peak_alloc_GiB  gpu_used_GiB")
    for b in args.batch_size:
        g = torch.Generator().manual_seed(0)
        ids = torch.randint(3, vocab, (b, args.prompt_length), generator=g).cuda()
        mask = torch.ones_like(ids)
        kw = dict(attention_mask=mask, do_sample=False, pad_token_id=0)
        if args.static:
            kw["cache_implementation"] = "static"
            # Compiles for this batch and cache length; the timed runs below reuse it.
            model.generate(ids, max_new_tokens=args.max_new_tokens, min_new_tokens=args.max_new_tokens, **kw)
        model.generate(ids, max_new_tokens=8, min_new_tokens=8, **kw)  # warm-up
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        model.generate(ids, max_new_tokens=1, min_new_tokens=1, **kw)
        torch.cuda.synchronize()
        prefill = time.perf_counter() - t0
        t0 = time.perf_counter()
        out = model.generate(ids, max_new_tokens=args.max_new_tokens, min_new_tokens=args.max_new_tokens, **kw)
        torch.cuda.synchronize()
        total = time.perf_counter() - t0
        new = out.shape[1] - args.prompt_length
        decode = total - prefill
        r = dict(Batch=b, PromptLength=args.prompt_length, NewTokens=new, PrefillSeconds=prefill,
                 PrefillTokensPerSecond=b * args.prompt_length / prefill, DecodeSeconds=decode,
                 DecodeTokensPerSecond=b * (new - 1) / decode, MillisecondsPerStep=decode / (new - 1) * 1000,
                 PeakAllocatedBytes=torch.cuda.max_memory_allocated(), GpuUsedBytes=nvml_used())
        print(f"{b:5d}  {args.prompt_length:6d}  {new:3d}  {prefill:9.3f}  {r['PrefillTokensPerSecond']:13.0f}  "
              f"{r['DecodeTokensPerSecond']:12.1f}  {r['MillisecondsPerStep']:7.2f}  {r['PeakAllocatedBytes'] / 2**30:14.2f}  "
              f"{r['GpuUsedBytes'] / 2**30:12.2f}", flush=True)
        if args.result_path:
            with open(args.result_path, "a") as f:
                f.write(json.dumps(dict(engine="hf-static" if args.static else "hf", model=args.model, cudnn_sdp=args.cudnn_sdp, result=r)) + "\n")


if __name__ == "__main__":
    main()
