#!/usr/bin/python3
"""Draws the sample pictures of examples/datasets/vl_*.jsonl and writes those rows (VQA, captioning, OCR, grounding).

Run from the repository root with Debian's python3 (Pillow): /usr/bin/python3 tools/make_vl_samples.py
Everything is drawn from fixed coordinates and colours (no randomness, no fonts from the system: OCR text uses Pillow's
built-in bitmap font, enlarged with nearest-neighbour), so a rerun writes the same PNGs. The grounding rows' boxes
are the shapes' own drawing coordinates, in pixels of the original image (ms-swift's bbox_type "real").
"""
import json
import os

from PIL import Image, ImageDraw, ImageFont

OUT = os.path.join("examples", "datasets")
IMAGES = os.path.join(OUT, "images")
W, H = 224, 168
COLOURS = {"red": (220, 40, 40), "blue": (40, 80, 220), "green": (40, 160, 60), "yellow": (235, 200, 30)}


def canvas():
    return Image.new("RGB", (W, H), (255, 255, 255))


def shape(draw, kind, colour, box):
    fill = COLOURS[colour]
    if kind == "circle":
        draw.ellipse(box, fill=fill)
    elif kind == "square":
        draw.rectangle(box, fill=fill)
    else:  # triangle pointing up inside the box
        x1, y1, x2, y2 = box
        draw.polygon([((x1 + x2) // 2, y1), (x2, y2), (x1, y2)], fill=fill)


# Scenes: (file, [(kind, colour, [x1, y1, x2, y2]), ...]).
SCENES = [
    ("shapes_1.png", [("circle", "red", [30, 40, 110, 120]), ("square", "blue", [130, 50, 200, 120])]),
    ("shapes_2.png", [("triangle", "green", [20, 20, 100, 100]), ("circle", "yellow", [120, 70, 200, 150])]),
    ("shapes_3.png", [("square", "red", [16, 90, 72, 146]), ("square", "green", [84, 90, 140, 146]), ("circle", "blue", [150, 20, 210, 80])]),
]

# OCR pictures: (file, text, background, ink).
TEXTS = [
    ("text_1.png", "OSPREY 42", (255, 255, 255), (0, 0, 0)),
    ("text_2.png", "HELLO VL", (250, 240, 200), (30, 30, 120)),
    ("text_3.png", "7 + 5 = 12", (220, 235, 255), (120, 20, 20)),
]


def save(image, name):
    path = os.path.join(IMAGES, name)
    tmp = path + ".tmp"
    image.save(tmp, format="PNG", optimize=True)
    os.replace(tmp, path)


def draw_scenes():
    for name, shapes in SCENES:
        image = canvas()
        draw = ImageDraw.Draw(image)
        for kind, colour, box in shapes:
            shape(draw, kind, colour, box)
        save(image, name)


def draw_texts():
    font = ImageFont.load_default()
    for name, text, background, ink in TEXTS:
        # 3x: the bitmap font's 6-pixel cells fit 10 characters across 224 / 3 = 74 pixels.
        small = Image.new("RGB", (W // 3 + 1, H // 3), background)
        ImageDraw.Draw(small).text((4, 22), text, fill=ink, font=font)
        save(small.resize((small.width * 3, small.height * 3), Image.NEAREST).crop((0, 0, W, H)), name)


def row(user, assistant, images, **extra):
    r = {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}], "images": images}
    r.update(extra)
    return r


def write(name, rows):
    path = os.path.join(OUT, name)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    os.replace(path + ".tmp", path)


def img(name):
    return "images/" + name


def main():
    os.makedirs(IMAGES, exist_ok=True)
    draw_scenes()
    draw_texts()
    s1, s2, s3 = (img(n) for n, _ in SCENES)
    write("vl_vqa.jsonl", [
        row("<image>What colour is the circle?", "The circle is red.", [s1]),
        row("<image>Which shape is green?", "The triangle is green.", [s2]),
        row("<image>How many squares are there?", "There are two squares, a red one and a green one.", [s3]),
        row("<image><image>Which picture has a yellow shape?", "The second picture: it has a yellow circle.", [s1, s2]),
    ])
    write("vl_caption.jsonl", [
        row("<image>Describe the picture.", "A red circle on the left and a blue square on the right, on a white background.", [s1]),
        row("<image>Describe the picture.", "A green triangle at the top left and a yellow circle at the bottom right.", [s2]),
        row("<image>Describe the picture.", "Two squares, red and green, along the bottom, and a blue circle at the top right.", [s3]),
    ])
    write("vl_ocr.jsonl", [row("<image>Read the text in the image.", text, [img(name)]) for name, text, _, _ in TEXTS])
    (_, shapes1), (_, shapes2), (_, shapes3) = SCENES
    write("vl_grounding.jsonl", [
        row("<image>Find the <ref-object> in the image.", "<bbox>", [s1],
            objects={"ref": ["red circle"], "bbox": [shapes1[0][2]]}),
        row("<image>Describe the image with boxes.", "<ref-object><bbox> and <ref-object><bbox>", [s2],
            objects={"ref": ["a green triangle", "a yellow circle"], "bbox": [shapes2[0][2], shapes2[1][2]]}),
        row("<image>Find every <ref-object>.", "<bbox><bbox>", [s3],
            objects={"ref": ["square"], "bbox": [shapes3[0][2], shapes3[1][2]]}),
        # The same box as fractions of the image (bbox_type norm1): blue circle of shapes_3.
        row("<image>Where is the <ref-object>?", "<bbox>", [s3],
            objects={"ref": ["blue circle"], "bbox": [[150 / W, 20 / H, 210 / W, 80 / H]], "bbox_type": "norm1"}),
    ])


if __name__ == "__main__":
    main()
