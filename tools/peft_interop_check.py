#!/usr/bin/env python3
"""Checks model files that Osprey wrote (a PEFT adapter, a merged model, a full fine-tune) by loading them with
transformers/PEFT and comparing their float32 logits with the logits Osprey computed. CPU or GPU; no network.

    python3 tools/peft_interop_check.py --base BASE_DIR \
        [--adapter CHECKPOINT_DIR] [--merged MERGED_DIR] [--full FULL_DIR] \
        [--logits adapter=osprey_adapter_logits.safetensors] [--logits merged=...] [--logits full=...] \
        [--logits base=...] [--device cpu|cuda] [--tol 1e-4] [--out report.json]

  --base     the base model folder (config.json + *.safetensors) the adapter was trained on
  --adapter  a PEFT adapter folder (e.g. Osprey's checkpoint-N: adapter_config.json + adapter_model.safetensors),
             loaded as PeftModel.from_pretrained(base, adapter)
  --merged   a full model folder with the adapter merged in (AutoModelForCausalLM)
  --full     a full fine-tuned model folder (AutoModelForCausalLM)
  --logits NAME=FILE   (repeatable; NAME is adapter|merged|full|base) a safetensors file Osprey wrote with
             input_ids int64 [B, T] and logits float32 [B, T, V], computed by Osprey in float32 for that model.
             A bare FILE (no NAME=) means adapter if --adapter is given, else merged, else full.
Every model is loaded in float32 with attn_implementation="eager" on --device and run on the input_ids of its
logits file (no attention mask: the rows are unpadded). Checks:
  * loading: for the adapter, the keys of adapter_model.safetensors vs the adapter keys PEFT expects
    (get_peft_model_state_dict after loading): missing/unexpected keys and any loaded tensor that differs from the
    file are errors; for merged/full, transformers' missing/unexpected/mismatched keys are errors;
  * max |delta logit| of each model vs Osprey's logits for it (fails above --tol);
  * with both --adapter and --merged: max |delta| between the two models' logits on the same input_ids (from the
    adapter's or merged's logits file, else a seeded random [2, 16] batch) (fails above --tol);
  * with --adapter: max |adapter - base| is reported (an adapter that changes nothing is flagged, not failed).
Prints a table and a JSON summary (also written to --out):
  {"ok", "tol", "device", "versions", "models": {NAME: {"path", "load_errors": [...], "load_warnings": [...]}},
   "comparisons": [{"name", "a", "b", "max_abs", "mean_abs", "argmax_agree", "shape", "ok"}], "errors": [...]}
Exit status 0 when everything passes, 1 when a comparison exceeds --tol or a load check fails, 2 on bad usage.
"""
import argparse
import json
import os
import sys

NAMES = ("adapter", "merged", "full", "base")


def parse():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True)
    ap.add_argument("--adapter")
    ap.add_argument("--merged")
    ap.add_argument("--full")
    ap.add_argument("--logits", action="append", default=[], metavar="NAME=FILE")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--seed", type=int, default=0, help="seed of the random batch used when no logits file fits")
    ap.add_argument("--out")
    args = ap.parse_args()

    def need_dir(flag, d, files):
        if d is None:
            return
        if not os.path.isdir(d):
            ap.error(f"{flag} {d}: not a folder")
        for f in files:
            if not os.path.isfile(os.path.join(d, f)):
                ap.error(f"{flag} {d}: no {f}")

    need_dir("--base", args.base, ["config.json"])
    need_dir("--adapter", args.adapter, ["adapter_config.json"])
    need_dir("--merged", args.merged, ["config.json"])
    need_dir("--full", args.full, ["config.json"])
    if args.adapter and not any(os.path.isfile(os.path.join(args.adapter, f))
                                for f in ("adapter_model.safetensors", "adapter_model.bin")):
        ap.error(f"--adapter {args.adapter}: no adapter_model.safetensors")
    default = "adapter" if args.adapter else "merged" if args.merged else "full" if args.full else "base"
    logits = {}
    for item in args.logits:
        name, sep, path = item.partition("=")
        if not sep:
            name, path = default, item
        if name not in NAMES:
            ap.error(f"--logits {item}: NAME must be one of {NAMES}")
        if name != "base" and getattr(args, name) is None:
            ap.error(f"--logits {name}=... given without --{name}")
        if not os.path.isfile(path):
            ap.error(f"--logits {item}: no such file")
        if name in logits:
            ap.error(f"--logits {name} given twice")
        logits[name] = path
    args.logits = logits
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            ap.error("--device cuda but CUDA is not available")
    return args


def read_logits_file(path):
    from safetensors.torch import load_file

    t = load_file(path)
    for k in ("input_ids", "logits"):
        if k not in t:
            raise SystemExit(f"{path}: no tensor '{k}' (has {sorted(t)})")
    ids, lg = t["input_ids"], t["logits"]
    if ids.dim() == 1:
        ids = ids.unsqueeze(0)
    if lg.dim() == 2:
        lg = lg.unsqueeze(0)
    if ids.dim() != 2 or lg.dim() != 3 or tuple(lg.shape[:2]) != tuple(ids.shape):
        raise SystemExit(f"{path}: input_ids {tuple(ids.shape)} and logits {tuple(lg.shape)} do not fit [B,T] / [B,T,V]")
    return ids.long(), lg.float()


def load_causal_lm(path, device):
    import torch
    from transformers import AutoModelForCausalLM

    model, info = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="eager",
                                                       output_loading_info=True)
    errors = []
    for kind in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs"):
        vals = list(info.get(kind) or [])
        if vals:
            errors.append(f"{kind}: {[str(v) for v in vals][:8]}{' ...' if len(vals) > 8 else ''}")
    model.to(device).eval()
    return model, errors


def load_adapter(base_path, adapter_path, device):
    """Returns (peft_model, base_model_for_reference, errors, warnings)."""
    import torch
    from peft import PeftModel, get_peft_model_state_dict

    base, errors = load_causal_lm(base_path, device)
    errors = [f"base {e}" for e in errors]
    warnings = []
    file_path = os.path.join(adapter_path, "adapter_model.safetensors")
    if os.path.isfile(file_path):
        from safetensors.torch import load_file

        file_sd = load_file(file_path)
    else:
        file_sd = torch.load(os.path.join(adapter_path, "adapter_model.bin"), map_location="cpu", weights_only=True)
        warnings.append("adapter_model.bin (pickle) instead of adapter_model.safetensors")
    model = PeftModel.from_pretrained(base, adapter_path, is_trainable=False)
    model.to(device).eval()
    expected = get_peft_model_state_dict(model)
    missing = sorted(set(expected) - set(file_sd))
    unexpected = sorted(set(file_sd) - set(expected))
    if missing:
        errors.append(f"adapter keys PEFT expects but the file lacks ({len(missing)}): {missing[:6]}")
    if unexpected:
        errors.append(f"adapter file keys PEFT does not use ({len(unexpected)}): {unexpected[:6]}")
    differ = []
    for k in sorted(set(expected) & set(file_sd)):
        a, b = expected[k].detach().float().cpu(), file_sd[k].float()
        if a.shape != b.shape:
            differ.append(f"{k}: shape {tuple(b.shape)} in file, {tuple(a.shape)} in model")
        elif not torch.equal(a, b):
            differ.append(f"{k}: max |delta| {(a - b).abs().max().item():.3g}")
    if differ:
        errors.append(f"loaded adapter tensors differ from the file ({len(differ)}): {differ[:4]}")
    dtypes = sorted({str(v.dtype) for v in file_sd.values()})
    if dtypes != ["torch.float32"]:
        warnings.append(f"adapter file dtypes {dtypes}")
    with open(os.path.join(adapter_path, "adapter_config.json")) as f:
        acfg = json.load(f)
    return model, acfg, errors, warnings


def run_logits(model, ids, device):
    import torch

    with torch.no_grad():
        return model(input_ids=ids.to(device)).logits.float().cpu()


def compare(name, a_name, a, b_name, b, tol):
    if a.shape != b.shape:
        return {"name": name, "a": a_name, "b": b_name, "max_abs": None, "mean_abs": None, "argmax_agree": None,
                "shape": [list(a.shape), list(b.shape)], "ok": False, "error": "shape mismatch"}
    d = (a - b).abs()
    finite = bool(d.isfinite().all())
    mx = d.max().item() if finite else float("inf")
    return {"name": name, "a": a_name, "b": b_name, "max_abs": mx, "mean_abs": d.mean().item() if finite else None,
            "argmax_agree": (a.argmax(-1) == b.argmax(-1)).float().mean().item(), "shape": list(a.shape),
            "ok": finite and (tol is None or mx <= tol)}


def main():
    args = parse()
    import peft
    import torch
    import transformers

    torch.manual_seed(args.seed)
    dev = torch.device(args.device)
    report = {"ok": True, "tol": args.tol, "device": args.device,
              "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                           "peft": peft.__version__}, "models": {}, "comparisons": [], "errors": []}
    files = {n: read_logits_file(p) for n, p in args.logits.items()}
    for n, (ids, lg) in files.items():
        print(f"logits[{n}]: {args.logits[n]} input_ids {tuple(ids.shape)} logits {tuple(lg.shape)}")

    # a batch for the model-vs-model comparisons
    shared_ids = None
    for n in ("adapter", "merged", "full", "base"):
        if n in files:
            shared_ids = files[n][0]
            break
    if shared_ids is None:
        from transformers import AutoConfig

        vocab = AutoConfig.from_pretrained(args.base).vocab_size
        g = torch.Generator().manual_seed(args.seed)
        shared_ids = torch.randint(0, vocab, (2, 16), generator=g)

    outputs = {}  # name -> {id(ids tensor): logits}

    def evaluate(name, model):
        res = {}
        for key, ids in (("shared", shared_ids), ("own", files[name][0] if name in files else None)):
            if ids is not None:
                res[key] = run_logits(model, ids, dev)
        outputs[name] = res

    # base alone (for the adapter-vs-base effect and an optional base logits file)
    if args.adapter or "base" in files:
        base, errs = load_causal_lm(args.base, dev)
        report["models"]["base"] = {"path": os.path.abspath(args.base), "load_errors": errs, "load_warnings": []}
        evaluate("base", base)
        del base
    if args.adapter:
        model, acfg, errs, warns = load_adapter(args.base, args.adapter, dev)
        report["models"]["adapter"] = {"path": os.path.abspath(args.adapter), "load_errors": errs,
                                       "load_warnings": warns,
                                       "adapter_config": {k: acfg.get(k) for k in (
                                           "r", "lora_alpha", "use_rslora", "use_dora", "target_modules",
                                           "modules_to_save", "base_model_name_or_path", "peft_type")}}
        evaluate("adapter", model)
        del model
    for name in ("merged", "full"):
        path = getattr(args, name)
        if path:
            model, errs = load_causal_lm(path, dev)
            report["models"][name] = {"path": os.path.abspath(path), "load_errors": errs, "load_warnings": []}
            evaluate(name, model)
            del model

    for name, info in report["models"].items():
        for e in info["load_errors"]:
            report["errors"].append(f"{name}: {e}")

    comps = report["comparisons"]
    for name, (ids, lg) in files.items():
        if name not in outputs:
            continue
        comps.append(compare(f"{name} vs osprey", f"hf:{name}", outputs[name]["own"], f"osprey:{name}", lg, args.tol))
    if "adapter" in outputs and "merged" in outputs:
        comps.append(compare("adapter vs merged", "hf:adapter", outputs["adapter"]["shared"], "hf:merged",
                             outputs["merged"]["shared"], args.tol))
    if "adapter" in outputs and "base" in outputs:
        c = compare("adapter vs base (effect)", "hf:adapter", outputs["adapter"]["shared"], "hf:base",
                    outputs["base"]["shared"], None)
        c["ok"] = True  # informational
        if c["max_abs"] is not None and c["max_abs"] == 0.0:
            c["note"] = "the adapter does not change the logits (zero lora_B?)"
        comps.append(c)
    if not comps:
        report["errors"].append("nothing compared: give --logits NAME=FILE and/or both --adapter and --merged")

    report["ok"] = not report["errors"] and all(c["ok"] for c in comps)

    header = ["comparison", "shape", "max|delta|", "mean|delta|", "argmax agree", "ok"]
    rows = [[c["name"], "x".join(str(s) for s in c["shape"]) if c["shape"] and isinstance(c["shape"][0], int)
             else str(c["shape"]), "-" if c["max_abs"] is None else f"{c['max_abs']:.3e}",
             "-" if c["mean_abs"] is None else f"{c['mean_abs']:.3e}",
             "-" if c["argmax_agree"] is None else f"{c['argmax_agree']:.4f}",
             "ok" if c["ok"] else "FAIL"] for c in comps]
    table = [header] + rows
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    print()
    for r in table:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))
    for name, info in report["models"].items():
        for w in info["load_warnings"]:
            print(f"warning: {name}: {w}")
    for e in report["errors"]:
        print(f"error: {e}")
    print(f"tol {args.tol:g}: {'PASS' if report['ok'] else 'FAIL'}")
    line = json.dumps(report)
    print(line)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1)
            f.write("\n")
    sys.exit(0 if report["ok"] else 1)


if __name__ == "__main__":
    main()
