"""``k-center``: greedy k-center coreset (Sener & Savarese, ICLR'18) per class.

Start from the clip nearest the class mean (deterministic; the coreset papers start
from a labelled pool we do not have), then repeatedly add the clip whose distance to
its NEAREST chosen centre is largest. The min-distance vector is updated with the
pairwise distances to every centre (``torch.cdist``) — VDSD's version measures the
distance to one centre only, which is wrong from the second centre on (DESIGN §4).
Ties go to the lowest index. Streams the class in blocks: one pass per centre.
"""

from __future__ import annotations

import numpy as np
import torch

from vidistill.select.base import ClassData, selector


def _dist_to(data: ClassData, point: np.ndarray) -> np.ndarray:
    p = torch.from_numpy(np.ascontiguousarray(point, dtype=np.float32))[None]
    out = np.empty(data.n, np.float32)
    for s, block in data.chunks():
        out[s : s + len(block)] = torch.cdist(torch.from_numpy(block), p)[:, 0].numpy()
    return out


def _row(data: ClassData, i: int) -> np.ndarray:
    for s, block in data.chunks():
        if s <= i < s + len(block):
            return block[i - s].copy()
    raise IndexError(i)


@selector("k-center")
def select_k_center(data: ClassData, vpc: int, seed: int = 0) -> np.ndarray:
    first = int(np.argmin(_dist_to(data, data.mean())))
    chosen = [first]
    min_dist = _dist_to(data, _row(data, first))
    while len(chosen) < vpc:
        min_dist[chosen] = -1.0  # never re-pick a centre (its distance is 0 anyway)
        nxt = int(np.argmax(min_dist))
        chosen.append(nxt)
        min_dist = np.minimum(min_dist, _dist_to(data, _row(data, nxt)))
    return np.array(chosen)
