#!/usr/bin/env python3
"""Writes a Qwen2-VL model with Qwen2-VL-7B-Instruct's shapes and random bf16 weights, for speed benchmarks
(issue 22, tools/vl_bench.sh). GPU machine: transformers 5, no network.

    python3 tools/make_vl_bench_model.py --tokenizer /tmp/osp/tokenizers/qwen3 --out /tmp/qwen2-vl-7b

Shapes (Qwen2-VL-7B-Instruct's config.json): language model hidden 3584, 28 layers, 28 heads, 4 KV heads,
intermediate 18944, vocab 152064, untied lm_head, M-RoPE sections [16, 24, 24] (head_dim 128), rope_theta 1e6;
vision tower depth 32, embed_dim 1280, 16 heads, mlp_ratio 4, quick_gelu, patch 14, temporal patch 2, merge 2, out
3584. --layers / --vision_depth shrink the depth (a quick check of the whole pipeline).

Tokenizer: the Qwen2.5/Qwen3 vocabulary (tokenizer.json from --tokenizer) already holds Qwen-VL's special tokens
(<|vision_start|>, <|vision_end|>, <|image_pad|>, <|video_pad|>, the box and object-ref tokens). Their ids are read
from that tokenizer.json and written into config.json (image_token_id, video_token_id, vision_start_token_id,
vision_end_token_id), so the config can never disagree with the tokenizer; after saving, transformers'
AutoTokenizer is asked for the same ids again. tokenizer_config.json is --tokenizer's without its chat_template
(Qwen3's drops list-valued content); chat_template.jinja is a Qwen2-VL-style template written here (default system
message, image parts as <|vision_start|><|image_pad|><|vision_end|>), read by both transformers and Osprey.

Image processor: transformers' Qwen2-VL image processor with Qwen2-VL's pixel limits (min 56*56 = 3136, max
28*28*16384 = 12845056), saved with save_pretrained (preprocessor_config.json, as the hub ships it).
"""
import argparse
import json
import os
import shutil

VISION_TOKENS = {"vision_start_token_id": "<|vision_start|>", "vision_end_token_id": "<|vision_end|>",
                 "image_token_id": "<|image_pad|>", "video_token_id": "<|video_pad|>"}
MIN_PIXELS, MAX_PIXELS = 3136, 12845056

# Qwen2-VL's chat format: a default system turn, image parts as the three vision markers, ChatML turns.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}"
    "{% if part['type'] == 'image' or part['type'] == 'image_url' %}{{ '<|vision_start|><|image_pad|><|vision_end|>' }}"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{{ '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def token_ids(tokenizer_json):
    with open(tokenizer_json, encoding="utf-8") as f:
        added = {t["content"]: t["id"] for t in json.load(f).get("added_tokens", [])}
    ids = {}
    for field, token in VISION_TOKENS.items():
        if token not in added:
            raise SystemExit(f"{tokenizer_json}: no added token {token}; use a Qwen2.5/Qwen3 tokenizer.json, which has "
                             "the Qwen-VL special tokens")
        ids[field] = added[token]
    for token in ("<|endoftext|>", "<|im_start|>", "<|im_end|>"):
        if token not in added:
            raise SystemExit(f"{tokenizer_json}: no added token {token}")
        ids[token] = added[token]
    return ids


def image_processor_class():
    import transformers
    # transformers 5 has a PIL backend next to the torchvision one; either writes the same preprocessor_config.json.
    for name in ("Qwen2VLImageProcessorPil", "Qwen2VLImageProcessor"):
        cls = getattr(transformers, name, None)
        if cls is not None:
            return cls
    raise SystemExit("no Qwen2-VL image processor in this transformers")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--tokenizer", required=True, help="folder with the Qwen3 tokenizer.json and tokenizer_config.json")
    ap.add_argument("--layers", type=int, default=28, help="language model layers (28 = Qwen2-VL-7B)")
    ap.add_argument("--vision_depth", type=int, default=32, help="vision blocks (32 = Qwen2-VL-7B)")
    ap.add_argument("--device", default="cuda")
    args = ap.parse_args()

    import torch
    import transformers

    tok_json = os.path.join(args.tokenizer, "tokenizer.json")
    ids = token_ids(tok_json)
    vocab = 152064
    if max(ids.values()) >= vocab:
        raise SystemExit(f"token id {max(ids.values())} is outside the vocabulary of {vocab}")
    text = dict(vocab_size=vocab, hidden_size=3584, intermediate_size=18944, num_hidden_layers=args.layers,
                num_attention_heads=28, num_key_value_heads=4, max_position_embeddings=32768, rms_norm_eps=1e-6,
                hidden_act="silu", tie_word_embeddings=False, use_sliding_window=False, sliding_window=None,
                bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"],
                rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]})
    vision = dict(depth=args.vision_depth, embed_dim=1280, hidden_size=3584, hidden_act="quick_gelu", mlp_ratio=4,
                  num_heads=16, in_channels=3, patch_size=14, spatial_merge_size=2, temporal_patch_size=2)
    cfg = transformers.Qwen2VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=False,
                                     **{k: ids[k] for k in VISION_TOKENS})
    torch.manual_seed(0)
    with torch.device(args.device):
        model = transformers.Qwen2VLForConditionalGeneration._from_config(cfg, dtype=torch.bfloat16)
    model.generation_config = transformers.GenerationConfig(bos_token_id=ids["<|endoftext|>"],
                                                            eos_token_id=ids["<|im_end|>"],
                                                            pad_token_id=ids["<|endoftext|>"])
    os.makedirs(args.out, exist_ok=True)
    model.save_pretrained(args.out)
    n = sum(p.numel() for p in model.parameters())
    del model
    torch.cuda.empty_cache()

    shutil.copyfile(tok_json, os.path.join(args.out, "tokenizer.json"))
    with open(os.path.join(args.tokenizer, "tokenizer_config.json"), encoding="utf-8") as f:
        tcfg = json.load(f)
    tcfg.pop("chat_template", None)
    with open(os.path.join(args.out, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(tcfg, f, indent=1, ensure_ascii=False)
    with open(os.path.join(args.out, "chat_template.jinja"), "w", encoding="utf-8") as f:
        f.write(CHAT_TEMPLATE)
    proc = image_processor_class()(size={"shortest_edge": MIN_PIXELS, "longest_edge": MAX_PIXELS}, patch_size=14,
                                   temporal_patch_size=2, merge_size=2)
    proc.save_pretrained(args.out)

    # The ids transformers' own tokenizer gives must be the config's.
    tok = transformers.AutoTokenizer.from_pretrained(args.out)
    for field, token in VISION_TOKENS.items():
        got = tok.convert_tokens_to_ids(token)
        if got != getattr(cfg, field):
            raise SystemExit(f"AutoTokenizer gives {token} id {got}, config.json says {field}={getattr(cfg, field)}")
    rendered = tok.apply_chat_template([{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "hi"}]}],
                                       tokenize=False, add_generation_prompt=True)
    if "<|vision_start|><|image_pad|><|vision_end|>hi" not in rendered:
        raise SystemExit(f"the chat template did not render the image part: {rendered!r}")
    # tools/vl_bench.sh reuses a folder only when this marker says every step above succeeded.
    with open(os.path.join(args.out, ".complete"), "w") as f:
        f.write("ok\n")
    print(f"wrote {args.out}: {n / 1e9:.2f}B parameters, vision tokens "
          + ", ".join(f"{k}={ids[k]}" for k in VISION_TOKENS))


if __name__ == "__main__":
    main()
