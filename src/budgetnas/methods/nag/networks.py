"""NAG's networks: metric predictors, the Pareto-aware evaluator R(a | B) and the generator pi(a | B).

Budgets enter every network as one normalized scalar b in [0, 1] (log scale between the lowest and
the highest training budget), so a budget never seen in training is just another point of the line.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ...spaces.decisions import DecisionSpace

RBF_CENTERS = 16


class MLP(nn.Module):
    """enc -> hidden -> hidden -> 1 with ReLU."""

    def __init__(self, n_in: int, hidden: int = 512):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


def budget_features(b: torch.Tensor) -> torch.Tensor:
    """RBF features of the normalized budget plus the budget itself: (N,) -> (N, RBF_CENTERS + 1)."""
    centers = torch.linspace(-0.1, 1.1, RBF_CENTERS, dtype=b.dtype, device=b.device)
    width = 1.2 / (RBF_CENTERS - 1)
    return torch.cat([torch.exp(-((b[:, None] - centers) / width) ** 2), b[:, None]], dim=1)


class Evaluator(nn.Module):
    """R(a | B): an MLP on [encoding || budget features]; higher = better under budget B."""

    def __init__(self, enc_size: int, hidden: int = 256):
        super().__init__()
        self.mlp = MLP(enc_size + RBF_CENTERS + 1, hidden)

    def forward(self, enc: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if b.dim() == 0:
            b = b.expand(len(enc))
        return self.mlp(torch.cat([enc, budget_features(b)], dim=1))


class Generator(nn.Module):
    """pi(a | B): an LSTMCell fed the budget embedding, then one decision at a time (each sampled
    token embedded as the next input)."""

    def __init__(self, sizes: list[int], hidden: int = 64):
        super().__init__()
        self.sizes = list(sizes)
        self.hidden = hidden
        self.budget_in = nn.Linear(1, hidden)
        self.cell = nn.LSTMCell(hidden, hidden)
        self.heads = nn.ModuleList(nn.Linear(hidden, s) for s in sizes)
        self.embeds = nn.ModuleList(nn.Embedding(s, hidden) for s in sizes)

    def forward(self, b: torch.Tensor, *, generator: torch.Generator | None = None,
                actions: torch.Tensor | None = None, temperature: float = 1.0,
                greedy: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sample (or score given `actions`) for budgets b (N,): -> (actions (N, D), log-probs
        (N, D), entropies (N, D))."""
        n = len(b)
        x = torch.tanh(self.budget_in(b[:, None].to(self.budget_in.weight.dtype)))
        h = torch.zeros(n, self.hidden, device=b.device)
        c = torch.zeros(n, self.hidden, device=b.device)
        acts, logps, ents = [], [], []
        for i in range(len(self.sizes)):
            h, c = self.cell(x, (h, c))
            logits = self.heads[i](h) / temperature
            logp_all = F.log_softmax(logits, dim=1)
            if actions is not None:
                a = actions[:, i]
            elif greedy:
                a = logits.argmax(dim=1)
            else:
                a = torch.multinomial(logp_all.exp(), 1, generator=generator).squeeze(1)
            acts.append(a)
            logps.append(logp_all.gather(1, a[:, None]).squeeze(1))
            ents.append(-(logp_all.exp() * logp_all).sum(dim=1))
            x = self.embeds[i](a)
        return torch.stack(acts, 1), torch.stack(logps, 1), torch.stack(ents, 1)


# --- training of the predictors and the evaluator ---------------------------------------------------

def fit_regressor(x: np.ndarray, y: np.ndarray, *, seed: int, epochs: int = 200, batch_size: int = 256,
                  lr: float = 0.2, momentum: float = 0.9, weight_decay: float = 3e-5,
                  hidden: int = 512, device: str | torch.device = "cpu") -> tuple[MLP, float, float]:
    """MLP regressor (MSE, SGD-Nesterov, cosine) on standardized targets: -> (model, mean, std)."""
    torch.manual_seed(seed)
    mean, std = float(y.mean()), float(y.std() + 1e-12)
    xt = torch.as_tensor(x, dtype=torch.float32, device=device)
    yt = torch.as_tensor((y - mean) / std, dtype=torch.float32, device=device)
    model = MLP(x.shape[1], hidden).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, nesterov=True,
                          weight_decay=weight_decay)
    steps_per_epoch = max(1, math.ceil(len(x) / batch_size))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * steps_per_epoch)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=gen).to(device)
        for k in range(steps_per_epoch):
            idx = perm[k * batch_size:(k + 1) * batch_size]
            loss = F.mse_loss(model(xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            # A large lr on few rows can blow up in the first steps; clipping keeps it stable.
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            sched.step()
    return model.eval(), mean, std


def pair_labels(acc: torch.Tensor, cost: torch.Tensor, budget: float) -> torch.Tensor:
    """y_ij = +1 if i beats j under the budget, -1 if j beats i, 0 for a tie.

    Both over budget: the cheaper wins; both within: the more accurate wins; else the feasible wins."""
    ok = cost <= budget
    both_ok = ok[:, None] & ok[None, :]
    both_over = ~ok[:, None] & ~ok[None, :]
    by_acc = torch.sign(acc[:, None] - acc[None, :])
    by_cost = torch.sign(cost[None, :] - cost[:, None])
    by_feasible = ok[:, None].float() - ok[None, :].float()
    return torch.where(both_ok, by_acc, torch.where(both_over, by_cost, by_feasible))


def fit_evaluator(enc: np.ndarray, acc: np.ndarray, cost: np.ndarray, *, normalize, seed: int,
                  steps: int = 1500, batch_size: int = 128, lr: float = 1e-3, hidden: int = 256,
                  budget_sampler, device: str | torch.device = "cpu") -> Evaluator:
    """Pairwise logistic ranking loss over all pairs of a batch, one budget per batch.

    normalize: budget (cost units) -> b in [0, 1]; budget_sampler(rng) -> a budget (cost units)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = Evaluator(enc.shape[1], hidden).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=1e-5)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    enc_t = torch.as_tensor(enc, dtype=torch.float32, device=device)
    acc_t = torch.as_tensor(acc, dtype=torch.float32, device=device)
    cost_t = torch.as_tensor(cost, dtype=torch.float32, device=device)
    for _ in range(steps):
        budget = budget_sampler(rng)
        idx = torch.as_tensor(rng.choice(len(enc), size=min(batch_size, len(enc)), replace=False), device=device)
        y = pair_labels(acc_t[idx], cost_t[idx], budget)
        r = model(enc_t[idx], torch.tensor(normalize(budget), dtype=torch.float32, device=device))
        diff = r[:, None] - r[None, :]
        mask = y != 0
        loss = F.softplus(-y[mask] * diff[mask]).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return model.eval()


def concordance(scores: np.ndarray, acc: np.ndarray, cost: np.ndarray, budget: float) -> float:
    """Fraction of non-tied pairs that the scores order as the Pareto-aware labels do."""
    y = pair_labels(torch.as_tensor(acc), torch.as_tensor(cost), budget).numpy()
    s = np.sign(scores[:, None] - scores[None, :])
    mask = y != 0
    return float((s[mask] == y[mask]).mean())


def encode(space: DecisionSpace, rows: np.ndarray, device: str | torch.device = "cpu") -> torch.Tensor:
    return torch.as_tensor(space.encode_batch(rows), dtype=torch.float32, device=device)
