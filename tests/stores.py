"""Tiny random-pixel stores for tests that need a real ClipStore on disk, not a dataset."""

from __future__ import annotations

import numpy as np

from vidistill.clipstore import ClipRecord, ClipSpec, write_store


def random_store(root, frames=8, size=64, classes=3, per=(4, 2)):
    """``per[0]`` train and ``per[1]`` test clips per class of uniform noise; meta ``mode``
    alternates 0/1 within a class (for the sub-mode coverage code)."""
    spec = ClipSpec(frames=frames, size=size)
    rng = np.random.default_rng(0)
    recs, clips = [], []
    for split, k in zip(("train", "test"), per, strict=True):
        for c in range(classes):
            for i in range(k):
                clips.append(rng.integers(0, 256, spec.shape, dtype=np.uint8))
                recs.append(ClipRecord(f"{split}-{c}-{i}", c, f"class{c}", split, {"mode": i % 2}))
    return write_store(root, spec, [f"class{c}" for c in range(classes)], iter(clips), recs)
