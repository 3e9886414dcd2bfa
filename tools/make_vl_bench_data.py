#!/usr/bin/env python3
"""Rows and pictures for the vision-language benchmark (issue 22, tools/vl_bench.sh): ms-swift multimodal rows whose
every row holds one 448x448 and one 1024x768 PNG, drawn here with NumPy and Pillow, and a request file for the serving
benchmark.

    python3 tools/make_vl_bench_data.py --out /tmp/vlb-data --rows 48

Writes, under --out:
  images/r{i}_a.png (448x448) and images/r{i}_b.png (1024x768): one pair per row, each drawn from its own seed
      (gradients, noise, rectangles and ellipses), so no two rows share a picture and a frozen tower's feature cache
      (Osprey's) cannot serve a later step from an earlier one: both stacks run the tower on every image.
  train.jsonl: {"messages": [user "<image><image>" + QUESTION, assistant ANSWER], "images": [a, b]} per row, paths
      relative to the file (as ms-swift reads them). Every row has the same text, so every row encodes to the same
      number of tokens in any tokenizer: a batch of 4 has no padding and tokens per step are the same in both stacks
      whatever order each one draws the rows in.
  meta.json: sizes, the text, the row count.

Runs on Debian's /usr/bin/python3 (python3-pil, python3-numpy) or any Python with Pillow and NumPy. No network.
"""
import argparse
import json
import os

import numpy as np
from PIL import Image, ImageDraw

QUESTION = "Describe the two pictures: their colours, the shapes in them and how they differ."
ANSWER = ("The first picture is a square canvas with a soft colour gradient, a few filled rectangles and outlined "
          "ellipses. The second is a wider landscape picture in other colours, with more shapes and finer noise. "
          "Both are abstract drawings without text.")
SIZES = [(448, 448), (1024, 768)]  # (width, height)


def picture(width, height, seed):
    """A deterministic abstract picture: two-axis gradient in seed-chosen colours, pixel noise, and shapes."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    c0, c1, c2 = rng.integers(0, 256, (3, 3)).astype(np.float32)
    fx, fy = x / max(width - 1, 1), y / max(height - 1, 1)
    arr = c0 * (1 - fx)[..., None] * (1 - fy)[..., None] + c1 * fx[..., None] + c2 * fy[..., None] * (1 - fx)[..., None]
    arr += rng.normal(0, 12, arr.shape)
    im = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(im)
    for _ in range(int(rng.integers(4, 9))):
        x1, y1 = int(rng.integers(0, width - 40)), int(rng.integers(0, height - 40))
        x2, y2 = x1 + int(rng.integers(20, width // 3)), y1 + int(rng.integers(20, height // 3))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            draw.rectangle([x1, y1, x2, y2], fill=colour)
        else:
            draw.ellipse([x1, y1, x2, y2], outline=colour, width=int(rng.integers(2, 6)))
    return im


def save_png(im, path):
    tmp = path + ".tmp"
    im.save(tmp, format="PNG")
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--rows", type=int, default=48, help="rows (each with its own two pictures)")
    ap.add_argument("--seed", type=int, default=22)
    args = ap.parse_args()
    if args.rows < 1:
        ap.error("--rows must be at least 1")
    images = os.path.join(args.out, "images")
    os.makedirs(images, exist_ok=True)
    rows = []
    for i in range(args.rows):
        names = []
        for k, (w, h) in enumerate(SIZES):
            name = f"r{i}_{'ab'[k]}.png"
            path = os.path.join(images, name)
            if not os.path.exists(path):
                save_png(picture(w, h, args.seed * 100003 + i * 2 + k), path)
            names.append("images/" + name)
        rows.append({"messages": [{"role": "user", "content": "<image><image>" + QUESTION},
                                  {"role": "assistant", "content": ANSWER}], "images": names})
    train = os.path.join(args.out, "train.jsonl")
    with open(train + ".tmp", "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    os.replace(train + ".tmp", train)
    meta = {"rows": args.rows, "sizes_wh": SIZES, "question": QUESTION, "answer": ANSWER, "seed": args.seed}
    with open(os.path.join(args.out, "meta.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=1)
    print(f"wrote {args.rows} rows ({2 * args.rows} PNGs) to {args.out}")


if __name__ == "__main__":
    main()
