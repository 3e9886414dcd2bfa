#!/usr/bin/env python3
"""Independent PyTorch implementation of the GRPO family's published losses, for Osprey's GrpoLossTests.

Prints one JSON object: the fixed random inputs (completion log-probs under the policy, the rollout policy and the
reference, advantages, a 0/1 mask) and, for each case (loss type x importance-sampling level x beta x epsilon_high),
the per-token loss, the aggregated loss, d loss / d logps and the clip/KL metrics, all float32.

Formulas (written from the papers, not from any trainer's code):
  ratio      r_t = exp(logp_t - logp_old_t)                 (token level, GRPO, Shao et al. 2024)
             r_i = exp(mean_t (logp_t - logp_old_t))         (sequence level, GSPO, Zheng et al. 2025)
  surrogate  l_t = -min(r A, clip(r, 1 - eps, 1 + eps_high) A)   (clip-higher: DAPO, Yu et al. 2025)
  KL (k3)    k_t = exp(ref_t - logp_t) - (ref_t - logp_t) - 1    (Schulman 2020), added as beta * k_t
  grpo       mean_i (sum_t m l / sum_t m)
  bnpo       sum m l / sum m
  dr_grpo    sum m l / (B * max_completion_length)           (Liu et al. 2025)
  dapo       sum m l / (tokens of the generation batch)
Run with Debian's /usr/bin/python3 (python3-torch); CPU, float32.
"""
import json
import torch

torch.manual_seed(20)
B, T = 4, 6
MAX_LEN = 8
GEN_TOKENS = 40.0
lengths = [6, 3, 5, 1]
mask = torch.zeros(B, T)
for i, n in enumerate(lengths):
    mask[i, :n] = 1.0
logps = -torch.rand(B, T) * 3.0
old = logps + torch.randn(B, T) * 0.4
ref = logps + torch.randn(B, T) * 0.3
adv = torch.tensor([1.3, -0.7, 0.4, -1.1])


def loss_of(lp, old_lp, loss_type, level, beta, eps, eps_high):
    log_ratio = lp - old_lp
    if level == "sequence":
        per_row = (log_ratio * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        log_w = per_row[:, None].expand(B, T)
    else:
        log_w = log_ratio
    r = torch.exp(log_w)
    a = adv[:, None]
    unclipped = r * a
    clipped = torch.clamp(r, 1 - eps, 1 + eps_high) * a
    per_token = -torch.min(unclipped, clipped)
    kl = None
    if beta != 0:
        d = ref - lp
        kl = torch.exp(d) - d - 1
        per_token = per_token + beta * kl
    m = per_token * mask
    if loss_type == "grpo":
        loss = (m.sum(1) / mask.sum(1).clamp(min=1.0)).mean()
    elif loss_type == "bnpo":
        loss = m.sum() / mask.sum().clamp(min=1.0)
    elif loss_type == "dr_grpo":
        loss = m.sum() / (B * MAX_LEN)
    else:
        loss = m.sum() / GEN_TOKENS
    with torch.no_grad():
        n = mask.sum()
        low = ((r < 1 - eps) & (a < 0)).float()
        high = ((r > 1 + eps_high) & (a > 0)).float()
        metrics = {
            "clip_ratio/low_mean": float((low * mask).sum() / n),
            "clip_ratio/high_mean": float((high * mask).sum() / n),
            "clip_ratio/region_mean": float((torch.clamp(low + high, max=1.0) * mask).sum() / n),
        }
        if kl is not None:
            metrics["kl"] = float((kl * mask).sum() / n)
    return loss, per_token, metrics


cases = []
for loss_type in ["grpo", "bnpo", "dr_grpo", "dapo"]:
    for level in ["token", "sequence"]:
        for beta in [0.0, 0.04]:
            for eps_high in [0.2, 0.28]:
                for use_old in [True, False]:
                    lp = logps.clone().requires_grad_(True)
                    old_lp = old if use_old else lp.detach()
                    loss, per_token, metrics = loss_of(lp, old_lp, loss_type, level, beta, 0.2, eps_high)
                    loss.backward()
                    cases.append({
                        "loss_type": loss_type, "level": level, "beta": beta, "epsilon": 0.2, "epsilon_high": eps_high,
                        "use_old": use_old, "loss": float(loss), "per_token": per_token.detach().reshape(-1).tolist(),
                        "grad": lp.grad.reshape(-1).tolist(), "metrics": metrics,
                    })

print(json.dumps({
    "B": B, "T": T, "max_completion_length": MAX_LEN, "generation_tokens": GEN_TOKENS,
    "mask": mask.reshape(-1).tolist(), "logps": logps.reshape(-1).tolist(), "old": old.reshape(-1).tolist(),
    "ref": ref.reshape(-1).tolist(), "advantages": adv.tolist(), "cases": cases,
}))
