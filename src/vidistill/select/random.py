"""``random``: VPC clips drawn uniformly without replacement — the baseline every table shows."""

from __future__ import annotations

import numpy as np

from vidistill.select.base import ClassData, class_rng, selector


@selector("random", needs=())
def select_random(data: ClassData, vpc: int, seed: int = 0) -> np.ndarray:
    return class_rng(seed, data.label).choice(data.n, size=vpc, replace=False)
