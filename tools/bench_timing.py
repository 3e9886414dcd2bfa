"""The warm-up-then-timed loop the transformers reference benchmarks share (tools/bench_sft_reference.py,
tools/bench_dpo_reference.py): `warmup` untimed calls of step(i), then steps warmup..total-1 bracketed by
torch.cuda.synchronize(); returns the timed steps' wall-clock seconds."""
import time


def timed_steps(step, warmup, total):
    import torch

    for i in range(warmup):
        step(i)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for i in range(warmup, total):
        step(i)
    torch.cuda.synchronize()
    return time.perf_counter() - t0
