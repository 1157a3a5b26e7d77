"""``csta``: CSTA scorer (Son et al., CVPR'24) over the class's stack of embeddings + 0/1 knapsack.

CSTA summarises a video by treating its ``N × D`` frame-feature matrix as an image: a
CNN over that image yields attention between frames, the attended features go through
an MLP that regresses a per-frame importance score, and a knapsack picks frames under a
length budget. The diffusion paper feeds it the ``N_c × D`` stack of one class's video
embeddings instead of frames. Our scorer, on one screen:

    h = LayerNorm(Linear(D→64)(X))                       (N, 64)
    a = CNN(h as a 1-channel N×64 image)                 two 3×3 convs, 8 channels
    A = softmax(a aᵀ / √64)                              (N, N) clip-to-clip attention
    score = sigmoid(MLP(A h + h))                        (N,)

Weights: a local safetensors file (``weights=PATH``, for the same D) when given;
CSTA's pretrained weights are for GoogLeNet frame features (D=1024) of TVSum/SumMe and
do not transfer to our embeddings, so otherwise the scorer is TRAINED per class on a
stated self-supervised target: each clip's normalised kernel density in its class,
``r_i = mean_j exp(−‖x_i−x_j‖²/2σ²)`` (σ = median pairwise distance) rescaled to [0, 1] —
the representativeness reward of the summarisation literature (DR-DSN). 150 Adam steps,
lr 1e-3, MSE, seeded. Pools have no time axis, so the stack order (store order) is
arbitrary: training and scoring average over random permutations; stacks above 1,024
clips are scored in windows of 1,024.

Knapsack: every clip has length 1 and the budget is VPC, so the 0/1 knapsack reduces to
the VPC best scores — we still run the DP (``knapsack``) so a length-weighted pool works.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from vidistill.errors import stop_if_not_finite
from vidistill.select.base import ClassData, selector

HIDDEN = 64
WINDOW = 1024


class CSTAScorer(nn.Module):
    def __init__(self, dim: int, hidden: int = HIDDEN):
        super().__init__()
        self.proj = nn.Sequential(nn.Linear(dim, hidden), nn.LayerNorm(hidden))
        self.cnn = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 1, 3, padding=1)
        )
        self.head = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        self.hidden = hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.proj(x)  # (N, H)
        a = self.cnn(h[None, None])[0, 0]  # (N, H): CNN over the stack "image"
        attn = torch.softmax(a @ a.T / self.hidden**0.5, dim=1)
        return torch.sigmoid(self.head(attn @ h + h))[:, 0]


def knapsack(values: np.ndarray, weights: np.ndarray, capacity: int) -> np.ndarray:
    """0/1 knapsack by DP over integer weights; returns chosen indices (ties: lower index)."""
    n = len(values)
    best = np.zeros(capacity + 1)
    keep = np.zeros((n, capacity + 1), bool)
    for i in range(n):
        w, v = int(weights[i]), float(values[i])
        if w > capacity:
            continue
        cand = best[: capacity + 1 - w] + v
        better = cand > best[w:] + 1e-15
        keep[i, w:] = better
        best[w:] = np.where(better, cand, best[w:])
    chosen, c = [], capacity
    for i in range(n - 1, -1, -1):
        if keep[i, c]:
            chosen.append(i)
            c -= int(weights[i])
    return np.array(sorted(chosen), dtype=np.int64)


def _density_target(x: torch.Tensor) -> torch.Tensor:
    d = torch.cdist(x, x)
    off = d[~torch.eye(len(x), dtype=torch.bool)]
    sigma = float(off.median()) if off.numel() else 1.0
    sigma = sigma if sigma > 0 else 1.0
    r = torch.exp(-d.square() / (2 * sigma * sigma)).mean(1)
    return (r - r.min()) / (r.max() - r.min() + 1e-12)


def _windows(n: int, gen: torch.Generator) -> list[torch.Tensor]:
    perm = torch.randperm(n, generator=gen)
    return [perm[s : s + WINDOW] for s in range(0, n, WINDOW)]


@selector("csta")
def select_csta(
    data: ClassData,
    vpc: int,
    seed: int = 0,
    weights: str | None = None,
    steps: int = 150,
    permutations: int = 4,
) -> np.ndarray:
    x = torch.from_numpy(data.load())
    gen = torch.Generator().manual_seed(seed * 1_000_003 + data.label)
    torch.manual_seed(seed * 1_000_003 + data.label)  # the scorer's initialisation
    model = CSTAScorer(x.shape[1])
    if weights is not None:
        from vidistill.integrity import load_safetensors

        if not Path(weights).is_file():
            raise FileNotFoundError(f"no CSTA weights at {weights}")
        model.load_state_dict(load_safetensors(weights, "the CSTA training that wrote it")[0])
    else:
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        for _ in range(steps):
            for win in _windows(len(x), gen):
                loss = torch.mean((model(x[win]) - _density_target(x[win])) ** 2)
                stop_if_not_finite(
                    float(loss.detach()),
                    f"csta scorer training, class {data.name!r}",
                    "nothing was written",
                    "Check the embeddings for extreme values and select again",
                )
                opt.zero_grad()
                loss.backward()
                opt.step()
    model.eval()
    score = torch.zeros(len(x), dtype=torch.float64)
    with torch.no_grad():
        for _ in range(permutations):
            for win in _windows(len(x), gen):
                score[win] += model(x[win]).double()
    score /= permutations
    return knapsack(score.numpy(), np.ones(len(x), np.int64), vpc)
