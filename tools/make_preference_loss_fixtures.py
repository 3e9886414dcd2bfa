# Reference values for src/Osprey/Training/Preference/PreferenceLosses.cs, computed independently with plain torch
# (float64 on the CPU from float32-rounded inputs; no TRL) from the published formulas as TRL implements them:
# DPO / cDPO / IPO / robust / RPO (DPOTrainer.dpo_loss), CPO / SimPO (CPOTrainer.cpo_loss), ORPO
# (ORPOTrainer.odds_ratio_loss), KTO (KTOTrainer.kto_loss), Bradley-Terry reward model (RewardTrainer).
# Writes losses.safetensors (inputs; case.<name>.loss, case.<name>.metric.<key>, case.<name>.grad.<input>)
# and losses.json (per case: function, inputs in call order, full options, metric keys).
# Usage: python3 tools/make_preference_loss_fixtures.py --out tests/fixtures/preference
import json, os, struct, sys
import torch
ls, sg = torch.nn.functional.logsigmoid, torch.sigmoid
g = torch.Generator().manual_seed(1234)
def U(lo, hi): return lo + (hi - lo) * torch.rand(8, generator=g, dtype=torch.float64)
def N(m, s): return m + s * torch.randn(8, generator=g, dtype=torch.float64)
X = dict(ref_chosen=U(-50, -5), ref_rejected=U(-50, -5), avg_chosen=U(-3, -.1), avg_rejected=U(-3, -.1), nll=U(.5, 3),
         kto_reference=U(-50, -5), kl_reference=U(-50, -5), reward_chosen=N(.5, 2), reward_rejected=N(0, 2), margin=U(0, 1))
X.update(policy_chosen=X['ref_chosen'] + N(0, 2), policy_rejected=X['ref_rejected'] + N(0, 2),
         kto_policy=X['kto_reference'] + N(0, 2), kl_policy=X['kl_reference'] + N(.5, 1))
X = {k: v.float().double() for k, v in X.items()}  # the C# side sees float32 inputs
D = torch.tensor([1, 0, 1, 1, 0, 0, 1, 0]).bool()  # KTO: desirable
def S(z, e): return -ls(z) * (1 - e) - ls(-z) * e  # sigmoid loss with label smoothing e (cDPO)
def pair(m, l, cr, rr, pc=None, pr=None, nll=None):  # TRL's metrics, batch means
    m.update({'rewards/chosen': cr.mean(), 'rewards/rejected': rr.mean(), 'rewards/accuracies': (cr > rr).double().mean(), 'rewards/margins': (cr - rr).mean()})
    if pc is not None: m.update({'logps/chosen': pc.mean(), 'logps/rejected': pr.mean()})
    if nll is not None: m['nll_loss'] = nll.mean()
    return l
def dpo(o, m, pc, pr, rc, rr, nll):
    b, e, t = o['beta'], o['label_smoothing'], o['loss_type']; z = (pc - pr) - (rc - rr)
    l = S(b * z, e) if t == 'sigmoid' else (-ls(b * z) * (1 - e) + ls(-b * z) * e) / (1 - 2 * e) if t == 'robust' \
        else torch.relu(1 - b * z) if t == 'hinge' else (z - 1 / (2 * b)) ** 2
    return pair(m, l.mean() + o['rpo_alpha'] * nll.mean(), b * (pc - rc).detach(), b * (pr - rr).detach(), pc, pr, nll)
def simpo(o, m, ac, ar, nll):
    b = o['beta']; l = S(b * (ac - ar) - o['simpo_gamma'], o['label_smoothing']).mean() + o['cpo_alpha'] * nll.mean()
    return pair(m, l, b * ac.detach(), b * ar.detach(), ac, ar, nll)
def cpo(o, m, pc, pr, nll):
    b = o['beta']; l = S(b * (pc - pr), o['label_smoothing']).mean() + o['cpo_alpha'] * nll.mean()
    return pair(m, l, b * pc.detach(), b * pr.detach(), pc, pr, nll)
def orpo(o, m, ac, ar, nll):
    b = o['beta']; lo = (ac - ar) - (torch.log1p(-torch.exp(ac)) - torch.log1p(-torch.exp(ar))); r = ls(lo)
    m.update(log_odds_ratio=r.mean(), log_odds_chosen=lo.mean())
    return pair(m, nll.mean() - b * r.mean(), b * ac.detach(), b * ar.detach(), ac, ar, nll)
def kto(o, m, p, r, kp, kr):
    b = o['beta']; z = (kp - kr).mean().clamp(min=0).detach(); lr = p - r; w = (b * lr).detach()
    l = torch.where(D, o['desirable_weight'] * (1 - sg(b * (lr - z))), o['undesirable_weight'] * (1 - sg(b * (z - lr))))
    m.update({'kl': z, 'rewards/chosen': w[D].mean(), 'rewards/rejected': w[~D].mean(), 'rewards/margins': w[D].mean() - w[~D].mean(),
              'logps/chosen': p[D].mean(), 'logps/rejected': p[~D].mean()})
    return l.mean()
def rm(o, m, c, r, mg=0):
    return pair(m, -ls(c - r - mg).mean() + o['center_rewards_coefficient'] * ((c + r) ** 2).mean(), c.detach(), r.detach())
O = dict(rlhf_type='dpo', beta=.1, loss_type='sigmoid', label_smoothing=0., rpo_alpha=0., simpo_gamma=1., cpo_alpha=1.,
         desirable_weight=1., undesirable_weight=1., center_rewards_coefficient=0.)
P4, A3 = 'policy_chosen policy_rejected ref_chosen ref_rejected nll', 'avg_chosen avg_rejected nll'
K4, R2 = 'kto_policy kto_reference kl_policy kl_reference', 'reward_chosen reward_rejected'
C = dict(dpo_sigmoid=(dpo, P4, {}), dpo_sigmoid_ls=(dpo, P4, dict(label_smoothing=.1)), dpo_hinge=(dpo, P4, dict(loss_type='hinge')),
         dpo_ipo=(dpo, P4, dict(loss_type='ipo')), dpo_robust=(dpo, P4, dict(loss_type='robust', label_smoothing=.1)),
         dpo_rpo=(dpo, P4, dict(rpo_alpha=.5)), simpo_a0=(simpo, A3, dict(beta=2., cpo_alpha=0.)), simpo_a1=(simpo, A3, dict(beta=2.)),
         cpo=(cpo, 'policy_chosen policy_rejected nll', {}), orpo=(orpo, A3, {}), kto=(kto, K4, {}),
         kto_w=(kto, K4, dict(desirable_weight=1.33)), rm=(rm, R2, {}), rm_margin=(rm, R2 + ' margin', {}),
         rm_center=(rm, R2, dict(center_rewards_coefficient=.01)))
T, J = dict(X, desirable=D), {}
for n, (f, a, o) in C.items():
    a = a.split(); o = dict(O, **o, rlhf_type=f.__name__); xs = [X[k].clone().requires_grad_() for k in a]; m = {}
    l = f(o, m, *xs); l.backward(); T[f'case.{n}.loss'] = l
    T.update({f'case.{n}.metric.{k}': v for k, v in m.items()}); T.update({f'case.{n}.grad.{k}': torch.zeros_like(x) if x.grad is None else x.grad for k, x in zip(a, xs)})  # KL inputs are detached
    J[n] = dict(function=f.__name__, inputs=a, options=o, metrics=sorted(m))
out = sys.argv[sys.argv.index('--out') + 1]; os.makedirs(out, exist_ok=True); H, B = {}, b''
for k in sorted(T):  # safetensors: u64 header length, JSON header, little-endian data
    t = T[k].detach(); v = t.flatten().tolist(); d = t.dtype == torch.bool
    x = bytes(v) if d else struct.pack(f'<{len(v)}f', *v)
    H[k] = dict(dtype='BOOL' if d else 'F32', shape=list(t.shape), data_offsets=[len(B), len(B) + len(x)]); B += x
h = json.dumps(H).encode(); h += b' ' * (-len(h) % 8)
open(os.path.join(out, 'losses.safetensors'), 'wb').write(struct.pack('<Q', len(h)) + h + B)
json.dump(J, open(os.path.join(out, 'losses.json'), 'w'), indent=1)
print(len(T), 'tensors;', {n: round(T[f'case.{n}.loss'].item(), 6) for n in C})
