"""``dm-mmd``: k-means clustering + the subset that minimises MMD to the class.

The diffusion paper's DM-MMD baseline extends distribution matching with k-means and
Maximum Mean Discrepancy; its generator part (a DCGAN) has no role when we select
existing clips, so what remains is: cluster the class into VPC groups with k-means
(seeded, ``n_init=4``; ``MiniBatchKMeans.partial_fit`` over blocks above the memory
budget), take one clip per cluster, and choose those clips to minimise

    MMD²(S, X) = mean_{s,s'∈S} k(s,s') − 2·mean_{s∈S, x∈X} k(s,x) + const

with a Gaussian kernel ``k(a,b) = exp(−‖a−b‖² / (2σ²))`` and σ = the median pairwise
distance of (up to 1,024 sampled) class clips (the median heuristic, Gretton et al.
2012). Search: start from each cluster's clip nearest its centroid, then up to
``rounds`` (3) sweeps of coordinate descent, each trying the ``candidates`` (10)
clips nearest every centroid in that cluster's slot and keeping the best swap.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.cluster import KMeans, MiniBatchKMeans

from vidistill.select.base import ClassData, selector


def _bandwidth(data: ClassData, seed: int) -> float:
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(data.n, min(data.n, 1024), replace=False))
    rows = []
    for s, block in data.chunks():
        sel = pick[(pick >= s) & (pick < s + len(block))] - s
        rows.append(block[sel])
    x = torch.from_numpy(np.concatenate(rows))
    d = torch.cdist(x, x)
    d = d[torch.triu(torch.ones_like(d, dtype=torch.bool), diagonal=1)]
    med = float(d.median()) if d.numel() else 1.0
    return med if med > 0 else 1.0


def _kernel(a: torch.Tensor, b: torch.Tensor, sigma: float) -> torch.Tensor:
    return torch.exp(-torch.cdist(a, b).square() / (2 * sigma * sigma))


@selector("dm-mmd")
def select_dm_mmd(
    data: ClassData, vpc: int, seed: int = 0, candidates: int = 10, rounds: int = 3
) -> np.ndarray:
    if data.fits_in_memory:
        km = KMeans(vpc, n_init=4, random_state=seed).fit(data.load())
    else:
        km = MiniBatchKMeans(vpc, random_state=seed, n_init=3, batch_size=4096)
        for _, block in data.chunks():
            km.partial_fit(block)
    centres = torch.from_numpy(km.cluster_centers_.astype(np.float32))
    # Nearest `candidates` clips to each centroid, over all clips, by one streamed pass.
    m = min(candidates, data.n)
    best_d = torch.full((vpc, m), float("inf"))
    best_i = torch.zeros((vpc, m), dtype=torch.long)
    cand_rows: dict[int, np.ndarray] = {}
    for s, block in data.chunks():
        d = torch.cdist(centres, torch.from_numpy(block))  # (vpc, b)
        idx = torch.arange(s, s + len(block)).expand(vpc, -1)
        d_all, i_all = torch.cat([best_d, d], 1), torch.cat([best_i, idx], 1)
        order = d_all.argsort(dim=1, stable=True)[:, :m]
        best_d, best_i = d_all.gather(1, order), i_all.gather(1, order)
        for i in set(best_i.flatten().tolist()) - set(cand_rows):
            if s <= i < s + len(block):
                cand_rows[i] = block[i - s].copy()
    pool = sorted(cand_rows)
    where = {i: k for k, i in enumerate(pool)}
    c = torch.from_numpy(np.stack([cand_rows[i] for i in pool]))
    sigma = _bandwidth(data, seed)
    kcc = _kernel(c, c, sigma).double()  # candidate × candidate
    kbar = torch.zeros(len(pool), dtype=torch.float64)  # mean_x k(candidate, x)
    for _, block in data.chunks():
        kbar += _kernel(c, torch.from_numpy(block), sigma).double().sum(1)
    kbar /= data.n

    def mmd(sel: list[int]) -> float:
        t = torch.tensor(sel)
        return float(kcc[t][:, t].mean() - 2 * kbar[t].mean())

    # initial: per cluster its nearest clip not already used by an earlier cluster
    slots: list[int] = []
    for j in range(vpc):
        for i in best_i[j].tolist():
            if where[i] not in slots:
                slots.append(where[i])
                break
        else:  # all of this cluster's candidates are taken: any unused candidate
            slots.append(next(k for k in range(len(pool)) if k not in slots))
    current = mmd(slots)
    for _ in range(rounds):
        improved = False
        for j in range(vpc):
            for i in best_i[j].tolist():
                k = where[i]
                if k in slots:
                    continue
                trial = slots[:j] + [k] + slots[j + 1 :]
                val = mmd(trial)
                if val < current - 1e-12:
                    slots, current, improved = trial, val, True
        if not improved:
            break
    return np.array([pool[k] for k in slots])
