#!/usr/bin/env python3
"""transformers + PEFT supervised fine-tuning throughput reference (what a user of HF/PEFT gets), for comparing
Osprey's training speed and memory. GPU only. No network.

Model: a folder written by tools/make_bench_model.py (Qwen2 0.5B or 7B shapes, random bf16 weights), e.g.
    python3 tools/make_bench_model.py --out /tmp/qwen05b
    python3 tools/bench_sft_reference.py --model /tmp/qwen05b --train_type lora --batch 4 --seq 2048 \
        --gradient_checkpointing --out /tmp/hf_lora.json
    python3 tools/bench_sft_reference.py --model /tmp/qwen05b --train_type full --out /tmp/hf_full.json

Set-ups:
  lora  model loaded in bf16 (attn_implementation="sdpa"), get_peft_model(LoraConfig(r=--lora_rank,
        lora_alpha=--lora_alpha, lora_dropout=--lora_dropout, target_modules="all-linear")). PEFT's default
        autocast_adapter_dtype=True keeps the LoRA A/B params in float32 (left as is: it is what users get).
        torch.optim.AdamW(trainable params, lr, weight_decay=0.1).
  full  model loaded in float32, forward+loss under torch.autocast("cuda", dtype=torch.bfloat16) (HF Trainer's
        bf16 mixed precision), AdamW over all params in float32.
  full --full_bf16   model loaded and trained in pure bf16 (params, grads and AdamW state in bf16).
Data: random token ids in [0, vocab) from a Generator seeded --seed, a fresh [batch, seq] batch per step,
labels = input_ids (transformers shifts them: loss over every next token).
Each step: loss = model(input_ids, labels=labels).loss; loss.backward(); clip_grad_norm_(params, 1.0);
optimizer.step(); optimizer.zero_grad(set_to_none=True).
Gradient checkpointing (--gradient_checkpointing): model.gradient_checkpointing_enable(
gradient_checkpointing_kwargs={"use_reentrant": False}), plus model.enable_input_require_grads() for LoRA.
Timing: --warmup untimed steps, then --steps timed steps, bracketed by torch.cuda.synchronize() (per-step times
from CUDA events). Losses are read back only after the run (no per-step host sync).

Output: one JSON line on stdout, also written to --out:
  {"framework": "transformers+peft", "versions": {...}, "gpu", "model", "train_type", "precision", "batch", "seq",
   "gradient_checkpointing", "lora": {...} | null, "lr", "weight_decay", "optimizer", "warmup_steps",
   "timed_steps", "tokens_per_step" (batch*seq), "ms_per_step" (mean of timed steps), "ms_per_step_median",
   "tokens_per_s", "peak_mem_allocated_gib", "peak_mem_reserved_gib" (torch.cuda.max_memory_* over the whole
   run, model load included; GiB = 2^30 bytes), "n_params_total", "n_params_trainable", "n_params_matmul",
   "flops_per_token", "mfu", "mfu_formula", "peak_flops", "loss_first" (step 1 of warm-up), "loss_last",
   "losses"}
MFU = flops_per_token * tokens_per_s / peak_flops with
  flops_per_token = k * N_matmul + 12 * layers * hidden * seq
  k = 6 for full (forward 2N, input grads 2N, weight grads 2N), 4 for LoRA (no base-weight grads);
  N_matmul = parameters of the nn.Linear layers that run a matmul per token, lm_head included (with tied
  embeddings the shared matrix counts once, as lm_head), LoRA A/B excluded; the embedding lookup is not a matmul;
  12*layers*hidden*seq = attention scores and weighted sum, forward + backward, without causal halving;
  gradient-checkpointing recompute is not counted (model FLOPs, not hardware FLOPs).
  peak_flops defaults to 989e12 (H100/H200 dense bf16).
"""
import argparse
import json
import os
import statistics
import sys

from bench_timing import timed_steps


def parse():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="model folder (tools/make_bench_model.py output)")
    ap.add_argument("--train_type", choices=["lora", "full"], default="lora")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=2048)
    ap.add_argument("--gradient_checkpointing", action="store_true")
    ap.add_argument("--steps", type=int, default=20, help="timed steps (after the warm-up)")
    ap.add_argument("--warmup", type=int, default=5, help="untimed warm-up steps")
    ap.add_argument("--lora_rank", type=int, default=8)
    ap.add_argument("--lora_alpha", type=float, default=32)
    ap.add_argument("--lora_dropout", type=float, default=0.05)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--weight_decay", type=float, default=0.1)
    ap.add_argument("--full_bf16", action="store_true", help="full: pure bf16 params/optimizer, no autocast")
    ap.add_argument("--attn", default="sdpa", help="attn_implementation (default sdpa)")
    ap.add_argument("--adamw_impl", choices=["default", "foreach", "fused"], default="default",
                    help="torch AdamW implementation (default: torch's choice, foreach on CUDA)")
    ap.add_argument("--torch_compile", action="store_true", help="torch.compile the model (off by default)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--peak_flops", type=float, default=989e12)
    ap.add_argument("--out", default=None, help="JSON file to write")
    args = ap.parse_args()
    if args.full_bf16 and args.train_type != "full":
        ap.error("--full_bf16 only applies to --train_type full")
    if args.steps < 1 or args.warmup < 0:
        ap.error("--steps must be >= 1 and --warmup >= 0")
    if not os.path.isfile(os.path.join(args.model, "config.json")):
        ap.error(f"{args.model} has no config.json")
    return args


def matmul_params(model):
    """Weights of nn.Linear layers (base layers only, LoRA A/B excluded), shared matrices counted once."""
    import torch

    seen, n = set(), 0
    for name, m in model.named_modules():
        if not isinstance(m, torch.nn.Linear):
            continue
        if ".lora_" in name or name.split(".")[-1].startswith("lora_"):
            continue
        w = m.weight
        if w.data_ptr() in seen:
            continue
        seen.add(w.data_ptr())
        n += w.numel()
    return n


def main():
    args = parse()
    import torch
    import transformers
    from transformers import AutoConfig, AutoModelForCausalLM

    if not torch.cuda.is_available():
        raise SystemExit("bench_sft_reference.py needs a CUDA GPU")
    dev = torch.device("cuda")
    torch.manual_seed(args.seed)
    torch.cuda.reset_peak_memory_stats()
    cfg = AutoConfig.from_pretrained(args.model)
    if args.seq > getattr(cfg, "max_position_embeddings", args.seq):
        raise SystemExit(f"--seq {args.seq} exceeds max_position_embeddings {cfg.max_position_embeddings}")

    if args.train_type == "lora":
        load_dtype, precision = torch.bfloat16, "bf16 base, fp32 LoRA params (PEFT default)"
    elif args.full_bf16:
        load_dtype, precision = torch.bfloat16, "pure bf16"
    else:
        load_dtype, precision = torch.float32, "fp32 params + bf16 autocast (HF Trainer bf16)"
    use_autocast = args.train_type == "full" and not args.full_bf16

    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=load_dtype, attn_implementation=args.attn)
    model.to(dev)
    model.config.use_cache = False
    if args.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    lora_info = None
    versions = {"torch": torch.__version__, "transformers": transformers.__version__}
    if args.train_type == "lora":
        import peft
        from peft import LoraConfig, get_peft_model

        versions["peft"] = peft.__version__
        if args.gradient_checkpointing:
            model.enable_input_require_grads()
        lcfg = LoraConfig(task_type="CAUSAL_LM", r=args.lora_rank, lora_alpha=args.lora_alpha,
                          lora_dropout=args.lora_dropout, target_modules="all-linear", bias="none")
        model = get_peft_model(model, lcfg)
        lora_dtypes = sorted({str(p.dtype) for n, p in model.named_parameters() if p.requires_grad})
        lora_info = {"r": args.lora_rank, "alpha": args.lora_alpha, "dropout": args.lora_dropout,
                     "target_modules": "all-linear", "trainable_dtypes": lora_dtypes}
    model.train()

    params = [p for p in model.parameters() if p.requires_grad]
    n_total = sum(p.numel() for p in model.parameters())
    n_train = sum(p.numel() for p in params)
    n_matmul = matmul_params(model)
    opt_kwargs = dict(lr=args.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=args.weight_decay)
    if args.adamw_impl == "fused":
        opt_kwargs["fused"] = True
    elif args.adamw_impl == "foreach":
        opt_kwargs["foreach"] = True
    opt = torch.optim.AdamW(params, **opt_kwargs)

    fwd = torch.compile(model) if args.torch_compile else model

    total = args.warmup + args.steps
    g = torch.Generator().manual_seed(args.seed)
    batches = [torch.randint(0, cfg.vocab_size, (args.batch, args.seq), generator=g) for _ in range(total)]
    batches = [b.to(dev) for b in batches]

    losses = []
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(total)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(total)]

    def step(i):
        ids = batches[i]
        starts[i].record()
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_autocast):
            loss = fwd(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        ends[i].record()
        losses.append(loss.detach())

    wall = timed_steps(step, args.warmup, total)

    step_ms = [starts[i].elapsed_time(ends[i]) for i in range(args.warmup, total)]
    loss_vals = [float(x.float().item()) for x in losses]
    tokens_per_step = args.batch * args.seq
    ms_per_step = wall * 1000.0 / args.steps
    tok_s = tokens_per_step * args.steps / wall
    k = 4 if args.train_type == "lora" else 6
    layers, hidden = cfg.num_hidden_layers, cfg.hidden_size
    flops_per_token = k * n_matmul + 12 * layers * hidden * args.seq
    mfu = flops_per_token * tok_s / args.peak_flops
    gib = float(1 << 30)
    result = {
        "framework": "transformers+peft" if args.train_type == "lora" else "transformers",
        "versions": versions, "gpu": torch.cuda.get_device_name(0), "model": os.path.abspath(args.model),
        "model_shape": {"layers": layers, "hidden": hidden, "vocab": cfg.vocab_size,
                        "tie_word_embeddings": bool(getattr(cfg, "tie_word_embeddings", False))},
        "train_type": args.train_type, "precision": precision, "attn_implementation": args.attn,
        "batch": args.batch, "seq": args.seq, "gradient_checkpointing": args.gradient_checkpointing,
        "torch_compile": args.torch_compile, "lora": lora_info, "lr": args.lr, "weight_decay": args.weight_decay,
        "optimizer": f"torch.optim.AdamW({args.adamw_impl}), clip_grad_norm 1.0", "seed": args.seed,
        "warmup_steps": args.warmup, "timed_steps": args.steps, "tokens_per_step": tokens_per_step,
        "ms_per_step": round(ms_per_step, 3), "ms_per_step_median": round(statistics.median(step_ms), 3),
        "tokens_per_s": round(tok_s, 1),
        "peak_mem_allocated_gib": round(torch.cuda.max_memory_allocated() / gib, 3),
        "peak_mem_reserved_gib": round(torch.cuda.max_memory_reserved() / gib, 3),
        "n_params_total": n_total, "n_params_trainable": n_train, "n_params_matmul": n_matmul,
        "flops_per_token": flops_per_token, "mfu": round(mfu, 4),
        "mfu_formula": f"({k}*N_matmul + 12*layers*hidden*seq) * tokens_per_s / peak_flops; k=6 full, 4 LoRA; "
                       "N_matmul = nn.Linear weights incl. lm_head (tied counted once), LoRA excluded; "
                       "no causal halving, no checkpointing recompute",
        "peak_flops": args.peak_flops,
        "loss_first": loss_vals[0], "loss_last": loss_vals[-1], "losses": [round(x, 5) for x in loss_vals],
    }
    line = json.dumps(result)
    print(line)
    if args.out:
        d = os.path.dirname(os.path.abspath(args.out))
        os.makedirs(d, exist_ok=True)
        with open(args.out, "w") as f:
            f.write(line + "\n")
    if any(x != x for x in loss_vals):
        print("warning: NaN loss", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
