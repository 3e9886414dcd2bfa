#!/usr/bin/env python3
"""Seeded tiny random Qwen2-VL and Qwen2.5-VL models and the transformers references Osprey's vision-language
parity tests compare against (issue 22).

Run on the GPU machine (CPU only, well under a minute, no network), from the repository root:
    python3 tools/make_vl_fixtures.py --out /work/vl-fixtures
then copy the folder to tests/fixtures/vl/.

What it writes (everything small: the script prints the total, which must stay under 2 MB):
  images/            test images the script draws itself (PNG RGB, PNG grayscale, PNG RGBA, JPEG 4:4:4 and 4:2:0,
                     several sizes and aspect ratios, upscaled and downscaled), preprocessor_config.json as the
                     image processor saves it, and pixels.safetensors: per image "<file>.pixel_values" (float32, the
                     PIL-backend image processor's output), "<file>.image_grid_thw" (int64) and "<file>.resized"
                     (uint8 HxWx3: PIL's convert-to-RGB + BICUBIC resize to the smart_resize size, a cross-check
                     for the resampler alone). images.json lists file, size, mode, min/max pixels and the class.
  qwen2_vl/, qwen2_5_vl/
                     config.json, generation_config.json, model.safetensors (save_pretrained), tokenizer files
                     (the char-level BPE of tests/fixtures/parity/qwen2 plus the four vision special tokens),
                     golden.safetensors: per case "<case>.input_ids" (1, L), "<case>.position_ids" (what the
                     language model received: 3 or 4 rows x 1 x L), "<case>.logits" (1, L, V) float32,
                     "<case>.image_embeds" (tokens x hidden: the vision tower + merger output; absent for text-only),
                     and golden.json: cases (name, images, prompt text, input_ids, image_grid_thw, greedy new ids),
                     state-dict names/shapes, versions.

The prompt of each case is written with ONE <|image_pad|> per image, expanded here to t*h*w/merge^2 copies as
Qwen2VLProcessor does (the published rule); the expanded ids are what the model sees and what golden.json records.
"""
import argparse
import io
import json
import os
import sys

import numpy as np
import torch
import transformers
from PIL import Image, ImageDraw
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASE_TOKENIZER = os.path.join(ROOT, "tests", "fixtures", "parity", "qwen2", "tokenizer.json")
VISION_TOKENS = ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]  # ids 256..259
VOCAB = 264
MIN_PIXELS = 28 * 28 * 2
MAX_PIXELS = 28 * 28 * 8
MAX_NEW = 8

CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}"
    "{{ '<|vision_start|><|image_pad|><|vision_end|>' }}{% elif part['type'] == 'text' %}{{ part['text'] }}"
    "{% endif %}{% endfor %}{% endif %}{{ '<|im_end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def draw_images(folder):
    """Deterministic pictures with gradients, edges and text-like strokes, so that a wrong resampler, channel order
    or patch order shows up. Returns [(file, PIL image as saved and reloaded)]."""
    rng = np.random.default_rng(5)

    def base(w, h):
        y, x = np.mgrid[0:h, 0:w]
        r = (x * 255 // max(w - 1, 1)).astype(np.uint8)
        g = (y * 255 // max(h - 1, 1)).astype(np.uint8)
        b = ((x + y) * 7 % 256).astype(np.uint8)
        arr = np.stack([r, g, b], -1)
        arr = np.clip(arr.astype(np.int16) + rng.integers(-20, 21, arr.shape), 0, 255).astype(np.uint8)
        im = Image.fromarray(arr, "RGB")
        d = ImageDraw.Draw(im)
        d.rectangle([w // 5, h // 4, w // 2, h // 2], fill=(250, 30, 40))
        d.ellipse([w // 2, h // 3, w - 3, h - 3], outline=(10, 10, 10), width=2)
        d.line([0, h - 1, w - 1, 0], fill=(255, 255, 255), width=1)
        return im

    specs = [
        ("wide.png", 220, 80, "RGB", "PNG", {}),            # 2.75:1, downscaled
        ("tall.jpg", 60, 150, "RGB", "JPEG", {"quality": 92, "subsampling": 0}),  # 1:2.5, 4:4:4
        ("small_gray.png", 40, 30, "L", "PNG", {}),         # below min_pixels: upscaled
        ("mid.jpg", 130, 90, "RGB", "JPEG", {"quality": 85}),  # 4:2:0 chroma
        ("alpha.png", 70, 64, "RGBA", "PNG", {}),           # transparency: convert-to-RGB rule
        ("exact.png", 56, 84, "RGB", "PNG", {}),            # already a multiple of 28: no resize
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


def image_processor_class():
    # transformers 5 has a PIL backend next to the torchvision one; the PIL one is the published algorithm.
    for cls_name in ["Qwen2VLImageProcessorPil", "Qwen2VLImageProcessor"]:
        cls = getattr(transformers, cls_name, None)
        if cls is not None:
            return cls
    raise SystemExit("no Qwen2-VL image processor in this transformers")


def smart_resize(h, w, factor=28, min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS):
    import math
    hb = round(h / factor) * factor
    wb = round(w / factor) * factor
    if hb * wb > max_pixels:
        beta = math.sqrt((h * w) / max_pixels)
        hb = max(factor, math.floor(h / beta / factor) * factor)
        wb = max(factor, math.floor(w / beta / factor) * factor)
    elif hb * wb < min_pixels:
        beta = math.sqrt(min_pixels / (h * w))
        hb = math.ceil(h * beta / factor) * factor
        wb = math.ceil(w * beta / factor) * factor
    return hb, wb


def make_tokenizer():
    from tokenizers import AddedToken, Tokenizer
    tok = Tokenizer.from_file(BASE_TOKENIZER)
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in VISION_TOKENS])
    ids = [tok.token_to_id(t) for t in VISION_TOKENS]
    if ids != [256, 257, 258, 259]:
        raise SystemExit(f"vision tokens got ids {ids}, expected 256..259")
    return tok


def families():
    text = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, max_position_embeddings=512, rms_norm_eps=1e-6, initializer_range=0.2,
                hidden_act="silu", bos_token_id=1, eos_token_id=2, pad_token_id=0,
                # head_dim 16: the rotary half (8) splits into t/h/w sections 2+3+3.
                rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [2, 3, 3]})
    ids = dict(image_token_id=258, video_token_id=259, vision_start_token_id=256, vision_end_token_id=257)
    return {
        "qwen2_vl": ("Qwen2VLConfig", "Qwen2VLForConditionalGeneration", dict(
            ids, text_config=dict(text, tie_word_embeddings=True), tie_word_embeddings=True,
            vision_config=dict(depth=2, embed_dim=32, hidden_size=64, hidden_act="quick_gelu", mlp_ratio=2,
                               num_heads=4, in_channels=3, patch_size=14, spatial_merge_size=2,
                               temporal_patch_size=2, initializer_range=0.05))),
        "qwen2_5_vl": ("Qwen2_5_VLConfig", "Qwen2_5_VLForConditionalGeneration", dict(
            ids, text_config=dict(text, tie_word_embeddings=False), tie_word_embeddings=False,
            # window_size 56 px = 2x2 merged units, so the 4x6-patch image is split into windows; block 1 is full.
            vision_config=dict(depth=2, hidden_size=32, out_hidden_size=64, intermediate_size=48, hidden_act="silu",
                               num_heads=4, in_channels=3, patch_size=14, spatial_merge_size=2,
                               temporal_patch_size=2, tokens_per_second=2, window_size=56,
                               fullatt_block_indexes=[1], initializer_range=0.05))),
    }


CASES = [
    # name, images, user text ({img} marks where an image goes)
    ("one_image", ["wide.png"], "{img}What is this?"),
    ("two_images", ["tall.jpg", "small_gray.png"], "Compare {img} and {img} please."),
    ("window", ["mid.jpg"], "{img}Describe the colours."),
    ("alpha_exact", ["alpha.png", "exact.png"], "{img}{img}Which one is larger?"),
    ("text_only", [], "Hello, what can you see?"),
]


def find_visual(model):
    for path in ["model.visual", "visual"]:
        obj = model
        try:
            for p in path.split("."):
                obj = getattr(obj, p)
            return obj
        except AttributeError:
            continue
    raise SystemExit("no visual tower found")


def find_language_model(model):
    for path in ["model.language_model", "model.model", "model"]:
        obj = model
        try:
            for p in path.split("."):
                obj = getattr(obj, p)
            if hasattr(obj, "layers"):
                return obj
        except AttributeError:
            continue
    raise SystemExit("no language model found")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=4321)
    ap.add_argument("--norm_noise", type=float, default=0.1)
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    os.makedirs(args.out, exist_ok=True)

    # Images and the image processor's references.
    img_dir = os.path.join(args.out, "images")
    os.makedirs(img_dir, exist_ok=True)
    images = draw_images(img_dir)
    proc_cls = image_processor_class()
    proc = proc_cls(size={"shortest_edge": MIN_PIXELS, "longest_edge": MAX_PIXELS}, patch_size=14,
                    temporal_patch_size=2, merge_size=2)
    proc.save_pretrained(img_dir)
    pix = {}
    meta = []
    for name, im in images:
        r = proc(images=[im], return_tensors="pt")
        pv = r["pixel_values"].float().contiguous()
        thw = r["image_grid_thw"].long().contiguous()
        pix[f"{name}.pixel_values"] = pv
        pix[f"{name}.image_grid_thw"] = thw
        # convert_to_rgb is PIL's convert("RGB"): alpha is dropped, not composited (the processor's output shows it).
        rgb = im.convert("RGB")
        h, w = smart_resize(im.height, im.width)
        pix[f"{name}.resized"] = torch.from_numpy(np.asarray(rgb.resize((w, h), Image.BICUBIC)).copy())
        meta.append({"file": name, "width": im.width, "height": im.height, "mode": im.mode, "format": im.format,
                     "smart_resize_hw": [h, w], "image_grid_thw": thw[0].tolist(), "patches": pv.shape[0]})
    save_file(pix, os.path.join(img_dir, "pixels.safetensors"))
    with open(os.path.join(img_dir, "images.json"), "w") as f:
        json.dump({"processor_class": proc_cls.__name__, "min_pixels": MIN_PIXELS, "max_pixels": MAX_PIXELS,
                   "transformers": transformers.__version__, "images": meta}, f, indent=1)
    print("images:", [(m["file"], m["image_grid_thw"]) for m in meta], "processor", proc_cls.__name__, flush=True)

    tok = make_tokenizer()
    for fam, (cfg_name, model_name, kw) in families().items():
        out = os.path.join(args.out, fam)
        os.makedirs(out, exist_ok=True)
        torch.manual_seed(args.seed)
        cfg = getattr(transformers, cfg_name)(**kw)
        model = getattr(transformers, model_name)._from_config(cfg, attn_implementation="eager")
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
        fast.save_pretrained(out)
        proc.save_pretrained(out)

        captured = {}
        lm = find_language_model(model)

        def pre_hook(_mod, _args, kwargs):
            if "position_ids" not in captured and kwargs.get("position_ids") is not None:
                captured["position_ids"] = kwargs["position_ids"].detach().clone()

        def visual_hook(_mod, _inp, output):
            # The tower's final output (after Qwen2.5-VL's window order is undone); transformers 5 may wrap it.
            t = output
            if not torch.is_tensor(t):
                t = getattr(output, "pooler_output", None)
                if t is None:
                    t = output[0]
            captured.setdefault("image_embeds", t.detach().clone())

        h1 = lm.register_forward_pre_hook(pre_hook, with_kwargs=True)
        h2 = find_visual(model).register_forward_hook(visual_hook)
        golden_t = {}
        cases = []
        for case, files, text in CASES:
            captured.clear()
            pvs = [pix[f"{f}.pixel_values"] for f in files]
            thws = [pix[f"{f}.image_grid_thw"] for f in files]
            prompt = text
            for thw in thws:
                n = int(thw.prod().item()) // 4
                prompt = prompt.replace("{img}", "<|vision_start|>" + "<|image_pad|>" * n + "<|vision_end|>", 1)
            prompt = "<|im_start|>user\n" + prompt + "<|im_end|>\n<|im_start|>assistant\n"
            ids = tok.encode(prompt, add_special_tokens=False).ids
            input_ids = torch.tensor([ids])
            mask = torch.ones_like(input_ids)
            kw_img = {}
            if files:
                # transformers 5.17 wants the processor's mm_token_type_ids: 1 at image placeholders, 2 at video ones.
                mm = (input_ids == 258).long() + 2 * (input_ids == 259).long()
                kw_img = dict(pixel_values=torch.cat(pvs), image_grid_thw=torch.cat(thws), mm_token_type_ids=mm)
            out_fw = model(input_ids=input_ids, attention_mask=mask, **kw_img)
            golden_t[f"{case}.input_ids"] = input_ids.contiguous()
            golden_t[f"{case}.logits"] = out_fw.logits.float().contiguous()
            if "position_ids" in captured:
                golden_t[f"{case}.position_ids"] = captured["position_ids"].long().contiguous()
            if files and "image_embeds" in captured:
                golden_t[f"{case}.image_embeds"] = captured["image_embeds"].float().contiguous()
            captured.clear()
            gen = model.generate(input_ids=input_ids, attention_mask=mask, max_new_tokens=MAX_NEW, do_sample=False,
                                 **kw_img)
            new_ids = gen[0, input_ids.shape[1]:].tolist()
            cases.append({"name": case, "images": files, "text": text, "prompt": prompt, "input_ids": ids,
                          "image_grid_thw": [t[0].tolist() for t in thws], "greedy_new_ids": new_ids})
            print(f"{fam:10s} {case:12s} L={len(ids)} |logits|max={out_fw.logits.abs().max().item():.2f} "
                  f"greedy={new_ids}", flush=True)
        h1.remove()
        h2.remove()
        save_file(golden_t, os.path.join(out, "golden.safetensors"))
        with open(os.path.join(out, "golden.json"), "w") as f:
            json.dump({"family": fam, "seed": args.seed, "transformers": transformers.__version__,
                       "torch": torch.__version__, "max_new_tokens": MAX_NEW, "cases": cases,
                       "state_dict": [[k, list(v.shape)] for k, v in model.state_dict().items()]}, f, indent=1)

    total = 0
    for dirpath, _, names in os.walk(args.out):
        for n in names:
            total += os.path.getsize(os.path.join(dirpath, n))
    print(f"total {total / 1e6:.2f} MB in {args.out}")
    if total > 2_000_000:
        print("WARNING: over 2 MB", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
