#!/usr/bin/env python3
"""Preference losses on a tiny model batch, computed with transformers + PEFT, for Osprey's parity test.

Policy = the tiny qwen2 parity model with the PEFT fixture adapter tests/fixtures/peft/qwen2-lora; reference = the same
model without it. For a fixed batch of 3 preference pairs (random ids, the first tokens of each row labelled -100 as a
prompt) it computes each row's summed log-probability of its labelled next tokens (logits[:, :-1] against
labels[:, 1:]) under policy and reference, and from those, in float64 with the formulas of the papers (as TRL
implements them): DPO sigmoid (beta 0.1), SimPO (beta 2, gamma 1, no NLL term), CPO (beta 0.1, alpha 1) and ORPO
(beta 0.1). KTO on the chosen rows with mismatched KL rows (row i's prompt + row i+1's response), beta 0.1.

Run on the GPU machine (CPU, float32 model, a few seconds):
    python3 tools/make_preference_model_fixtures.py --out tests/fixtures/preference/model_batch.safetensors
"""
import argparse
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM
from peft import PeftModel


def row_logps(model, ids, labels):
    with torch.no_grad():
        logits = model(input_ids=ids).logits.double()
    logp = torch.log_softmax(logits[:, :-1], -1)
    tgt = labels[:, 1:]
    mask = tgt != -100
    picked = logp.gather(-1, tgt.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (picked * mask).sum(-1), mask.sum(-1).double()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--base", default="tests/fixtures/parity/qwen2")
    ap.add_argument("--adapter", default="tests/fixtures/peft/qwen2-lora")
    a = ap.parse_args()
    torch.manual_seed(77)
    base = AutoModelForCausalLM.from_pretrained(a.base, dtype=torch.float32, attn_implementation="eager").eval()
    ref = AutoModelForCausalLM.from_pretrained(a.base, dtype=torch.float32, attn_implementation="eager").eval()
    policy = PeftModel.from_pretrained(base, a.adapter).eval()
    n, t = 3, 14
    prompt = [4, 6, 5]
    chosen = torch.randint(4, 256, (n, t))
    rejected = torch.randint(4, 256, (n, t))
    rejected[:, :6] = chosen[:, :6]  # shared prompt prefix
    ids = torch.cat([chosen, rejected])
    labels = ids.clone()
    for i, p in enumerate(prompt + prompt):
        labels[i, :p] = -100
    pol, cnt = row_logps(policy, ids, labels)
    refl, _ = row_logps(ref, ids, labels)
    c, r, rc, rr = pol[:n], pol[n:], refl[:n], refl[n:]
    cc, cr = cnt[:n], cnt[n:]
    nll = -c / cc
    out = {"input_ids": ids, "labels": labels, "policy_logps": pol.float(), "reference_logps": refl.float(), "counts": cnt.float()}
    z = (c - r) - (rc - rr)
    out["loss.dpo"] = (-F.logsigmoid(0.1 * z)).mean().float().reshape(())
    out["loss.simpo"] = (-F.logsigmoid(2.0 * (c / cc - r / cr) - 1.0)).mean().float().reshape(())
    out["loss.cpo"] = ((-F.logsigmoid(0.1 * (c - r))) + 1.0 * nll).mean().float().reshape(())
    ac, ar = c / cc, r / cr
    log_odds = (ac - ar) - (torch.log1p(-torch.exp(ac)) - torch.log1p(-torch.exp(ar)))
    out["loss.orpo"] = (nll - 0.1 * F.logsigmoid(log_odds)).mean().float().reshape(())
    # KTO on the chosen rows: desirable = [True, False, True]; KL rows = prompt_i + response_(i+1).
    desirable = torch.tensor([True, False, True])
    kl_ids, kl_labels = [], []
    for i in range(n):
        j = (i + 1) % n
        p, q = prompt[i], prompt[j]
        kl_ids.append(torch.cat([chosen[i, :p], chosen[j, q:]]))
        kl_labels.append(torch.cat([torch.full((p,), -100), chosen[j, q:]]))
    width = max(len(x) for x in kl_ids)
    kid = torch.stack([torch.cat([x, torch.zeros(width - len(x), dtype=torch.long)]) for x in kl_ids])
    klab = torch.stack([torch.cat([x, torch.full((width - len(x),), -100)]) for x in kl_labels])
    pkl, _ = row_logps(policy, kid, klab)
    rkl, _ = row_logps(ref, kid, klab)
    zkl = (pkl - rkl).mean().clamp(min=0)
    ratio = c - rc
    loss = torch.where(desirable, 1 - torch.sigmoid(0.1 * (ratio - zkl)), 1 - torch.sigmoid(0.1 * (zkl - ratio)))
    out["kto.desirable"] = desirable
    out["loss.kto"] = loss.mean().float().reshape(())
    out["kto.policy_kl"] = pkl.float()
    out["kto.reference_kl"] = rkl.float()
    save_file({k: v.contiguous() for k, v in out.items()}, a.out)
    print({k: (round(v.item(), 6) if v.numel() == 1 else list(v.shape)) for k, v in out.items()})


if __name__ == "__main__":
    main()
