#!/usr/bin/env python3
r"""PEFT LoRA fixtures (adapters + reference logits + a 3-step training reference) for Osprey's LoRA tests.

Built from the tiny random models in tests/fixtures/parity/<family> (vocab 256, 2 layers, hidden 64). Everything
runs on CPU in float32 with eager attention; the whole script takes well under a minute. No network.

Run on the GPU machine (torch, transformers 5.x, peft, safetensors):
    python3 tools/make_peft_fixtures.py                      # all cases
    python3 tools/make_peft_fixtures.py --only qwen2-lora,qwen2-dora
then commit tests/fixtures/peft/ (the script prints what it wrote).

Output: tests/fixtures/peft/<case>/ for every case below.

Adapter cases (the base is tests/fixtures/parity/<family>):
    qwen2-lora, llama-lora, phi3-lora, gemma2-lora, qwen3-lora
                      r=4, lora_alpha=8, target_modules="all-linear", lora_dropout=0
    qwen2-rslora      as qwen2-lora with use_rslora=True (scale alpha/sqrt(r))
    qwen2-dora        as qwen2-lora with use_dora=True; each lora_magnitude_vector is then multiplied by random
                      factors in [0.8, 1.2] so it differs from the column norms of the weight
    qwen2-qv          target_modules=["q_proj", "v_proj"], r=2, lora_alpha=16
    qwen2-regex       target_modules=r".*\.(1)\.mlp\.(up|down)_proj"  (a regex string: only layer 1's up/down)
    qwen2-save-norm   all-linear plus modules_to_save=["model.norm"] (the final RMSNorm); the trainable copy is
                      perturbed so it differs from the base norm. If this PEFT does not wrap exactly the final norm,
                      the case falls back to llama (untied lm_head) with modules_to_save=["lm_head"]; case.json says
                      which ("base" and "modules_to_save").
  For all adapter cases: torch.manual_seed(1234) right before get_peft_model with init_lora_weights=False, so
  lora_A and lora_B both keep nn.Linear's random init; then every lora_B is multiplied by 10 so the adapter visibly
  changes the logits (checked: max |adapter - base| > 0.1).
  Files per case folder:
    adapter_config.json, adapter_model.safetensors   PeftModel.save_pretrained (README.md removed); the config's
                      base_model_name_or_path is set to "tests/fixtures/parity/<family>" (relative to the repo root)
    expected.safetensors
        input_ids      int64   [2, 12]   torch.randint(4, 256) with a Generator seeded 4321
        base_logits    float32 [2, 12, 256]   the base model
        adapter_logits float32 [2, 12, 256]   PeftModel (unmerged)
        merged_logits  float32 [2, 12, 256]   model.merge_and_unload()
    PEFT's saved keys (checked with peft 0.21): base_model.model.<path>.lora_A.weight / .lora_B.weight,
    DoRA magnitude base_model.model.<path>.lora_magnitude_vector (no ".weight"), modules_to_save
    base_model.model.model.norm.weight (the trained copy, no "modules_to_save.default"); case.json lists them.
    case.json  {"case", "base": "parity/<family>", "lora": {the LoraConfig settings}, "adapter_keys": [...],
                "max_abs_adapter_vs_base", "max_abs_merged_vs_adapter", "max_abs_reloaded_vs_adapter"
                (PeftModel.from_pretrained on a fresh base vs the in-memory adapter), "torch", "transformers",
                "peft", "safetensors"}

Training-step case qwen2-train-step (base parity/qwen2, float32, CPU):
    LoRA r=4, alpha=8, all-linear, dropout 0, init_lora_weights=False after torch.manual_seed(1234), lora_B x10.
    Batch: input_ids [2, 16] = randint(4, 256) with a Generator seeded 8765; labels = input_ids with -100 on the
    first 5 positions of row 0 and the first 9 positions of row 1. Loss = transformers' causal-LM loss
    (logits[:, :-1] vs labels[:, 1:], mean over positions whose label != -100); the script checks it against a
    hand-written cross-entropy. model.train() (all dropouts are 0).
    Optimizer: torch.optim.AdamW(LoRA params only, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1,
    foreach=False); before each step torch.nn.utils.clip_grad_norm_(params, 1.0); constant lr; 3 steps on the same
    batch.
    Files:
      adapter_config.json, adapter_model.safetensors   the INITIAL adapter (saved before any update)
      train_step.safetensors
          input_ids  int64 [2, 16],  labels int64 [2, 16]
          loss_1, loss_2, loss_3            float32 scalars: the loss BEFORE the k-th update
          grad_norm_1, grad_norm_2, grad_norm_3   float32 scalars: total L2 norm returned by clip_grad_norm_
                                             (the norm before clipping)
          grad_1.<key>                      float32: each LoRA param's gradient at step 1 (before clipping)
          final.<key>                       float32: each LoRA param after the 3rd update
        where <key> is PEFT's saved key, e.g. base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight
        (exactly the keys of get_peft_model_state_dict / adapter_model.safetensors).
      case.json  {"case", "base", "lora", "optimizer": {...}, "steps", "losses", "grad_norms", "adapter_keys",
                  versions}
"""
import argparse
import json
import os
import shutil
import sys
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LORA_SEED = 1234
INPUT_SEED = 4321
TRAIN_SEED = 8765
B_SCALE = 10.0
MIN_ADAPTER_EFFECT = 0.1
MERGE_TOL = 1e-3  # float32 merge vs unmerged on these tiny models is ~1e-5; anything near 1e-3 is a bug

BASE_LORA = dict(r=4, lora_alpha=8, target_modules="all-linear", lora_dropout=0.0)

CASES = {
    "qwen2-lora": ("qwen2", dict(BASE_LORA)),
    "llama-lora": ("llama", dict(BASE_LORA)),
    "phi3-lora": ("phi3", dict(BASE_LORA)),
    "gemma2-lora": ("gemma2", dict(BASE_LORA)),
    "qwen3-lora": ("qwen3", dict(BASE_LORA)),
    "qwen2-rslora": ("qwen2", dict(BASE_LORA, use_rslora=True)),
    "qwen2-dora": ("qwen2", dict(BASE_LORA, use_dora=True)),
    "qwen2-qv": ("qwen2", dict(r=2, lora_alpha=16, target_modules=["q_proj", "v_proj"], lora_dropout=0.0)),
    "qwen2-regex": ("qwen2", dict(r=4, lora_alpha=8, target_modules=r".*\.(1)\.mlp\.(up|down)_proj",
                                  lora_dropout=0.0)),
    "qwen2-save-norm": ("qwen2", dict(BASE_LORA, modules_to_save=["model.norm"])),
}
# used when PEFT does not wrap exactly the final norm for qwen2-save-norm
SAVE_FALLBACK = ("llama", dict(BASE_LORA, modules_to_save=["lm_head"]))
TRAIN_CASE = "qwen2-train-step"
ALL_CASES = list(CASES) + [TRAIN_CASE]


def versions():
    import peft
    import safetensors
    import torch
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__,
            "safetensors": safetensors.__version__}


def load_base(parity, family):
    import torch
    from transformers import AutoModelForCausalLM

    folder = os.path.join(parity, family)
    if not os.path.isfile(os.path.join(folder, "config.json")):
        raise FileNotFoundError(f"no tiny model at {folder} (run tools/make_parity_fixtures.py first)")
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    return model


def wrapped_modules(peft_model):
    return sorted(n for n, m in peft_model.named_modules() if type(m).__name__ == "ModulesToSaveWrapper")


def make_peft(base, family, lora, rng_seed=LORA_SEED):
    """get_peft_model with init_lora_weights=False after a fixed seed, then the perturbations described above."""
    import torch
    from peft import LoraConfig, get_peft_model

    cfg = LoraConfig(task_type="CAUSAL_LM", init_lora_weights=False, bias="none", **lora)
    torch.manual_seed(rng_seed)
    model = get_peft_model(base, cfg)
    model.peft_config["default"].base_model_name_or_path = f"tests/fixtures/parity/{family}"
    g = torch.Generator().manual_seed(rng_seed + 1)
    n_b = 0
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".lora_B." in name:
                p.mul_(B_SCALE)
                n_b += 1
            elif "lora_magnitude_vector" in name:
                p.mul_(torch.rand(p.shape, generator=g) * 0.4 + 0.8)
            elif ".modules_to_save." in name:
                p.mul_(torch.rand(p.shape, generator=g) + 0.5).add_(0.05 * torch.randn(p.shape, generator=g))
    if n_b == 0:
        raise RuntimeError(f"no lora_B parameters: target_modules {lora['target_modules']!r} matched nothing")
    return model


def logits_of(model, ids):
    import torch

    with torch.no_grad():
        return model(input_ids=ids).logits.float().contiguous()


def fixed_ids(seed, shape):
    import torch

    g = torch.Generator().manual_seed(seed)
    return torch.randint(4, 256, shape, generator=g, dtype=torch.long)


def sort_target_modules(out):
    """PEFT stores target_modules as a set ("all-linear" expands to the module names) and saves it as a list in
    set order, which changes from run to run with Python's hash seed. Sort it (same JSON layout as PEFT's
    save_pretrained: indent 2, sorted keys, no trailing newline) so the fixtures are reproducible."""
    path = os.path.join(out, "adapter_config.json")
    with open(path, encoding="utf-8") as f:
        cfg = json.load(f)
    if isinstance(cfg.get("target_modules"), list):
        cfg["target_modules"] = sorted(cfg["target_modules"])
        with open(path, "w", encoding="utf-8") as f:
            f.write(json.dumps(cfg, indent=2, sort_keys=True))


def save_adapter(model, out):
    os.makedirs(out, exist_ok=True)
    model.save_pretrained(out)
    readme = os.path.join(out, "README.md")
    if os.path.exists(readme):
        os.remove(readme)
    for f in ("adapter_config.json", "adapter_model.safetensors"):
        if not os.path.isfile(os.path.join(out, f)):
            raise RuntimeError(f"save_pretrained did not write {f} in {out}")
    sort_target_modules(out)


def adapter_keys(out):
    from safetensors import safe_open

    with safe_open(os.path.join(out, "adapter_model.safetensors"), "pt") as f:
        return sorted(f.keys())


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")


def lora_json(lora):
    return {k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in lora.items()}


def build_adapter_case(name, family, lora, parity, out_root, vers):
    import torch
    from peft import PeftModel
    from safetensors.torch import save_file

    out = os.path.join(out_root, name)
    if os.path.isdir(out):
        shutil.rmtree(out)
    ids = fixed_ids(INPUT_SEED, (2, 12))
    base = load_base(parity, family)
    base_logits = logits_of(base, ids)
    model = make_peft(base, family, lora)
    model.eval()
    wrapped = wrapped_modules(model)
    if lora.get("modules_to_save"):
        want = ["base_model.model." + m for m in lora["modules_to_save"]]
        if wrapped != sorted(want):
            raise WrongModulesToSave(f"modules_to_save={lora['modules_to_save']} wrapped {wrapped}, wanted {want}")
    save_adapter(model, out)
    adapter_logits = logits_of(model, ids)

    fresh = PeftModel.from_pretrained(load_base(parity, family), out)
    fresh.eval()
    reloaded_logits = logits_of(fresh, ids)
    del fresh

    merged = model.merge_and_unload()
    merged.eval()
    merged_logits = logits_of(merged, ids)

    d_ab = (adapter_logits - base_logits).abs().max().item()
    d_ma = (merged_logits - adapter_logits).abs().max().item()
    d_ra = (reloaded_logits - adapter_logits).abs().max().item()
    if not d_ab > MIN_ADAPTER_EFFECT:
        raise RuntimeError(f"{name}: adapter barely changes the logits (max |delta| {d_ab:.3g} <= {MIN_ADAPTER_EFFECT})")
    if not d_ma < MERGE_TOL:
        raise RuntimeError(f"{name}: merged vs adapter logits differ by {d_ma:.3g}")
    if not d_ra < 1e-5:
        raise RuntimeError(f"{name}: reloaded adapter differs from the in-memory one by {d_ra:.3g}")
    save_file({"input_ids": ids.contiguous(), "base_logits": base_logits, "adapter_logits": adapter_logits,
               "merged_logits": merged_logits}, os.path.join(out, "expected.safetensors"))
    keys = adapter_keys(out)
    write_json(os.path.join(out, "case.json"), {
        "case": name, "base": f"parity/{family}", "lora": lora_json(lora), "init_lora_weights": False,
        "lora_seed": LORA_SEED, "lora_B_scale": B_SCALE, "input_seed": INPUT_SEED,
        "modules_to_save_wrapped": wrapped, "adapter_keys": keys,
        "max_abs_adapter_vs_base": d_ab, "max_abs_merged_vs_adapter": d_ma, "max_abs_reloaded_vs_adapter": d_ra,
        **vers})
    return out, [f"{family}", f"{len(keys)} keys", f"{d_ab:.4f}", f"{d_ma:.2e}", f"{d_ra:.2e}"]


class WrongModulesToSave(RuntimeError):
    pass


def hf_param_key(name):
    """Parameter name in the PeftModel -> PEFT's saved key (adapter name 'default' dropped)."""
    return name.replace(".default.", ".").replace(".default", "")


def build_train_case(parity, out_root, vers):
    import torch
    import torch.nn.functional as F
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    name, family = TRAIN_CASE, "qwen2"
    lora = dict(BASE_LORA)
    out = os.path.join(out_root, name)
    if os.path.isdir(out):
        shutil.rmtree(out)
    model = make_peft(load_base(parity, family), family, lora)
    save_adapter(model, out)  # the initial adapter
    model.train()

    ids = fixed_ids(TRAIN_SEED, (2, 16))
    labels = ids.clone()
    labels[0, :5] = -100
    labels[1, :9] = -100

    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    bad = [n for n, _ in named if "lora_" not in n]
    if bad:
        raise RuntimeError(f"trainable parameters that are not LoRA: {bad}")
    params = [p for _, p in named]
    opt_cfg = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1)
    opt = torch.optim.AdamW(params, foreach=False, **opt_cfg)

    tensors = {"input_ids": ids.contiguous(), "labels": labels.contiguous()}
    losses, norms = [], []
    for step in range(1, 4):
        opt.zero_grad(set_to_none=True)
        outp = model(input_ids=ids, labels=labels)
        loss = outp.loss
        # hand-written check of the loss definition
        lg = outp.logits[:, :-1].float().reshape(-1, outp.logits.shape[-1])
        manual = F.cross_entropy(lg, labels[:, 1:].reshape(-1), ignore_index=-100, reduction="mean")
        if abs(manual.item() - loss.item()) > 1e-5:
            raise RuntimeError(f"transformers' loss {loss.item()} != shifted mean CE {manual.item()}")
        loss.backward()
        if step == 1:
            for n, p in named:
                tensors[f"grad_1.{hf_param_key(n)}"] = p.grad.detach().float().clone().contiguous()
        gn = torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        tensors[f"loss_{step}"] = loss.detach().float().reshape(()).clone()
        tensors[f"grad_norm_{step}"] = gn.detach().float().reshape(()).clone()
        losses.append(loss.item())
        norms.append(gn.item())

    sd = get_peft_model_state_dict(model)
    mine = {hf_param_key(n) for n, _ in named}
    if set(sd) != mine:
        raise RuntimeError(f"PEFT state-dict keys differ from parameter names: {sorted(set(sd) ^ mine)[:6]}")
    for k, v in sd.items():
        tensors[f"final.{k}"] = v.detach().float().clone().contiguous()
    save_file(tensors, os.path.join(out, "train_step.safetensors"))
    keys = adapter_keys(out)
    if set(keys) != set(sd):
        raise RuntimeError("saved adapter keys differ from get_peft_model_state_dict keys")
    write_json(os.path.join(out, "case.json"), {
        "case": name, "base": f"parity/{family}", "lora": lora_json(lora), "init_lora_weights": False,
        "lora_seed": LORA_SEED, "lora_B_scale": B_SCALE, "input_seed": TRAIN_SEED,
        "labels_masked_prefix": [5, 9],
        "loss": "mean token cross-entropy, logits[:, :-1] vs labels[:, 1:], ignore_index -100",
        "optimizer": {"type": "torch.optim.AdamW", **opt_cfg, "betas": list(opt_cfg["betas"]),
                      "clip_grad_norm": 1.0, "lr_schedule": "constant", "params": "LoRA A/B only"},
        "steps": 3, "losses": losses, "grad_norms": norms, "adapter_keys": keys, **vers})
    return out, [family, f"{len(keys)} keys", "losses " + " ".join(f"{x:.5f}" for x in losses),
                 "norms " + " ".join(f"{x:.4f}" for x in norms), ""]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parity", default=os.path.join(ROOT, "tests", "fixtures", "parity"))
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "fixtures", "peft"))
    ap.add_argument("--only", default=None, help="comma-separated case names: " + ",".join(ALL_CASES))
    args = ap.parse_args()

    names = args.only.split(",") if args.only else ALL_CASES
    unknown = [n for n in names if n not in ALL_CASES]
    if unknown:
        raise SystemExit(f"unknown case(s) {unknown}; known: {ALL_CASES}")
    try:
        import torch

        torch.set_num_threads(max(1, min(8, os.cpu_count() or 1)))
        vers = versions()
    except ImportError as e:
        raise SystemExit(f"needs torch, transformers, peft and safetensors: {e}")
    torch.use_deterministic_algorithms(True)
    os.makedirs(args.out, exist_ok=True)

    rows, failed = [], False
    for name in names:
        try:
            if name == TRAIN_CASE:
                out, row = build_train_case(args.parity, args.out, vers)
            else:
                family, lora = CASES[name]
                try:
                    out, row = build_adapter_case(name, family, lora, args.parity, args.out, vers)
                except WrongModulesToSave as e:
                    print(f"{name}: {e}; falling back to {SAVE_FALLBACK[0]} with {SAVE_FALLBACK[1]['modules_to_save']}")
                    out, row = build_adapter_case(name, *SAVE_FALLBACK, args.parity, args.out, vers)
            print(f"{name}: wrote {', '.join(sorted(os.listdir(out)))} in {os.path.relpath(out, ROOT)}")
            rows.append([name] + row)
        except Exception as e:  # noqa: BLE001 - the other cases still get written
            traceback.print_exc()
            failed = True
            rows.append([name, "FAILED", f"{type(e).__name__}: {e}"[:100], "", "", ""])
    header = ["case", "base", "adapter", "max|adapter-base|", "max|merged-adapter|", "max|reloaded-adapter|"]
    table = [header] + rows
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    print()
    for r in table:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
