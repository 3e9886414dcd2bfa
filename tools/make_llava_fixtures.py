#!/usr/bin/env python3
"""Seeded tiny random LLaVA (CLIP tower, SigLIP tower) and LLaVA-NeXT models and the transformers references Osprey's
llava / llava_next parity tests compare against (issue 22).

Run on the GPU machine (CPU only, well under a minute, no network: every config is built by hand), from the
repository root:
    python3 tools/make_llava_fixtures.py --out /work/llava-fixtures
then copy the folder's contents to tests/fixtures/vl/ (it adds llava_images/, llava_clip/, llava_siglip/, llava_next/).

What it writes (small: the script prints the total, which should stay under 2.5 MB):
  llava_images/      test images the script draws itself (PNG RGB, PNG grayscale, PNG RGBA, JPEG 4:4:4 and 4:2:0;
                     wide, tall, tiny (upscaled), square), and pixels.safetensors: per processor p in clip/siglip/next
                     and image f "<p>/<f>.pixel_values" (float32, the PIL-backend image processor's output for that
                     image alone) and for next "<p>/<f>.image_sizes" (int64 [1, 2], height and width);
                     images.json: per processor its class and per image the pixel_values shape and the number of
                     <image> tokens the processor expands one image into.
  llava_clip/        llava: llama text model + CLIP tower, vision_feature_layer -2, strategy "default".
  llava_siglip/      llava: qwen2 text model (tied embeddings) + SigLIP tower, vision_feature_layer [-3, -1]
                     (concatenated), strategy "full".
  llava_next/        llava_next: mistral text model + CLIP tower, anyres tiling over image_grid_pinpoints,
                     image_newline, unpadding.
    each with config.json, generation_config.json, model.safetensors (save_pretrained), tokenizer files (the
    char-level BPE of tests/fixtures/parity/qwen2 plus <image>), what the processor's save_pretrained writes
    (processor_config.json and/or preprocessor_config.json, chat template), image_processor/preprocessor_config.json
    (the image processor saved alone, as hub checkpoints ship it), golden.safetensors: per case "<case>.input_ids"
    (1, L) as the processor expanded them, "<case>.pixel_values" (what the model got), "<case>.image_sizes" (next),
    "<case>.logits" (1, L, V) float32, "<case>.image_embeds" (rows of the language model's input embeddings at the
    <image> positions: the projected, packed image features), "<case>.vision_hidden.<i>" (the vision tower's
    hidden_states[i], for locating a mismatch), and golden.json: cases (name, images, prompt, input_ids, greedy new
    ids), state-dict names and shapes, versions, anything that had to fall back.
"""
import argparse
import json
import os
import sys
import traceback

import numpy as np
import torch
import transformers
from PIL import Image, ImageDraw
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASE_TOKENIZER = os.path.join(ROOT, "tests", "fixtures", "parity", "qwen2", "tokenizer.json")
IMAGE_TOKEN = "<image>"
IMAGE_TOKEN_ID = 256
VOCAB = 264
MAX_NEW = 8

# Image parts render as the bare <image> token, so a message given as content parts (image, text, ...) renders exactly
# like the same message as one string with <image> where each image goes (Osprey passes parts).
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'].upper() + ': ' }}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}{{ '<image>' }}"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}{{ ' ' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
PINPOINTS = [[28, 56], [56, 28], [56, 56], [28, 84], [84, 28]]


def draw_images(folder):
    """Deterministic pictures with gradients, edges and strokes, so that a wrong resampler, crop, channel order or
    tile order shows up. Returns [(file, PIL image as saved and reloaded)]."""
    rng = np.random.default_rng(7)

    def base(w, h):
        y, x = np.mgrid[0:h, 0:w]
        r = (x * 255 // max(w - 1, 1)).astype(np.uint8)
        g = (y * 255 // max(h - 1, 1)).astype(np.uint8)
        b = ((x * 3 + y * 5) * 7 % 256).astype(np.uint8)
        arr = np.stack([r, g, b], -1)
        arr = np.clip(arr.astype(np.int16) + rng.integers(-25, 26, arr.shape), 0, 255).astype(np.uint8)
        im = Image.fromarray(arr, "RGB")
        d = ImageDraw.Draw(im)
        d.rectangle([w // 5, h // 4, w // 2, h // 2], fill=(250, 30, 40))
        d.ellipse([w // 2, h // 3, w - 2, h - 2], outline=(10, 10, 10), width=2)
        d.line([0, h - 1, w - 1, 0], fill=(255, 255, 255), width=1)
        return im

    specs = [
        ("wide.png", 220, 80, "RGB", "PNG", {}),                                  # 2.75:1
        ("tall.jpg", 60, 150, "RGB", "JPEG", {"quality": 92, "subsampling": 0}),  # 1:2.5, 4:4:4
        ("tiny_gray.png", 20, 15, "L", "PNG", {}),                                # smaller than every size: upscaled
        ("mid.jpg", 130, 90, "RGB", "JPEG", {"quality": 85}),                     # 4:2:0 chroma
        ("alpha.png", 70, 64, "RGBA", "PNG", {}),                                 # transparency: convert-to-RGB rule
        ("square.png", 42, 42, "RGB", "PNG", {}),                                 # the CLIP crop size exactly
        ("strip.png", 30, 200, "RGB", "PNG", {}),                                 # 1:6.7: next picks 84x28
    ]
    out = []
    for name, w, h, mode, fmt, kw in specs:
        im = base(w, h)
        if mode == "L":
            im = im.convert("L")
        elif mode == "RGBA":
            a = np.tile(np.linspace(0, 255, w).astype(np.uint8), (h, 1))
            im = im.convert("RGBA")
            im.putalpha(Image.fromarray(a, "L"))
        path = os.path.join(folder, name)
        im.save(path, fmt, **kw)
        out.append((name, Image.open(path)))
    return out


def cls(*names):
    # transformers 5 has a PIL backend next to the torchvision one; the PIL one is the published algorithm.
    for n in names:
        c = getattr(transformers, n, None)
        if c is not None:
            return c
    raise SystemExit(f"none of {names} in this transformers")


def image_processors():
    clip = cls("CLIPImageProcessorPil", "CLIPImageProcessor")(
        size={"shortest_edge": 46}, crop_size={"height": 42, "width": 42}, resample=3, image_mean=CLIP_MEAN,
        image_std=CLIP_STD)
    siglip = cls("SiglipImageProcessorPil", "SiglipImageProcessor")(
        size={"height": 32, "width": 32}, resample=3, image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5])
    nxt = cls("LlavaNextImageProcessorPil", "LlavaNextImageProcessor")(
        size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28}, resample=3, image_mean=CLIP_MEAN,
        image_std=CLIP_STD, image_grid_pinpoints=PINPOINTS)
    return {"clip": clip, "siglip": siglip, "next": nxt}


def make_tokenizer():
    from tokenizers import AddedToken, Tokenizer
    tok = Tokenizer.from_file(BASE_TOKENIZER)
    tok.add_special_tokens([AddedToken(IMAGE_TOKEN, special=True, normalized=False)])
    if tok.token_to_id(IMAGE_TOKEN) != IMAGE_TOKEN_ID:
        raise SystemExit(f"{IMAGE_TOKEN} got id {tok.token_to_id(IMAGE_TOKEN)}, expected {IMAGE_TOKEN_ID}")
    return tok


def text_config(model_type, tie):
    return dict(model_type=model_type, vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512, rms_norm_eps=1e-6,
                initializer_range=0.2, hidden_act="silu", bos_token_id=1, eos_token_id=2, pad_token_id=0,
                tie_word_embeddings=tie, rope_parameters={"rope_type": "default", "rope_theta": 10000.0})


def families():
    common = dict(projector_hidden_act="gelu", multimodal_projector_bias=True)
    return {
        "llava_clip": dict(
            config="LlavaConfig", model="LlavaForConditionalGeneration", processor="LlavaProcessor", images="clip",
            extra_tokens=1, patch=14, strategy="default",
            kw=dict(common, text_config=text_config("llama", False), tie_word_embeddings=False,
                    vision_feature_layer=-2, vision_feature_select_strategy="default",
                    vision_config=dict(model_type="clip_vision_model", hidden_size=32, intermediate_size=48,
                                       num_hidden_layers=3, num_attention_heads=4, image_size=42, patch_size=14,
                                       hidden_act="quick_gelu", layer_norm_eps=1e-5, projection_dim=16,
                                       initializer_range=0.05))),
        "llava_siglip": dict(
            config="LlavaConfig", model="LlavaForConditionalGeneration", processor="LlavaProcessor", images="siglip",
            extra_tokens=0, patch=8, strategy="full",
            kw=dict(common, text_config=text_config("qwen2", True), tie_word_embeddings=True,
                    vision_feature_layer=[-3, -1], vision_feature_select_strategy="full",
                    vision_config=dict(model_type="siglip_vision_model", hidden_size=32, intermediate_size=48,
                                       num_hidden_layers=3, num_attention_heads=4, image_size=32, patch_size=8,
                                       hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6))),
        "llava_next": dict(
            config="LlavaNextConfig", model="LlavaNextForConditionalGeneration", processor="LlavaNextProcessor",
            images="next", extra_tokens=1, patch=7, strategy="default",
            kw=dict(common, text_config=dict(text_config("mistral", False), sliding_window=None),
                    tie_word_embeddings=False, vision_feature_layer=-2, vision_feature_select_strategy="default",
                    image_grid_pinpoints=PINPOINTS,
                    vision_config=dict(model_type="clip_vision_model", hidden_size=32, intermediate_size=48,
                                       num_hidden_layers=3, num_attention_heads=4, image_size=28, patch_size=7,
                                       hidden_act="quick_gelu", layer_norm_eps=1e-5, projection_dim=16,
                                       initializer_range=0.05))),
    }


CASES = [
    # name, images, user text (<image> marks where an image goes)
    ("one_image", ["wide.png"], "<image>\nWhat is this?"),
    ("two_images", ["tall.jpg", "tiny_gray.png"], "Compare <image> and <image> please."),
    ("alpha_square", ["alpha.png", "square.png"], "<image><image>Which one is larger?"),
    ("mid_strip", ["mid.jpg", "strip.png"], "<image>\n<image>\nDescribe the colours."),
    ("text_only", [], "Hello, what can you see?"),
]


def find_language_model(model):
    for path in ["model.language_model", "language_model.model", "language_model"]:
        obj = model
        try:
            for p in path.split("."):
                obj = getattr(obj, p)
            if hasattr(obj, "layers"):
                return obj
        except AttributeError:
            continue
    raise SystemExit("no language model found")


def find_vision_tower(model):
    for path in ["model.vision_tower", "vision_tower"]:
        obj = model
        try:
            for p in path.split("."):
                obj = getattr(obj, p)
            return obj
        except AttributeError:
            continue
    raise SystemExit("no vision tower found")


def make_processor(spec, ip, fast, notes):
    try:
        pc = getattr(transformers, spec["processor"])
        return pc(image_processor=ip, tokenizer=fast, patch_size=spec["patch"],
                  vision_feature_select_strategy=spec["strategy"], chat_template=CHAT_TEMPLATE,
                  image_token=IMAGE_TOKEN, num_additional_image_tokens=spec["extra_tokens"])
    except Exception:  # noqa: BLE001 - recorded, the script falls back to expanding the prompt itself
        notes.append(f"{spec['processor']}: " + traceback.format_exc(limit=2))
        return None


def expected_tokens(spec, im_h, im_w):
    """Tokens one image expands into, by the published rule (a cross-check of the processor)."""
    if spec["images"] == "clip":
        return (42 // 14) ** 2 + spec["extra_tokens"] - (1 if spec["strategy"] == "default" else 0)
    if spec["images"] == "siglip":
        return (32 // 8) ** 2
    side = 28 // 7
    best, best_eff, best_waste = None, -1, None
    for h, w in PINPOINTS:
        scale = min(w / im_w, h / im_h)
        eff = min(int(im_w * scale) * int(im_h * scale), im_w * im_h)
        waste = h * w - eff
        if eff > best_eff or (eff == best_eff and waste < best_waste):
            best, best_eff, best_waste = (h, w), eff, waste
    ch, cw = side * (best[0] // 28), side * (best[1] // 28)
    if im_w / im_h > cw / ch:
        nh = int(round(im_h * (cw / im_w), 7))
        ch -= ((ch - nh) // 2) * 2
    else:
        nw = int(round(im_w * (ch / im_h), 7))
        cw -= ((cw - nw) // 2) * 2
    return ch * cw + ch + side * side + spec["extra_tokens"] - (1 if spec["strategy"] == "default" else 0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=2468)
    ap.add_argument("--norm_noise", type=float, default=0.1)
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    os.makedirs(args.out, exist_ok=True)

    img_dir = os.path.join(args.out, "llava_images")
    os.makedirs(img_dir, exist_ok=True)
    images = draw_images(img_dir)
    by_name = dict(images)
    procs = image_processors()
    pix = {}
    meta = {}
    for key, ip in procs.items():
        rows = []
        for name, im in images:
            r = ip(images=[im], return_tensors="pt")
            pv = r["pixel_values"].float().contiguous()
            pix[f"{key}/{name}.pixel_values"] = pv
            row = {"file": name, "width": im.width, "height": im.height, "mode": im.mode,
                   "pixel_values_shape": list(pv.shape)}
            if "image_sizes" in r:
                pix[f"{key}/{name}.image_sizes"] = torch.as_tensor(r["image_sizes"]).long().contiguous()
            rows.append(row)
        meta[key] = {"class": type(ip).__name__, "images": rows}
    print("image processors:", {k: v["class"] for k, v in meta.items()}, flush=True)

    tok = make_tokenizer()
    fams = families()
    notes = []
    for fam, spec in fams.items():
        out = os.path.join(args.out, fam)
        os.makedirs(out, exist_ok=True)
        torch.manual_seed(args.seed)
        cfg = getattr(transformers, spec["config"])(**spec["kw"])
        # The id's attribute name changed between releases (image_token_index -> image_token_id); set what exists.
        for attr in ("image_token_id", "image_token_index"):
            try:
                setattr(cfg, attr, IMAGE_TOKEN_ID)
            except Exception:  # noqa: BLE001
                pass
        model = getattr(transformers, spec["model"])._from_config(cfg, attn_implementation="eager")
        model = model.to(torch.float32).eval()
        # Norm weights start at 1 and biases at 0: perturb every 1-D parameter so a misplaced norm or bias shows.
        pg = torch.Generator().manual_seed(args.seed + 2)
        for _, p in model.named_parameters():
            if p.dim() == 1:
                p.add_(torch.randn(p.shape, generator=pg) * args.norm_noise)
        model.generation_config = transformers.GenerationConfig(bos_token_id=1, eos_token_id=2, pad_token_id=0)
        model.save_pretrained(out)
        fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|im_start|>",
                                                    eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                                    unk_token="<unk>")
        fast.chat_template = CHAT_TEMPLATE
        ip = procs[spec["images"]]
        processor = make_processor(spec, ip, fast, notes)
        if processor is not None:
            processor.save_pretrained(out)
        else:
            fast.save_pretrained(out)
            ip.save_pretrained(out)
        ip.save_pretrained(os.path.join(out, "image_processor"))

        # Tokens per image, by the processor and by the published rule.
        for row in meta[spec["images"]]["images"]:
            im = by_name[row["file"]]
            rule = expected_tokens(spec, im.height, im.width)
            row.setdefault("tokens", {})[fam] = rule
            if processor is not None:
                got = processor(images=[im], text=IMAGE_TOKEN, return_tensors="pt")
                n = int((got["input_ids"] == IMAGE_TOKEN_ID).sum())
                row["tokens"][fam] = n
                if n != rule:
                    notes.append(f"{fam} {row['file']}: processor expands to {n} tokens, the rule gives {rule}")

        captured = {}
        lm = find_language_model(model)

        def pre_hook(_mod, _args, kwargs):
            if "embeds" not in captured and kwargs.get("inputs_embeds") is not None:
                captured["embeds"] = kwargs["inputs_embeds"].detach().clone()

        def vision_hook(_mod, _inp, output):
            hs = getattr(output, "hidden_states", None)
            if hs is not None and "vision_hidden" not in captured:
                captured["vision_hidden"] = [h.detach().clone() for h in hs]

        h1 = lm.register_forward_pre_hook(pre_hook, with_kwargs=True)
        h2 = find_vision_tower(model).register_forward_hook(vision_hook)
        golden_t = {}
        cases = []
        for case, files, text in CASES:
            captured.clear()
            ims = [by_name[f] for f in files]
            prompt = "USER: " + text + " ASSISTANT:"
            if processor is not None:
                enc = processor(images=ims or None, text=prompt, return_tensors="pt")
                inputs = {k: v for k, v in enc.items()}
            else:
                expanded = prompt
                for im in ims:
                    n = expected_tokens(spec, im.height, im.width)
                    expanded = expanded.replace(IMAGE_TOKEN, "\0" * n, 1)
                expanded = expanded.replace("\0", IMAGE_TOKEN)
                ids = tok.encode(expanded, add_special_tokens=False).ids
                inputs = {"input_ids": torch.tensor([ids]), "attention_mask": torch.ones(1, len(ids), dtype=torch.long)}
                if ims:
                    r = ip(images=ims, return_tensors="pt")
                    inputs.update({k: v for k, v in r.items()})
            input_ids = inputs["input_ids"]
            model_in = {k: v for k, v in inputs.items() if k in ("input_ids", "attention_mask", "pixel_values",
                                                                 "image_sizes")}
            out_fw = model(**model_in)
            golden_t[f"{case}.input_ids"] = input_ids.long().contiguous()
            golden_t[f"{case}.logits"] = out_fw.logits.float().contiguous()
            if ims:
                golden_t[f"{case}.pixel_values"] = inputs["pixel_values"].float().contiguous()
                if "image_sizes" in inputs:
                    golden_t[f"{case}.image_sizes"] = torch.as_tensor(inputs["image_sizes"]).long().contiguous()
                if "embeds" in captured:
                    mask = input_ids[0] == IMAGE_TOKEN_ID
                    golden_t[f"{case}.image_embeds"] = captured["embeds"][0][mask].float().contiguous()
                for i, h in enumerate(captured.get("vision_hidden", [])):
                    golden_t[f"{case}.vision_hidden.{i}"] = h.float().contiguous()
            captured.clear()
            gen = model.generate(**model_in, max_new_tokens=MAX_NEW, do_sample=False)
            new_ids = gen[0, input_ids.shape[1]:].tolist()
            cases.append({"name": case, "images": files, "text": text, "prompt": prompt,
                          "input_ids": input_ids[0].tolist(), "greedy_new_ids": new_ids})
            print(f"{fam:12s} {case:12s} L={input_ids.shape[1]} image_tokens={int((input_ids == IMAGE_TOKEN_ID).sum())}"
                  f" |logits|max={out_fw.logits.abs().max().item():.2f} greedy={new_ids}", flush=True)
        h1.remove()
        h2.remove()
        save_file(golden_t, os.path.join(out, "golden.safetensors"))
        with open(os.path.join(out, "golden.json"), "w") as f:
            json.dump({"family": fam, "model_type": cfg.model_type, "seed": args.seed,
                       "transformers": transformers.__version__, "torch": torch.__version__,
                       "max_new_tokens": MAX_NEW, "image_token_id": IMAGE_TOKEN_ID,
                       "processor_class": type(processor).__name__ if processor is not None else None,
                       "image_processor_class": type(ip).__name__, "cases": cases,
                       "state_dict": [[k, list(v.shape)] for k, v in model.state_dict().items()]}, f, indent=1)

    save_file(pix, os.path.join(img_dir, "pixels.safetensors"))
    with open(os.path.join(img_dir, "images.json"), "w") as f:
        json.dump({"transformers": transformers.__version__, "pinpoints": PINPOINTS, "processors": meta,
                   "notes": notes}, f, indent=1)
    for n in notes:
        print("NOTE:", n, file=sys.stderr)

    total = 0
    for dirpath, _, names in os.walk(args.out):
        for n in names:
            total += os.path.getsize(os.path.join(dirpath, n))
    print(f"total {total / 1e6:.2f} MB in {args.out}")
    if total > 2_500_000:
        print("WARNING: over 2.5 MB", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
