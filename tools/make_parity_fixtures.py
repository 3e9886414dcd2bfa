#!/usr/bin/env python3
"""Builds seeded tiny random models of every supported family with transformers and dumps the
reference outputs Osprey's parity tests compare against.

Run on the GPU machine (CPU is fine):
    python3 tools/make_parity_fixtures.py --out tests/fixtures/parity
Other shapes and seeds (acceptance runs, not committed):
    python3 tools/make_parity_fixtures.py --out /tmp/parity-b --seed 7 --shape b
    OSPREY_PARITY_DIR=/tmp/parity-b dotnet test ...

Per family folder: config.json, generation_config.json, model.safetensors (what save_pretrained
writes), golden.safetensors (input_ids, attention_mask, position_ids, labels, logits in float32) and
golden.json (losses, greedy generations single and batched with left padding, state-dict names/shapes).
"""
import argparse
import json
import os
import sys

import torch
import transformers
from safetensors.torch import save_file
from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig

SHAPES = {
    # hidden, intermediate, layers, heads, kv_heads, vocab
    "a": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, vocab_size=256),
    "b": dict(hidden_size=96, intermediate_size=160, num_hidden_layers=3, num_attention_heads=6,
              num_key_value_heads=3, vocab_size=320),
}


def families(shape):
    s = dict(SHAPES[shape])
    common = dict(s, max_position_embeddings=256, initializer_range=0.2, rms_norm_eps=1e-6,
                  bos_token_id=1, eos_token_id=2, pad_token_id=0)
    head = s["hidden_size"] // s["num_attention_heads"]
    return {
        # Llama 2 style: untied, biases everywhere, linear RoPE scaling.
        "llama": ("llama", dict(common, tie_word_embeddings=False, attention_bias=True, mlp_bias=True,
                                rope_theta=10000.0, rope_scaling={"rope_type": "linear", "factor": 2.0})),
        # Llama 3 style: tied, explicit head_dim != hidden/heads, llama3 RoPE scaling.
        "llama3": ("llama", dict(common, tie_word_embeddings=True, head_dim=2 * head, rope_theta=500000.0,
                                 rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                               "high_freq_factor": 4.0, "original_max_position_embeddings": 32})),
        "qwen2": ("qwen2", dict(common, tie_word_embeddings=True, rope_theta=1000000.0)),
        "qwen3": ("qwen3", dict(common, tie_word_embeddings=False, head_dim=2 * head, attention_bias=False,
                                rope_theta=1000000.0)),
        "mistral": ("mistral", dict(common, tie_word_embeddings=False, sliding_window=5, rope_theta=10000.0)),
        "phi3": ("phi3", dict(common, tie_word_embeddings=False, rope_theta=10000.0, sliding_window=None,
                              original_max_position_embeddings=256, partial_rotary_factor=0.5,
                              hidden_act="silu")),
        # Gemma scales embeddings by sqrt(hidden): a smaller init keeps greedy decoding from collapsing
        # onto one token, so the generation fixtures stay informative.
        "gemma2": ("gemma2", dict(common, initializer_range=0.05, tie_word_embeddings=True, head_dim=head, query_pre_attn_scalar=24,
                                  attn_logit_softcapping=5.0, final_logit_softcapping=3.0, sliding_window=4,
                                  hidden_activation="gelu_pytorch_tanh", rope_theta=10000.0)),
        "gemma3_text": ("gemma3_text", dict(common, initializer_range=0.05, tie_word_embeddings=True, head_dim=head,
                                            query_pre_attn_scalar=24, sliding_window=4,
                                            layer_types=["sliding_attention", "full_attention"]
                                            + ["sliding_attention"] * (s["num_hidden_layers"] - 2),
                                            rope_theta=1000000.0, rope_local_base_freq=10000.0,
                                            rope_scaling={"rope_type": "linear", "factor": 8.0},
                                            final_logit_softcapping=None, attn_logit_softcapping=None,
                                            hidden_activation="gelu_pytorch_tanh")),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--shape", default="a", choices=sorted(SHAPES))
    ap.add_argument("--norm_noise", type=float, default=0.1)
    ap.add_argument("--only", default=None, help="comma-separated family names")
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    fams = families(args.shape)
    names = args.only.split(",") if args.only else list(fams)
    for name in names:
        model_type, kw = fams[name]
        out = os.path.join(args.out, name)
        os.makedirs(out, exist_ok=True)
        torch.manual_seed(args.seed)
        cfg = AutoConfig.for_model(model_type, **kw)
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32, attn_implementation="eager")
        model.eval()
        # Norm weights start at 1 (or 0 for Gemma's 1+w norms) and biases at 0: perturb every 1-D
        # parameter so that a norm or bias applied wrongly shows up in the logits.
        pg = torch.Generator().manual_seed(args.seed + 2)
        for _, p in model.named_parameters():
            if p.dim() == 1:
                p.add_(torch.randn(p.shape, generator=pg) * args.norm_noise)
        model.generation_config = GenerationConfig(bos_token_id=1, eos_token_id=2, pad_token_id=0)
        model.save_pretrained(out)
        vocab = cfg.vocab_size
        g = torch.Generator().manual_seed(args.seed + 1)

        # Forward batch: row 0 is 12 real tokens, row 1 is left-padded by 3.
        seq, pad = 12, 3
        ids = torch.randint(3, vocab, (2, seq), generator=g)
        mask = torch.ones(2, seq, dtype=torch.long)
        ids[1, :pad] = 0
        mask[1, :pad] = 0
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        labels = ids.clone()
        labels[mask == 0] = -100
        labels[1, pad] = -100  # its logit would come from a padding position, which has no defined output
        labels[0, 4] = -100
        out_fw = model(input_ids=ids, attention_mask=mask, position_ids=pos, labels=labels)
        logits = out_fw.logits.float().contiguous()
        # Loss of row 0 alone without mask (the plain training case).
        loss0 = model(input_ids=ids[:1], labels=labels[:1]).loss.item()

        # Greedy generation: three prompts alone, then together with left padding.
        lens = [5, 9, 3]
        prompts = [torch.randint(3, vocab, (n,), generator=g).tolist() for n in lens]
        new = 24
        singles = []
        for p in prompts:
            o = model.generate(input_ids=torch.tensor([p]), attention_mask=torch.ones(1, len(p), dtype=torch.long),
                               max_new_tokens=new, do_sample=False)
            singles.append(o[0, len(p):].tolist())
        width = max(lens)
        bids = torch.zeros(len(prompts), width, dtype=torch.long)
        bmask = torch.zeros(len(prompts), width, dtype=torch.long)
        for i, p in enumerate(prompts):
            bids[i, width - len(p):] = torch.tensor(p)
            bmask[i, width - len(p):] = 1
        ob = model.generate(input_ids=bids, attention_mask=bmask, max_new_tokens=new, do_sample=False)
        batched = []
        for i in range(len(prompts)):
            toks = ob[i, width:].tolist()
            if 2 in toks:  # finished rows are padded after eos; keep up to and including eos
                toks = toks[: toks.index(2) + 1]
            batched.append(toks)

        save_file({"input_ids": ids.contiguous(), "attention_mask": mask.contiguous(),
                   "position_ids": pos.contiguous(), "labels": labels.contiguous(), "logits": logits},
                  os.path.join(out, "golden.safetensors"))
        golden = {
            "family": name, "model_type": model_type, "seed": args.seed, "shape": args.shape,
            "transformers": transformers.__version__, "torch": torch.__version__,
            "loss_batch": out_fw.loss.item(), "loss_row0_unmasked": loss0,
            "prompts": prompts, "max_new_tokens": new,
            "greedy_single": singles, "greedy_batched": batched,
            "state_dict": [[k, list(v.shape)] for k, v in model.state_dict().items()],
        }
        with open(os.path.join(out, "golden.json"), "w") as f:
            json.dump(golden, f, indent=1)
        print(f"{name:12s} loss={out_fw.loss.item():.5f} |logits|max={logits.abs().max().item():.2f} "
              f"single0={singles[0][:8]} batched0={batched[0][:8]}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
