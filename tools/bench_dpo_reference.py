#!/usr/bin/env python3
"""transformers + PEFT DPO (LoRA) throughput reference, for issue 23's "DPO LoRA at least the same speed-up as SFT".
GPU only, no network. TRL is not installed on the GPU machine, so this script computes what TRL's DPOTrainer computes
per step, with the same libraries underneath (transformers model, PEFT LoRA, torch AdamW):

  rows      each pair gives two rows, prompt + chosen and prompt + rejected, through the tokenizer's chat template
            (a user turn, then the assistant's response), cut to --max_length; labels are the response tokens only.
  reference the same model with the adapters disabled (PEFT's `disable_adapter()`), under no_grad: what TRL does with a
            PEFT model and no ref_model; one forward over the 2 x batch rows (chosen and rejected concatenated).
  policy    one forward over the same rows with the adapters on; per-row sums of the response tokens' log-probs,
            taken row by row from the bf16 logits as TRL's selective_log_softmax does for 16-bit logits.
  loss      sigmoid DPO: -logsigmoid(beta * ((pi_c - ref_c) - (pi_r - ref_r))), mean over pairs; backward;
            clip_grad_norm 1.0; AdamW(lr, weight_decay 0.1); zero_grad.

Data: a JSON-lines file with "prompt", "chosen", "rejected" (tools/gpu_sft.sh PART=dpo05 writes /tmp/pref.jsonl).
Tokens per step = the non-padding tokens of the 2 x batch rows (what `osprey rlhf` counts in tokens_per_second).
Timing: --warmup untimed steps, then --steps timed steps bracketed by torch.cuda.synchronize().
Output: one JSON line on stdout (and --out): tokens_per_s, ms_per_step, peak memory, losses.
"""
import argparse
import json
import os

from bench_timing import timed_steps


def parse():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True, help="JSON lines with prompt/chosen/rejected")
    ap.add_argument("--batch", type=int, default=4, help="pairs per step")
    ap.add_argument("--max_length", type=int, default=2048)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--beta", type=float, default=0.1)
    ap.add_argument("--lora_rank", type=int, default=8)
    ap.add_argument("--lora_alpha", type=float, default=32)
    ap.add_argument("--lora_dropout", type=float, default=0.05)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--out", default=None)
    return ap.parse_args()


def main():
    args = parse()
    import torch
    import torch.nn.functional as F
    import transformers
    import peft
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not torch.cuda.is_available():
        raise SystemExit("bench_dpo_reference.py needs a CUDA GPU")
    dev = torch.device("cuda")
    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(args.model)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0

    def encode(prompt, response):
        head = tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=True, add_generation_prompt=True)
        full = tok.apply_chat_template([{"role": "user", "content": prompt}, {"role": "assistant", "content": response}],
                                       tokenize=True)
        if hasattr(head, "input_ids"):
            head, full = head["input_ids"], full["input_ids"]
        full = list(full)[: args.max_length]
        labels = [-100] * min(len(head), len(full)) + full[len(head):]
        return full, labels

    pairs = [json.loads(line) for line in open(args.data)]
    total = args.warmup + args.steps
    if len(pairs) < total * args.batch:
        raise SystemExit(f"{args.data} has {len(pairs)} pairs; {total * args.batch} needed")

    def batch(i):
        rows = []
        for p in pairs[i * args.batch:(i + 1) * args.batch]:
            rows.append(encode(p["prompt"], p["chosen"]))
        for p in pairs[i * args.batch:(i + 1) * args.batch]:
            rows.append(encode(p["prompt"], p["rejected"]))
        width = max(len(r[0]) for r in rows)
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        labels = torch.full((len(rows), width), -100, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for j, (x, y) in enumerate(rows):
            ids[j, :len(x)] = torch.tensor(x)
            labels[j, :len(y)] = torch.tensor(y)
            mask[j, :len(x)] = 1
        return ids.to(dev), labels.to(dev), mask.to(dev), int(mask.sum())

    batches = [batch(i) for i in range(total)]

    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.bfloat16, attn_implementation="sdpa").to(dev)
    model.config.use_cache = False
    model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", r=args.lora_rank, lora_alpha=args.lora_alpha,
                                             lora_dropout=args.lora_dropout, target_modules="all-linear", bias="none"))
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1)

    def logps(logits, labels):
        # Per row, as TRL's selective_log_softmax does for 16-bit logits (no float32 copy of the whole batch).
        shifted, target = logits[:, :-1], labels[:, 1:]
        keep = target != -100
        safe = target.clamp(min=0)
        out = []
        for row, t, k in zip(shifted, safe, keep):
            lp = F.log_softmax(row, dim=-1).gather(-1, t.unsqueeze(-1)).squeeze(-1)
            out.append((lp * k).sum())
        return torch.stack(out)

    losses = []

    def step(i):
        ids, labels, mask, _ = batches[i]
        n = args.batch
        with torch.no_grad(), model.disable_adapter():
            ref = logps(model(input_ids=ids, attention_mask=mask).logits, labels)
        pol = logps(model(input_ids=ids, attention_mask=mask).logits, labels)
        margin = (pol[:n] - ref[:n]) - (pol[n:] - ref[n:])
        loss = -F.logsigmoid(args.beta * margin).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.detach())

    torch.cuda.reset_peak_memory_stats()
    wall = timed_steps(step, args.warmup, total)
    tokens = sum(b[3] for b in batches[args.warmup:])
    gib = float(1 << 30)
    vals = [float(x.float().item()) for x in losses]
    result = {
        "framework": "transformers+peft (DPO as TRL computes it)",
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__},
        "gpu": torch.cuda.get_device_name(0), "model": os.path.abspath(args.model), "pairs_per_step": args.batch,
        "max_length": args.max_length, "beta": args.beta,
        "lora": {"r": args.lora_rank, "alpha": args.lora_alpha, "dropout": args.lora_dropout, "target_modules": "all-linear"},
        "warmup_steps": args.warmup, "timed_steps": args.steps, "tokens_timed": tokens,
        "ms_per_step": round(wall * 1000 / args.steps, 2), "tokens_per_s": round(tokens / wall, 1),
        "peak_mem_allocated_gib": round(torch.cuda.max_memory_allocated() / gib, 3),
        "peak_mem_reserved_gib": round(torch.cuda.max_memory_reserved() / gib, 3),
        "loss_first": vals[0], "loss_last": vals[-1],
    }
    line = json.dumps(result)
    print(line)
    if args.out:
        with open(args.out, "w") as f:
            f.write(line + "\n")


if __name__ == "__main__":
    main()
