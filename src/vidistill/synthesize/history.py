"""A synthesis run's loss history (``done.json["history"]``: one dict of terms per iteration)
summarised as block means — one iteration's matching loss is the MMD under one fresh random
net, so single values are noise and "has the loss flattened?" needs means over blocks."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def block_means(
    history: Sequence[dict[str, float]], points: int = 40, block: int | None = None
) -> dict[str, list[float]]:
    """Every logged term as means over consecutive blocks of ``block`` iterations (default:
    enough for ~``points`` blocks); ``it`` holds each block's last iteration. A term logged
    in only some iterations is averaged where present, ``None`` in blocks without it, so
    every list lines up with ``it``."""
    if not history:
        return {}
    block = block or max(1, len(history) // points)
    terms = list(dict.fromkeys(k for h in history for k in h if k != "it"))
    curve: dict[str, list[float | None]] = {"it": [], **{t: [] for t in terms}}
    for start in range(0, len(history), block):
        chunk = history[start : start + block]
        curve["it"].append(chunk[-1]["it"])
        for term in terms:
            vals = [h[term] for h in chunk if term in h]
            curve[term].append(round(float(np.mean(vals)), 6) if vals else None)
    return curve
