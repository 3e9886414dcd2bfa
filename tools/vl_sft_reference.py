#!/usr/bin/env python3
"""transformers + PEFT LoRA fine-tuning throughput of a Qwen2-VL model on ms-swift image rows: the reference for
Osprey's `osprey sft` on the same model and rows (issue 22 benchmark, tools/vl_bench.sh). GPU only, no network.

    python3 tools/vl_sft_reference.py --model /tmp/qwen2-vl-7b --dataset /tmp/vlb-data/train.jsonl \
        --batch 4 --warmup 2 --steps 6 --out /tmp/hf_vl_lora.json

Set-up (what a transformers + PEFT user writes, matched to Osprey's defaults for the run it is compared with):
  model     Qwen2VLForConditionalGeneration.from_pretrained(dtype=bfloat16, attn_implementation=--attn (sdpa)), on
            CUDA, use_cache off; gradient checkpointing on (use_reentrant=False) with enable_input_require_grads(), as
            Osprey's --gradient_checkpointing true (its default); --no_gradient_checkpointing turns it off.
  LoRA      get_peft_model(LoraConfig(r, lora_alpha, lora_dropout, target_modules=--target_regex)). The default regex
            names the language model's seven linear layers of every block, the modules Osprey's default LoRA run
            (--target_modules all-linear, vision tower and merger frozen) adapts and writes to adapter_config.json.
            PEFT's default autocast_adapter_dtype keeps A/B in float32.
  optimizer torch.optim.AdamW(lr, weight_decay 0.1) over the adapters, clip_grad_norm_ 1.0, constant rate.
  data      each row of --dataset (ms-swift: messages with <image> tags, "images" relative to the file) becomes
            content parts (one image part per tag, in place), is rendered with the tokenizer's chat template and goes
            through the processor (AutoProcessor; Qwen2VLProcessor built from the folder's image processor and
            tokenizer if AutoProcessor cannot load it) with its images: input_ids with each <|image_pad|> expanded,
            pixel_values, image_grid_thw, mm_token_type_ids. Labels: -100 on the prompt (the same conversation
            without the reply, rendered with add_generation_prompt) and on every image token, the ids elsewhere.
            Rows are taken in file order, --batch per step (right-padded with attention_mask when lengths differ);
            all of it is done and moved to the GPU before the clock starts (Osprey also preprocesses every image up
            front).
  tokens    per step = the attention mask's sum (every non-pad token, image tokens included), which is what
            Osprey's logging.jsonl tokens_per_second counts.
Timing: --warmup untimed steps, then --steps timed steps between torch.cuda.synchronize() calls. Peak memory:
torch.cuda.max_memory_allocated/reserved over the whole run, model load included (tools/vl_bench.sh also polls
nvidia-smi, the meter it uses for both stacks).

Output: one JSON line on stdout, also written to --out.
"""
import argparse
import inspect
import json
import os
import statistics
import sys
import time

DEFAULT_TARGETS = (r"model\.language_model\.layers\.\d+\.(self_attn\.(q_proj|k_proj|v_proj|o_proj)"
                   r"|mlp\.(gate_proj|up_proj|down_proj))")


def parse():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--dataset", required=True, help="ms-swift multimodal rows (.jsonl)")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=6, help="timed steps (after the warm-up)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--lora_rank", type=int, default=8)
    ap.add_argument("--lora_alpha", type=float, default=32)
    ap.add_argument("--lora_dropout", type=float, default=0.05)
    ap.add_argument("--target_regex", default=DEFAULT_TARGETS)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--weight_decay", type=float, default=0.1)
    ap.add_argument("--attn", default="sdpa")
    ap.add_argument("--no_gradient_checkpointing", action="store_true")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if args.steps < 1 or args.warmup < 0 or args.batch < 1:
        ap.error("--steps and --batch must be >= 1 and --warmup >= 0")
    return args


class PublishedRuleProcessor:
    """The last resort when no Qwen2VLProcessor can be built: the folder's image processor and tokenizer, with each
    <|image_pad|> repeated grid_t*grid_h*grid_w / merge_size^2 times (Qwen2VLProcessor's published rule)."""

    def __init__(self, image_processor, tokenizer):
        self.image_processor, self.tokenizer = image_processor, tokenizer

    def __call__(self, text, images=None, return_tensors="pt"):
        import torch

        out = {}
        prompt = text[0]
        if images:
            px = self.image_processor(images=images, return_tensors="pt")
            out["pixel_values"], out["image_grid_thw"] = px["pixel_values"], px["image_grid_thw"]
            merge = self.image_processor.merge_size ** 2
            pieces = prompt.split("<|image_pad|>")
            if len(pieces) - 1 != len(images):
                raise SystemExit(f"{len(pieces) - 1} <|image_pad|> in the prompt for {len(images)} images")
            prompt = pieces[0] + "".join("<|image_pad|>" * (int(px["image_grid_thw"][i].prod()) // merge) + piece
                                         for i, piece in enumerate(pieces[1:]))
        out["input_ids"] = torch.tensor([self.tokenizer(prompt, add_special_tokens=False)["input_ids"]])
        return out


def load_processor(model_dir):
    import transformers
    notes = []
    try:
        proc = transformers.AutoProcessor.from_pretrained(model_dir)
        if hasattr(proc, "image_processor") and hasattr(proc, "tokenizer"):
            return proc, f"AutoProcessor ({type(proc).__name__})"
        notes.append(f"AutoProcessor gave a {type(proc).__name__}")
    except Exception as e:  # e.g. a folder without a video processor config
        notes.append(f"AutoProcessor: {type(e).__name__}: {str(e)[:200]}")
    image_processor = transformers.AutoImageProcessor.from_pretrained(model_dir)
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
    try:
        return (transformers.Qwen2VLProcessor(image_processor=image_processor, tokenizer=tokenizer),
                "Qwen2VLProcessor(image_processor, tokenizer); " + "; ".join(notes))
    except Exception as e:
        notes.append(f"Qwen2VLProcessor: {type(e).__name__}: {str(e)[:200]}")
    return PublishedRuleProcessor(image_processor, tokenizer), "image processor + tokenizer; " + "; ".join(notes)


def parts(content):
    """ms-swift text with <image> tags -> content parts, an image part at each tag."""
    out, pieces = [], content.split("<image>")
    for i, piece in enumerate(pieces):
        if i > 0:
            out.append({"type": "image"})
        if piece:
            out.append({"type": "text", "text": piece})
    return out


def encode_rows(path, processor, tokenizer, image_token_id):
    from PIL import Image

    def render(msgs, generation_prompt):
        # The folder's chat_template.jinja: transformers gives it to the tokenizer, or only to the processor.
        owner = tokenizer if getattr(tokenizer, "chat_template", None) else processor
        return owner.apply_chat_template(msgs, tokenize=False, add_generation_prompt=generation_prompt)

    folder = os.path.dirname(os.path.abspath(path))
    rows = []
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            msgs = [{"role": m["role"], "content": parts(m["content"]) if m["role"] == "user" else m["content"]}
                    for m in row["messages"]]
            if msgs[-1]["role"] != "assistant":
                raise SystemExit(f"{path} line {line_no}: the last message must be the assistant's reply")
            images = [Image.open(os.path.join(folder, p)).convert("RGB") for p in row.get("images", [])]
            tags = sum(m["content"].count("<image>") for m in row["messages"] if m["role"] == "user")
            if tags != len(images):
                raise SystemExit(f"{path} line {line_no}: {tags} <image> tags but {len(images)} images")
            full = render(msgs, False)
            prompt = render(msgs[:-1], True)
            if not full.startswith(prompt):
                raise SystemExit(f"{path} line {line_no}: the rendered prompt is not a prefix of the conversation")
            enc = processor(text=[full], images=images or None, return_tensors="pt")
            enc_prompt = processor(text=[prompt], images=images or None, return_tensors="pt")
            ids = enc["input_ids"][0]
            labels = ids.clone()
            labels[: enc_prompt["input_ids"].shape[1]] = -100
            labels[ids == image_token_id] = -100
            item = {"input_ids": ids, "labels": labels}
            for k in ("pixel_values", "image_grid_thw"):
                if k in enc:
                    item[k] = enc[k]
            mm = enc.get("mm_token_type_ids")
            item["mm_token_type_ids"] = mm[0] if mm is not None else (ids == image_token_id).long()
            rows.append(item)
    if not rows:
        raise SystemExit(f"{path} has no rows")
    return rows


def collate(items, pad_id):
    import torch

    width = max(len(i["input_ids"]) for i in items)

    def pad(key, value):
        return torch.stack([torch.cat([i[key], torch.full((width - len(i[key]),), value, dtype=i[key].dtype)])
                            for i in items])

    batch = {"input_ids": pad("input_ids", pad_id), "labels": pad("labels", -100),
             "mm_token_type_ids": pad("mm_token_type_ids", 0),
             "attention_mask": torch.stack([torch.cat([torch.ones(len(i["input_ids"]), dtype=torch.long),
                                                       torch.zeros(width - len(i["input_ids"]), dtype=torch.long)])
                                            for i in items])}
    with_images = [i for i in items if "pixel_values" in i]
    if with_images:
        batch["pixel_values"] = torch.cat([i["pixel_values"] for i in with_images])
        batch["image_grid_thw"] = torch.cat([i["image_grid_thw"] for i in with_images])
    return batch


def main():
    args = parse()
    import torch
    import transformers
    import peft
    from peft import LoraConfig, get_peft_model

    if not torch.cuda.is_available():
        raise SystemExit("vl_sft_reference.py needs a CUDA GPU")
    dev = torch.device("cuda")
    torch.manual_seed(args.seed)
    torch.cuda.reset_peak_memory_stats()

    processor, processor_how = load_processor(args.model)
    tokenizer = processor.tokenizer
    cfg = transformers.AutoConfig.from_pretrained(args.model)
    image_token_id = cfg.image_token_id
    if tokenizer.convert_tokens_to_ids("<|image_pad|>") != image_token_id:
        raise SystemExit(f"the tokenizer's <|image_pad|> is not config.json's image_token_id {image_token_id}")
    t0 = time.perf_counter()
    rows = encode_rows(args.dataset, processor, tokenizer, image_token_id)
    encode_s = time.perf_counter() - t0
    total = args.warmup + args.steps
    if len(rows) < total * args.batch:
        print(f"note: {len(rows)} rows for {total} steps of {args.batch}: rows repeat", file=sys.stderr)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    batches = []
    for s in range(total):
        items = [rows[(s * args.batch + k) % len(rows)] for k in range(args.batch)]
        batches.append({k: v.to(dev) for k, v in collate(items, pad_id).items()})

    model = transformers.Qwen2VLForConditionalGeneration.from_pretrained(args.model, dtype=torch.bfloat16,
                                                                         attn_implementation=args.attn)
    model.to(dev)
    model.config.use_cache = False
    sig = inspect.signature(model.forward).parameters
    if "mm_token_type_ids" not in sig and not any(v.kind == v.VAR_KEYWORD for v in sig.values()):
        for b in batches:  # a transformers whose forward does not take the processor's token types
            b.pop("mm_token_type_ids", None)
    checkpointing = not args.no_gradient_checkpointing
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    lcfg = LoraConfig(task_type="CAUSAL_LM", r=args.lora_rank, lora_alpha=args.lora_alpha,
                      lora_dropout=args.lora_dropout, target_modules=args.target_regex, bias="none")
    model = get_peft_model(model, lcfg)
    adapted = sorted({n.rsplit(".lora_A", 1)[0] for n, _ in model.named_parameters() if ".lora_A." in n})
    if not adapted or any(".visual." in n for n in adapted):
        raise SystemExit(f"LoRA targets: {len(adapted)} modules, vision tower among them: {adapted[:3]}")
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=args.weight_decay)

    losses = []

    def step(i):
        loss = model(**batches[i], use_cache=False).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.detach())

    for i in range(args.warmup):
        step(i)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    step_ends = []
    for i in range(args.warmup, total):
        step(i)
        torch.cuda.synchronize()  # one sync per step (Osprey's logging_steps 1 reads the loss each step too)
        step_ends.append(time.perf_counter())
    wall = step_ends[-1] - t0
    step_s = [b - a for a, b in zip([t0] + step_ends[:-1], step_ends)]

    timed_tokens = sum(int(batches[i]["attention_mask"].sum()) for i in range(args.warmup, total))
    labelled = sum(int((batches[i]["labels"] != -100).sum()) for i in range(args.warmup, total))
    gib = float(1 << 30)
    loss_vals = [float(x.float().item()) for x in losses]
    result = {
        "framework": "transformers+peft",
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__},
        "gpu": torch.cuda.get_device_name(0), "model": os.path.abspath(args.model), "dataset": os.path.abspath(args.dataset),
        "processor": processor_how, "attn_implementation": args.attn, "gradient_checkpointing": checkpointing,
        "lora": {"r": args.lora_rank, "alpha": args.lora_alpha, "dropout": args.lora_dropout,
                 "target_modules": args.target_regex, "modules": len(adapted),
                 "trainable_dtypes": sorted({str(p.dtype) for p in params})},
        "n_params_trainable": sum(p.numel() for p in params),
        "rows": len(rows), "tokens_per_row": sorted({len(r["input_ids"]) for r in rows}),
        "image_tokens_per_row": sorted({int((r["input_ids"] == image_token_id).sum()) for r in rows}),
        "labelled_tokens_per_row": sorted({int((r["labels"] != -100).sum()) for r in rows}),
        "encode_seconds": round(encode_s, 2),
        "batch": args.batch, "warmup_steps": args.warmup, "timed_steps": args.steps,
        "tokens_per_step": timed_tokens / args.steps, "labelled_tokens_per_step": labelled / args.steps,
        "ms_per_step": round(wall * 1000 / args.steps, 2),
        "ms_per_step_median": round(statistics.median(step_s) * 1000, 2),
        "tokens_per_s": round(timed_tokens / wall, 1),
        "peak_mem_allocated_gib": round(torch.cuda.max_memory_allocated() / gib, 3),
        "peak_mem_reserved_gib": round(torch.cuda.max_memory_reserved() / gib, 3),
        "loss_first": loss_vals[0], "loss_last": loss_vals[-1], "losses": [round(x, 5) for x in loss_vals],
    }
    line = json.dumps(result)
    print(line)
    if args.out:
        with open(args.out + ".tmp", "w") as f:
            f.write(line + "\n")
        os.replace(args.out + ".tmp", args.out)
    if any(x != x for x in loss_vals):
        print("warning: NaN loss", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
