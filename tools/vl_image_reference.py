#!/usr/bin/env python3
"""Reference for Osprey's image preprocessing (issue 22), run with Debian's /usr/bin/python3 (python3-pil, python3-numpy).

It implements transformers' Qwen2VLImageProcessor (PIL backend) as published: convert_to_rgb (PIL's convert("RGB"),
which drops alpha and keeps the stored colours; transformers 5.17's processor output on a transparent PNG shows it),
smart_resize, PIL Image.resize(BICUBIC), rescale by 1/255 to float32, normalise
with OPENAI_CLIP_MEAN/STD, repeat the frame temporal_patch_size times, and flatten patches with the processor's
reshape/transpose. No Osprey code is involved.

    vl_image_reference.py draw DIR
        draws the test images into DIR (PNG RGB/L/RGBA/P, JPEG 4:4:4 and 4:2:0, GIF with two frames, lossless WebP)
    vl_image_reference.py process --min_pixels N --max_pixels N --out PREFIX FILE...
        writes PREFIX.bin (float32 pixel_values of every FILE, concatenated) and PREFIX.json
        ([{"file", "grid_thw", "rows", "resized_hw"}])
"""
import argparse
import json
import math
import os
import sys

import numpy as np
from PIL import Image, ImageDraw

MEAN = [0.48145466, 0.4578275, 0.40821073]
STD = [0.26862954, 0.26130258, 0.27577711]


def picture(w, h, seed):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    arr = np.stack([(x * 255 // max(w - 1, 1)), (y * 255 // max(h - 1, 1)), ((x * 3 + y * 5) % 256)], -1)
    arr = np.clip(arr + rng.integers(-25, 26, arr.shape), 0, 255).astype(np.uint8)
    im = Image.fromarray(arr, "RGB")
    d = ImageDraw.Draw(im)
    d.rectangle([w // 6, h // 5, w // 2, h // 2], fill=(240, 20, 60))
    d.ellipse([w // 3, h // 3, w - 4, h - 4], outline=(5, 5, 5), width=3)
    d.line([0, h - 1, w - 1, 0], fill=(255, 255, 255), width=2)
    return im


def draw(folder):
    os.makedirs(folder, exist_ok=True)
    picture(300, 200, 1).save(os.path.join(folder, "rgb_300x200.png"))
    picture(45, 333, 2).save(os.path.join(folder, "tall_45x333.png"))
    picture(31, 29, 3).save(os.path.join(folder, "tiny_31x29.png"))
    picture(640, 480, 4).save(os.path.join(folder, "photo_640x480.jpg"), quality=90, subsampling=0)
    picture(257, 181, 5).save(os.path.join(folder, "chroma_257x181.jpg"), quality=80, subsampling=2)
    picture(120, 90, 6).convert("L").save(os.path.join(folder, "gray_120x90.png"))
    rgba = picture(150, 100, 7).convert("RGBA")
    rgba.putalpha(Image.fromarray(np.tile(np.linspace(0, 255, 150).astype(np.uint8), (100, 1)), "L"))
    rgba.save(os.path.join(folder, "alpha_150x100.png"))
    picture(99, 77, 8).quantize(64).save(os.path.join(folder, "palette_99x77.png"))
    f1, f2 = picture(80, 60, 9).quantize(32), picture(80, 60, 10).quantize(32)
    f1.save(os.path.join(folder, "anim_80x60.gif"), save_all=True, append_images=[f2], duration=100, loop=0)
    picture(96, 130, 11).save(os.path.join(folder, "lossless_96x130.webp"), lossless=True)


def convert_to_rgb(im):
    # transformers.image_transforms.convert_to_rgb: no compositing, the alpha channel is simply discarded.
    return im if im.mode == "RGB" else im.convert("RGB")


def smart_resize(h, w, factor, min_pixels, max_pixels):
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


def process(path, min_pixels, max_pixels, patch=14, temporal=2, merge=2):
    im = convert_to_rgb(Image.open(path))
    h, w = smart_resize(im.height, im.width, patch * merge, min_pixels, max_pixels)
    im = im.resize((w, h), Image.BICUBIC)
    x = (np.asarray(im).astype(np.float64) * (1 / 255)).astype(np.float32)
    x = (x - np.array(MEAN, dtype=np.float32)) / np.array(STD, dtype=np.float32)
    x = x.transpose(2, 0, 1)  # C, H, W
    patches = np.repeat(x[None, None], temporal, axis=1)  # 1, T, C, H, W
    gt, gh, gw = 1, h // patch, w // patch
    patches = patches.reshape(1, gt, temporal, 3, gh // merge, merge, patch, gw // merge, merge, patch)
    patches = patches.transpose(0, 1, 4, 7, 5, 8, 3, 2, 6, 9)
    flat = patches.reshape(gt * gh * gw, 3 * temporal * patch * patch).astype(np.float32)
    return flat, [gt, gh, gw], [h, w]


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("draw")
    d.add_argument("dir")
    p = sub.add_parser("process")
    p.add_argument("--min_pixels", type=int, required=True)
    p.add_argument("--max_pixels", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("files", nargs="+")
    a = ap.parse_args()
    if a.cmd == "draw":
        draw(a.dir)
        return 0
    meta = []
    with open(a.out + ".bin", "wb") as f:
        for path in a.files:
            flat, grid, hw = process(path, a.min_pixels, a.max_pixels)
            f.write(flat.tobytes())
            meta.append({"file": os.path.basename(path), "grid_thw": grid, "rows": flat.shape[0], "resized_hw": hw})
    with open(a.out + ".json", "w") as f:
        json.dump(meta, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
