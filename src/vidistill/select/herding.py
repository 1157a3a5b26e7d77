"""``herding``: greedy herding coreset (Welling, ICML'09; as in the DC-benchmark) per class.

Step k adds the clip that brings the mean of the chosen set closest to the class mean:
``argmin_i ‖μ − (Σ_{j∈S} x_j + x_i) / k‖₂ = argmin_i ‖(kμ − Σ_{j∈S} x_j) − x_i‖₂`` over
clips not yet chosen (distances with ``torch.cdist``; the running sum in float64).
Deterministic; ties go to the lowest index. Streams the class in blocks: one pass per pick.
"""

from __future__ import annotations

import numpy as np
import torch

from vidistill.select.base import ClassData, selector


@selector("herding")
def select_herding(data: ClassData, vpc: int, seed: int = 0) -> np.ndarray:
    mu = torch.from_numpy(data.mean().astype(np.float64))
    total = torch.zeros_like(mu)
    chosen: list[int] = []
    taken = np.zeros(data.n, bool)
    for k in range(1, vpc + 1):
        # ‖μ − (T + x_i)/k‖ = ‖r − x_i‖ / k with r = kμ − T: one cdist per block
        r = (k * mu - total).float()[None]
        best, best_d = -1, np.inf
        for s, block in data.chunks():
            d = torch.cdist(torch.from_numpy(block), r)[:, 0].numpy()
            d[taken[s : s + len(block)]] = np.inf
            j = int(np.argmin(d))
            if d[j] < best_d:
                best, best_d = s + j, d[j]
        chosen.append(best)
        taken[best] = True
        for s, block in data.chunks():
            if s <= best < s + len(block):
                total += torch.from_numpy(block[best - s]).double()
                break
    return np.array(chosen)
