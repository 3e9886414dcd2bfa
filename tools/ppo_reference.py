#!/usr/bin/env python3
"""Independent PyTorch implementation of PPO's published formulas, for Osprey's PpoMathTests.

Prints one JSON object: fixed random inputs on a padded [B, T] completion grid with a 0/1 mask, and the expected
per-token rewards, GAE advantages/returns, whitened advantages, the clipped policy and value losses with their
gradients, clip fractions and approx KL, for several settings. All float32, CPU.

Formulas (written from the papers, not from any trainer's code):
  rewards    r_t = -kl_coef * (logp_t - ref_t), plus the sequence score at the row's last token   (Ziegler et al. 2019)
  GAE        delta_t = r_t + gamma V_{t+1} - V_t (V = 0 past the last token),
             A_t = sum_l (gamma lam)^l delta_{t+l}, R_t = A_t + V_t                               (Schulman et al. 2016)
             computed here as an explicit double sum per row, not as a backward recursion
  whitening  (x - mean) / sqrt(var_unbiased + 1e-8) over masked entries (mean added back for rewards)
  policy     mean_mask max(-A r, -A clip(r, 1-eps, 1+eps)), r = exp(logp - old)                   (Schulman et al. 2017)
  value      0.5 mean_mask max((V - R)^2, (V_old + clip(V - V_old, -eps_v, eps_v) - R)^2)
Run with Debian's /usr/bin/python3 (python3-torch).
"""
import json
import torch

torch.manual_seed(4)
B, T = 4, 7
lengths = [7, 3, 5, 1]
mask = torch.zeros(B, T)
for i, n in enumerate(lengths):
    mask[i, :n] = 1.0
logps = (-torch.rand(B, T) * 3.0) * mask
ref = (logps + torch.randn(B, T) * 0.3) * mask
old = (logps + torch.randn(B, T) * 0.4) * mask
values = (torch.randn(B, T) * 0.8) * mask
old_values = (values + torch.randn(B, T) * 0.4) * mask
scores = torch.tensor([1.5, -0.5, 0.25, 2.0])


def mmean(x, m):
    return (x * m).sum() / m.sum()


def mvar(x, m):
    mu = mmean(x, m)
    n = m.sum()
    return ((x - mu) ** 2 * m).sum() / (n - 1)


def whiten(x, m, shift_mean=True):
    mu = mmean(x, m)
    w = (x - mu) / torch.sqrt(mvar(x, m) + 1e-8)
    return w if shift_mean else w + mu


def rewards_of(kl_coef):
    r = -kl_coef * (logps - ref)
    for i, n in enumerate(lengths):
        r[i, n - 1] += scores[i]
    return r * mask


def gae(r, v, gamma, lam):
    adv = torch.zeros(B, T)
    for i, n in enumerate(lengths):
        for t in range(n):
            total = 0.0
            for l in range(n - t):
                nxt = v[i, t + l + 1] if t + l + 1 < n else 0.0
                delta = r[i, t + l] + gamma * nxt - v[i, t + l]
                total = total + (gamma * lam) ** l * delta
            adv[i, t] = total
    return adv, adv + v


def flat(x):
    return [float(v) for v in x.detach().reshape(-1)]


cases = []
for kl_coef, gamma, lam, whiten_rewards, eps, eps_v in [
    (0.05, 1.0, 0.95, False, 0.2, 0.2),
    (0.1, 0.9, 0.8, True, 0.1, 0.05),
    (0.0, 0.99, 1.0, False, 0.3, 0.5),
]:
    r = rewards_of(kl_coef)
    raw = r.clone()
    if whiten_rewards:
        r = whiten(r, mask, shift_mean=False) * mask
    adv, ret = gae(r, values, gamma, lam)
    adv_w = whiten(adv, mask) * mask
    lp = logps.clone().requires_grad_(True)
    ratio = torch.exp(lp - old)
    pg1 = -adv_w * ratio
    pg2 = -adv_w * torch.clamp(ratio, 1 - eps, 1 + eps)
    pg_loss = mmean(torch.max(pg1, pg2), mask)
    pg_loss.backward()
    v = values.clone().requires_grad_(True)
    v_clip = old_values + torch.clamp(v - old_values, -eps_v, eps_v)
    vf1 = (v - ret) ** 2
    vf2 = (v_clip - ret) ** 2
    vf_loss = 0.5 * mmean(torch.max(vf1, vf2), mask)
    vf_loss.backward()
    cases.append({
        "kl_coef": kl_coef, "gamma": gamma, "lam": lam, "whiten_rewards": whiten_rewards,
        "cliprange": eps, "cliprange_value": eps_v,
        "rewards": flat(raw), "whitened_rewards": flat(r), "advantages": flat(adv), "returns": flat(ret),
        "whitened_advantages": flat(adv_w),
        "policy_loss": float(pg_loss), "policy_grad": flat(lp.grad),
        "policy_clipfrac": float(mmean((pg2 > pg1).float(), mask)),
        "approx_kl": float(0.5 * mmean((logps - old) ** 2, mask)),
        "value_loss": float(vf_loss), "value_grad": flat(v.grad),
        "value_clipfrac": float(mmean((vf2 > vf1).float(), mask)),
    })

print(json.dumps({
    "B": B, "T": T, "mask": flat(mask), "logps": flat(logps), "ref": flat(ref), "old": flat(old),
    "values": flat(values), "old_values": flat(old_values), "scores": flat(scores), "cases": cases,
}))
