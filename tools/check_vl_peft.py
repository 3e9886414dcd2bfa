#!/usr/bin/env python3
r"""Checks that LoRA adapters Osprey saved for vision-language models load in PEFT over transformers 5 and give Osprey's
logits. Run on the GPU machine (torch, transformers 5.x, peft, safetensors; CPU is enough, the models are tiny):

    python3 tools/check_vl_peft.py [--families qwen2_vl,qwen2_5_vl,llava_clip,llava_siglip,llava_next]
                                   [--artifacts tests/fixtures/vl_peft] [--device cpu|cuda] [--tol 1e-4] [--out report.json]

Inputs (committed; remake them with
    OSPREY_VL_PEFT_OUT=$PWD/tests/fixtures/vl_peft dotnet test Osprey.slnx --filter FullyQualifiedName~WritesTheArtifactsOfCheckVlPeft):
  tests/fixtures/vl/<family>/                 the tiny transformers 5.17 model (base)
  tests/fixtures/vl_peft/<family>/adapter/    an adapter Osprey saved (PeftAdapter.Save), q/k/v/o/gate/up/down_proj plus
                                              the Qwen towers' qkv/fc1/gate/up/down_proj, random A and B
  tests/fixtures/vl_peft/<family>/osprey.safetensors
      text.input_ids / image.input_ids        transformers' own prompts (golden.safetensors text_only / one_image)
      image.pixel_values (+ image.image_grid_thw for Qwen, image.image_sizes for LLaVA-NeXT): what Osprey fed its tower
      text.logits / image.logits              Osprey's float32 logits with the adapter merged
      base_text.logits / base_image.logits    Osprey's logits of the base model
Per family:
  * PeftModel.from_pretrained(AutoModelForImageTextToText base, adapter): the adapter keys PEFT expects
    (get_peft_model_state_dict) must equal the file's keys exactly (no missing, no unexpected), every loaded tensor must
    equal the file's, and PEFT must not warn about missing or unexpected adapter keys;
  * max |PEFT logits - Osprey logits| <= --tol on both prompts, and the base model's against Osprey's base logits;
  * the adapter must change the logits (> 1e-3), or the comparison proves nothing.
Prints one line per check and a JSON summary (also to --out). Exit 0 when all pass, 1 otherwise.
"""
import argparse
import json
import logging
import os
import sys
import warnings

FAMILIES = ["qwen2_vl", "qwen2_5_vl", "llava_clip", "llava_siglip", "llava_next"]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--artifacts", default=os.path.join(ROOT, "tests", "fixtures", "vl_peft"))
    ap.add_argument("--models", default=os.path.join(ROOT, "tests", "fixtures", "vl"))
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--out")
    args = ap.parse_args()

    import torch
    import transformers
    import peft
    from peft import PeftModel
    from peft.utils import get_peft_model_state_dict
    from safetensors.torch import load_file
    from transformers import AutoModelForImageTextToText

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    report = {"ok": True, "tol": args.tol, "device": args.device,
              "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__},
              "families": {}, "errors": []}
    print(f"torch {torch.__version__}  transformers {transformers.__version__}  peft {peft.__version__}")

    def fail(family, message):
        report["ok"] = False
        report["errors"].append(f"{family}: {message}")
        print(f"FAIL {family}: {message}")

    for family in [f for f in args.families.split(",") if f]:
        base_dir = os.path.join(args.models, family)
        adapter_dir = os.path.join(args.artifacts, family, "adapter")
        osprey = load_file(os.path.join(args.artifacts, family, "osprey.safetensors"))
        entry = report["families"][family] = {}

        def load_base():
            return AutoModelForImageTextToText.from_pretrained(
                base_dir, dtype=torch.float32, attn_implementation="eager").to(args.device).eval()

        def run(model, prompt):
            kwargs = {"input_ids": osprey[f"{prompt}.input_ids"].to(args.device)}
            if prompt == "image":
                for name in ("pixel_values", "image_grid_thw", "image_sizes"):
                    if f"image.{name}" in osprey:
                        kwargs[name] = osprey[f"image.{name}"].to(args.device)
            with torch.no_grad():
                return model(**kwargs).logits.float().cpu()

        def compare(name, ours, theirs):
            d = (ours - theirs).abs().max().item()
            entry[name] = d
            ok = d <= args.tol
            print(f"{'ok  ' if ok else 'FAIL'} {family:13s} {name:28s} max|delta| = {d:.3e}")
            if not ok:
                fail(family, f"{name}: max |delta logit| {d:.3e} > {args.tol}")

        base = load_base()
        for prompt in ("text", "image"):
            compare(f"base {prompt} vs osprey", run(base, prompt), osprey[f"base_{prompt}.logits"])

        # PEFT reports adapter keys it expected but did not find (and ones it could not place) as warnings.
        captured = []

        class Grab(logging.Handler):
            def emit(self, record):
                captured.append(record.getMessage())

        grab = Grab()
        logging.getLogger("peft").addHandler(grab)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = PeftModel.from_pretrained(base, adapter_dir).to(args.device).eval()
        logging.getLogger("peft").removeHandler(grab)
        messages = captured + [str(w.message) for w in caught]
        key_warnings = [m for m in messages if "missing" in m.lower() or "unexpected" in m.lower()]
        entry["peft_warnings"] = key_warnings
        for m in key_warnings:
            fail(family, f"PEFT warned while loading the adapter: {m[:300]}")

        stored = load_file(os.path.join(adapter_dir, "adapter_model.safetensors"))
        expected = get_peft_model_state_dict(model)
        missing = sorted(set(expected) - set(stored))
        unexpected = sorted(set(stored) - set(expected))
        entry["missing"], entry["unexpected"] = missing, unexpected
        if missing:
            fail(family, f"{len(missing)} adapter keys PEFT expects are not in the file, e.g. {missing[:3]}")
        if unexpected:
            fail(family, f"{len(unexpected)} keys of the file have no place in PEFT's model, e.g. {unexpected[:3]}")
        for key in sorted(set(stored) & set(expected)):
            if not torch.equal(expected[key].float().cpu(), stored[key].float()):
                fail(family, f"{key}: PEFT's loaded tensor differs from the file's")
                break
        print(f"{'ok  ' if not missing and not unexpected else 'FAIL'} {family:13s} adapter keys: {len(stored)} in file, "
              f"{len(expected)} expected by PEFT, {len(missing)} missing, {len(unexpected)} unexpected")

        for prompt in ("text", "image"):
            ours = run(model, prompt)
            compare(f"peft {prompt} vs osprey", ours, osprey[f"{prompt}.logits"])
            moved = (osprey[f"{prompt}.logits"] - osprey[f"base_{prompt}.logits"]).abs().max().item()
            entry[f"adapter effect {prompt}"] = moved
            if moved <= 1e-3:
                fail(family, f"the adapter changes the {prompt} logits by only {moved:.3e}; the comparison proves nothing")

    print(json.dumps(report, indent=1))
    if args.out:
        with open(args.out + ".tmp", "w") as f:
            json.dump(report, f, indent=1)
        os.replace(args.out + ".tmp", args.out)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
